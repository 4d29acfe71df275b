"""The API subsets of Jira (REST v3), GitHub Issues, ServiceNow (Table API) and a webhook receiver,
each with in-memory state and the checks the real service makes (authentication, required fields)."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from garrison.integrations import signing
from tests.integrations.servers import HttpService, Recorded, Reply, basic_auth


class Jira(HttpService):
    def __init__(self, email: str = "bot@example.org", token: str = "jira-token") -> None:
        self.email, self.token = email, token
        self.issues: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(10001)
        self._keys = itertools.count(1)
        self.fail_next: int | None = None
        super().__init__(self.handle)

    def handle(self, r: Recorded) -> Reply:
        if basic_auth(r) != (self.email, self.token):
            return Reply(401, {"errorMessages": ["Client must be authenticated to access this resource."]})
        if self.fail_next:
            status, self.fail_next = self.fail_next, None
            return Reply(status, {"errorMessages": ["temporarily unavailable"]})
        if r.method == "POST" and r.path == "/rest/api/3/issue":
            fields = (r.json() or {}).get("fields") or {}
            errors = {k: f"{k} is required." for k in ("project", "summary", "issuetype") if not fields.get(k)}
            desc = fields.get("description")
            if desc is not None and (desc.get("type") != "doc" or desc.get("version") != 1):
                errors["description"] = "Operation value must be an Atlassian Document."
            if errors:
                return Reply(400, {"errorMessages": [], "errors": errors})
            key = f"{fields['project']['key']}-{next(self._keys)}"
            iid = str(next(self._ids))
            self.issues[key] = {"id": iid, "key": key, "fields": fields, "status": ("To Do", "new")}
            return Reply(201, {"id": iid, "key": key, "self": f"{self.url}/rest/api/3/issue/{iid}"})
        if r.method == "GET" and r.path.startswith("/rest/api/3/issue/"):
            key = r.path.rsplit("/", 1)[1]
            issue = self.issues.get(key)
            if issue is None:
                return Reply(404, {"errorMessages": ["Issue does not exist or you do not have permission to see it."]})
            name, cat = issue["status"]
            return Reply(200, {"id": issue["id"], "key": key, "fields": {
                "status": {"name": name, "statusCategory": {"key": cat}}}})
        return Reply(404, {"errorMessages": ["not found"]})

    def transition(self, key: str, name: str, category: str) -> None:
        self.issues[key]["status"] = (name, category)


class GitHub(HttpService):
    def __init__(self, token: str = "ghp_test", repo: str = "acme/infra") -> None:
        self.token, self.repo = token, repo
        self.issues: dict[int, dict[str, Any]] = {}
        self._numbers = itertools.count(1)
        super().__init__(self.handle)

    def handle(self, r: Recorded) -> Reply:
        if r.headers.get("authorization") != f"Bearer {self.token}":
            return Reply(401, {"message": "Bad credentials"})
        base = f"/repos/{self.repo}/issues"
        if r.method == "POST" and r.path == base:
            body = r.json() or {}
            if not body.get("title"):
                return Reply(422, {"message": "Validation Failed", "errors": [{"field": "title", "code": "missing_field"}]})
            n = next(self._numbers)
            self.issues[n] = {"number": n, "title": body["title"], "body": body.get("body"),
                              "labels": [{"name": x} for x in body.get("labels") or []], "state": "open",
                              "state_reason": None}
            return Reply(201, {**self.issues[n], "html_url": f"https://github.example/{self.repo}/issues/{n}"})
        if r.method == "GET" and r.path.startswith(base + "/"):
            n = int(r.path.rsplit("/", 1)[1])
            if n not in self.issues:
                return Reply(404, {"message": "Not Found"})
            return Reply(200, self.issues[n])
        return Reply(404, {"message": "Not Found"})

    def close(self, n: int, reason: str = "completed") -> None:
        self.issues[n].update(state="closed", state_reason=reason)


class ServiceNow(HttpService):
    def __init__(self, user: str = "garrison", password: str = "now-pass") -> None:
        self.user, self.password = user, password
        self.records: dict[str, dict[str, Any]] = {}
        self._numbers = itertools.count(10001)
        super().__init__(self.handle)

    def handle(self, r: Recorded) -> Reply:
        if basic_auth(r) != (self.user, self.password):
            return Reply(401, {"error": {"message": "User Not Authenticated", "detail": "Required to provide Auth"},
                               "status": "failure"})
        if r.method == "POST" and r.path == "/api/now/table/incident":
            body = r.json() or {}
            sys_id = uuid.uuid4().hex
            rec = {**{k: str(v) for k, v in body.items()}, "sys_id": sys_id, "number": f"INC{next(self._numbers):07d}",
                   "state": "1"}
            self.records[sys_id] = rec
            return Reply(201, {"result": rec})
        if r.method == "GET" and r.path.startswith("/api/now/table/incident/"):
            rec = self.records.get(r.path.rsplit("/", 1)[1])
            if rec is None:
                return Reply(404, {"error": {"message": "No Record found"}, "status": "failure"})
            fields = (r.query.get("sysparm_fields") or [""])[0].split(",")
            return Reply(200, {"result": {k: rec[k] for k in fields if k in rec} if fields != [""] else rec})
        return Reply(400, {"error": {"message": "Invalid table"}})

    def set_state(self, sys_id: str, state: str) -> None:
        self.records[sys_id]["state"] = state


class Receiver(HttpService):
    """A generic webhook receiver that checks the HMAC signature, as a user's endpoint would."""

    def __init__(self, secret: str = "shared-secret") -> None:
        self.secret = secret
        self.tickets: dict[str, dict[str, Any]] = {}
        self.received: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        super().__init__(self.handle)

    def handle(self, r: Recorded) -> Reply:
        sig = r.headers.get("x-garrison-signature", "")
        if not signing.verify(self.secret, r.headers.get("x-garrison-timestamp", ""), r.body, sig):
            return Reply(401, {"error": "bad signature"})
        if r.method == "POST" and r.path == "/hook":
            body = r.json()
            self.received.append(body)
            if body.get("event") == "remediation.created":
                tid = f"T-{next(self._ids)}"
                self.tickets[tid] = {"state": "Open", "closed": False}
                return Reply(200, {"id": tid, "url": f"{self.url}/tickets/{tid}", "state": "Open"})
            return Reply(204)
        if r.method == "GET" and r.path.startswith("/status/"):
            t = self.tickets.get(r.path.rsplit("/", 1)[1])
            return Reply(200, t) if t else Reply(404, {"error": "no ticket"})
        return Reply(404, {"error": "not found"})
