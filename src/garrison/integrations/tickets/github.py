"""GitHub Issues (REST): ``POST /repos/{owner}/{repo}/issues``, ``GET …/issues/{number}``.

config: ``repository`` (``owner/name``); optional ``api_url`` (``https://api.github.com``; GitHub
Enterprise: ``https://HOST/api/v3``) and ``labels``. secrets: ``token`` (fine-grained token with
Issues: read and write).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from garrison.integrations.httpclient import IntegrationError, request
from garrison.integrations.tickets.base import (
    TicketConnector,
    TicketRef,
    TicketRequest,
    TicketState,
    register_connector,
)

_REPO = re.compile(r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$")


@register_connector
class GitHubConnector(TicketConnector):
    kind = "github"
    title = "GitHub Issues"
    required = ("repository",)
    required_secrets = ("token",)
    url_keys: ClassVar[tuple[str, ...]] = ("api_url",)

    @classmethod
    def validate(cls, config: dict[str, Any], secrets: dict[str, Any]) -> dict[str, Any]:
        out = super().validate(config, secrets)
        if not _REPO.match(str(out["repository"])):
            raise ValueError("github: config.repository must be owner/name")
        out.setdefault("api_url", "https://api.github.com")
        return out

    @property
    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets['token']}", "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28"}

    def _base(self) -> str:
        return f"{self.config.get('api_url') or 'https://api.github.com'}/repos/{self.config['repository']}"

    def create(self, req: TicketRequest) -> TicketRef:
        body = {"title": req.title[:256], "body": req.text(),
                "labels": list(self.config.get("labels") or ["security", "garrison"])}
        answer = request(self.client, "POST", f"{self._base()}/issues", json_body=body, headers=self._headers)
        if not isinstance(answer, dict) or "number" not in answer:
            raise IntegrationError("GitHub did not return the new issue's number", retryable=False)
        state = str(answer.get("state") or "open")
        return TicketRef(str(answer["number"]), str(answer.get("html_url") or ""), state, state == "closed")

    def fetch(self, external_id: str) -> TicketState:
        answer = request(self.client, "GET", f"{self._base()}/issues/{external_id}", headers=self._headers)
        state = str((answer or {}).get("state") or "unknown")
        reason = (answer or {}).get("state_reason")
        return TicketState(f"{state} ({reason})" if reason else state, state == "closed")
