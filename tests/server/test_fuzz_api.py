"""Schemathesis over the whole API document (``/api/openapi.json``): no input draws a server error.

Every operation of the document gets a bounded number of generated requests, valid by the schema
(positive) and invalid (negative), authenticated: the admin API key for ``/api``, an enrolled
device's credential for ``/agent/v1``. On SQLite and PostgreSQL. A 5xx fails the test, and so does
an answer of the database-refusal handler (``DATABASE_REFUSED``): that handler keeps a forgotten
check from being a 500 in production, but every such value must be refused where it enters.

Deterministic: Hypothesis is derandomized (a fixed seed), has no example database and no deadline,
and the examples per operation are bounded so the run takes well under a minute per backend.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from garrison.server.app import DATABASE_REFUSED
from tests.server.conftest import Env, device_headers, enroll

EXAMPLES = {GenerationMode.POSITIVE: 6, GenerationMode.NEGATIVE: 4}  # per operation


def _send(client: TestClient, case: Any, headers: dict[str, str]) -> Any:
    kw = case.as_transport_kwargs(base_url="https://testserver")
    sent = {**(kw.get("headers") or {}), **headers}
    body: dict[str, Any] = {}
    if "json" in kw:
        body["json"] = kw["json"]
    elif isinstance(kw.get("data"), bytes | str):
        body["content"] = kw["data"]
    elif kw.get("data") is not None or kw.get("files") is not None:
        body["data"], body["files"] = kw.get("data"), kw.get("files")
    return client.request(kw["method"], kw["url"], params=kw.get("params"), headers=sent, **body)


def _refused_by_database(response: Any) -> bool:
    try:
        code = response.json().get("error", {}).get("code")
    except (ValueError, AttributeError):
        return False
    return code in DATABASE_REFUSED


def _negatable(operation: Any) -> bool:
    """Whether negative generation can produce anything: a body, or a parameter constrained beyond
    "a string" (an unconstrained string path segment cannot be made invalid, and Hypothesis would spend
    a second per operation proving so)."""
    plain = {"type": "string"}
    return any(True for _ in operation.body) or any(
        {k: v for k, v in p.definition.get("schema", {}).items() if k != "title"} != plain
        for p in operation.iter_parameters())


def _fuzz(client: TestClient, operation: Any, mode: GenerationMode, examples: int,
          headers: dict[str, str]) -> list[str]:
    failures: list[str] = []

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        try:
            response = _send(client, case, headers)
        except httpx.InvalidURL:
            return  # over the client's URL limit (three 4096-character OData options of 4-byte characters)
        if response.status_code >= 500 or _refused_by_database(response):
            body = json.dumps(case.body, default=repr)[:300] if case.body else None
            failures.append(f"{mode.value} {case.method} {case.formatted_path} query={case.query} body={body} "
                            f"-> {response.status_code} {response.text[:200]}")

    try:
        run()
    except Unsatisfiable:
        assert mode == GenerationMode.NEGATIVE, operation.label  # nothing in it can be made invalid
    return failures


@pytest.mark.slow
def test_no_server_error_anywhere_in_the_api_document(env: Env) -> None:
    device = enroll(env.client, env.a.enroll_secret)
    admin = env.a.headers("admin")
    agent = device_headers(device)
    client = TestClient(env.app, base_url="https://testserver", raise_server_exceptions=False)
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", env.app)
    failures: list[str] = []
    operations = 0

    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        headers = agent if operation.path.startswith("/agent/") else admin
        for mode, examples in EXAMPLES.items():
            if mode == GenerationMode.NEGATIVE and not _negatable(operation):
                continue
            failures += _fuzz(client, operation, mode, examples, headers)

    assert operations > 80  # the whole document: /api and /agent/v1
    assert not failures, "\n".join(failures[:40])

