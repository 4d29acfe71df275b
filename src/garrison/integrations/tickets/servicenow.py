"""ServiceNow Table API: ``POST /api/now/table/{table}``, ``GET /api/now/table/{table}/{sys_id}``.

config: ``instance_url``, ``username``; optional ``table`` (``incident``), ``assignment_group``,
``caller_id``, ``category``. secrets: ``password`` (Basic auth). Urgency and impact follow the
priority (High 1, Medium 2, Low 3). Incident states 6 (Resolved), 7 (Closed) and 8 (Canceled)
count as closed.
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

URGENCY = {"High": "1", "Medium": "2", "Low": "3"}
STATES = {"1": "New", "2": "In Progress", "3": "On Hold", "6": "Resolved", "7": "Closed", "8": "Canceled"}
CLOSED = {"6", "7", "8"}
_TABLE = re.compile(r"^[a-z][a-z0-9_]{0,79}$")


@register_connector
class ServiceNowConnector(TicketConnector):
    kind = "servicenow"
    title = "ServiceNow (Table API)"
    required = ("instance_url", "username")
    required_secrets = ("password",)
    url_keys: ClassVar[tuple[str, ...]] = ("instance_url",)

    @classmethod
    def validate(cls, config: dict[str, Any], secrets: dict[str, Any]) -> dict[str, Any]:
        out = super().validate(config, secrets)
        out["table"] = str(out.get("table") or "incident")
        if not _TABLE.match(out["table"]):
            raise ValueError("servicenow: config.table must be a table name such as incident")
        return out

    @property
    def _auth(self) -> tuple[str, str]:
        return (str(self.config["username"]), str(self.secrets["password"]))

    def _url(self, suffix: str = "") -> str:
        return f"{self.config['instance_url']}/api/now/table/{self.config.get('table') or 'incident'}{suffix}"

    def create(self, req: TicketRequest) -> TicketRef:
        record: dict[str, Any] = {
            "short_description": req.title[:160], "description": req.text(),
            "urgency": URGENCY.get(req.priority, "2"), "impact": URGENCY.get(req.priority, "2"),
            "correlation_id": req.activity_id, "correlation_display": "Garrison",
        }
        for key in ("assignment_group", "caller_id", "category"):
            if self.config.get(key):
                record[key] = self.config[key]
        if req.due_on:
            record["due_date"] = f"{req.due_on.isoformat()} 23:59:59"
        answer = request(self.client, "POST", self._url(), json_body=record, auth=self._auth,
                         headers={"Accept": "application/json"})
        result = (answer or {}).get("result") if isinstance(answer, dict) else None
        if not isinstance(result, dict) or not result.get("sys_id"):
            raise IntegrationError("ServiceNow did not return the new record's sys_id", retryable=False)
        sys_id = str(result["sys_id"])
        code = _value(result.get("state"))
        table = self.config.get("table") or "incident"
        return TicketRef(sys_id, f"{self.config['instance_url']}/nav_to.do?uri={table}.do?sys_id={sys_id}",
                         _label(code, result.get("number")), code in CLOSED)

    def fetch(self, external_id: str) -> TicketState:
        answer = request(self.client, "GET", self._url(f"/{external_id}"), auth=self._auth,
                         params={"sysparm_fields": "sys_id,number,state"}, headers={"Accept": "application/json"})
        result = (answer or {}).get("result") or {}
        code = _value(result.get("state"))
        return TicketState(_label(code, result.get("number")), code in CLOSED)


def _value(v: Any) -> str:
    if isinstance(v, dict):
        v = v.get("value")
    return str(v or "")


def _label(code: str, number: Any) -> str:
    return STATES.get(code, code or "Unknown")
