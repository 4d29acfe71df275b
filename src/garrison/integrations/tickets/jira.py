"""Jira Cloud / Data Center, REST API v3: ``POST /rest/api/3/issue``, ``GET /rest/api/3/issue/{key}``.

config: ``base_url``, ``project_key``, ``email``; optional ``issue_type`` (Task), ``labels``,
``priority_names`` ({"High": "Highest", …}: set the priority field only when given),
``due_date`` (default true: set ``duedate``). secrets: ``api_token`` (Basic auth email:token).
The description is an Atlassian Document Format document, one paragraph per line.
"""

from __future__ import annotations

from typing import Any, ClassVar

from garrison.integrations.httpclient import IntegrationError, request
from garrison.integrations.tickets.base import (
    TicketConnector,
    TicketRef,
    TicketRequest,
    TicketState,
    register_connector,
)


@register_connector
class JiraConnector(TicketConnector):
    kind = "jira"
    title = "Jira (REST v3)"
    required = ("base_url", "project_key", "email")
    required_secrets = ("api_token",)
    url_keys: ClassVar[tuple[str, ...]] = ("base_url",)

    @property
    def _auth(self) -> tuple[str, str]:
        return (str(self.config["email"]), str(self.secrets["api_token"]))

    def create(self, req: TicketRequest) -> TicketRef:
        fields: dict[str, Any] = {
            "project": {"key": self.config["project_key"]},
            "summary": req.title[:250],
            "issuetype": {"name": self.config.get("issue_type") or "Task"},
            "description": adf(req.text()),
            "labels": list(self.config.get("labels") or ["garrison", "security-remediation"]),
        }
        names = self.config.get("priority_names") or {}
        if req.priority in names:
            fields["priority"] = {"name": names[req.priority]}
        if req.due_on and self.config.get("due_date", True):
            fields["duedate"] = req.due_on.isoformat()
        answer = request(self.client, "POST", f"{self.config['base_url']}/rest/api/3/issue", json_body={"fields": fields},
                         auth=self._auth, headers={"Accept": "application/json"})
        if not isinstance(answer, dict) or not answer.get("key"):
            raise IntegrationError("Jira did not return the new issue's key", retryable=False)
        key = str(answer["key"])
        state = self.fetch(key)
        return TicketRef(key, f"{self.config['base_url']}/browse/{key}", state.state, state.closed)

    def fetch(self, external_id: str) -> TicketState:
        answer = request(self.client, "GET", f"{self.config['base_url']}/rest/api/3/issue/{external_id}",
                         params={"fields": "status"}, auth=self._auth, headers={"Accept": "application/json"})
        status = ((answer or {}).get("fields") or {}).get("status") or {}
        name = str(status.get("name") or "Unknown")[:64]
        category = str((status.get("statusCategory") or {}).get("key") or "")
        return TicketState(name, category == "done")


def adf(text: str) -> dict[str, Any]:
    """Plain text as an Atlassian Document Format document (one paragraph per line)."""
    content = []
    for line in text.split("\n"):
        para: dict[str, Any] = {"type": "paragraph", "content": []}
        if line:
            para["content"].append({"type": "text", "text": line})
        content.append(para)
    return {"type": "doc", "version": 1, "content": content}
