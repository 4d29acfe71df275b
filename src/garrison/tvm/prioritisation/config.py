"""Adapter to the configuration assessment (``garrison.tvm.assessment``, a layer below prioritisation:
``pyproject.toml``'s contract; assessment never imports prioritisation).

Prioritisation needs these things from it; while it does not provide them, configuration
recommendations, configuration hazards and the configuration score are simply absent:

* ``failed_checks(session)`` → rows ``(device_id, check_id, score_impact)``: the failed, applicable
  checks of the session's tenant now;
* ``check_catalog(session, check_ids)`` → ``{check_id: {"name", "category", "subcategory",
  "impact", "remediation", "scoreImpact"}}``;
* ``failing_devices_stmt(check_id)`` → a SELECT of the ids of the devices failing that check;
* ``secure_score(session, group_ids)`` → the configuration score of those groups (None = all);
* optionally ``assessment_changes(session, after_id)`` → change records for the event timeline:
  dicts with ``id``, ``at``, ``check_id``, ``kind`` ("check_added" …) and ``device_ids``;
* optionally ``configuration_score(session, group_ids)`` (``/api/configurationScore``) and
  ``export_assessments(session, group_ids, since)`` (rows of the secure-configuration export).
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType
from typing import Any

from sqlalchemy.orm import Session

from garrison.tvm import assessment

_REQUIRED = ("failed_checks", "check_catalog", "failing_devices_stmt")


def _module() -> ModuleType | None:
    return assessment


def available() -> bool:
    mod = _module()
    return mod is not None and all(hasattr(mod, f) for f in _REQUIRED)


def failed_checks(s: Session) -> list[tuple[str, str, float]]:
    mod = _module()
    if mod is None or not available():
        return []
    return [(str(d), str(c), float(i or 0)) for d, c, i in mod.failed_checks(s)]


def check_catalog(s: Session, check_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    mod = _module()
    ids = list(check_ids)
    if mod is None or not available() or not ids:
        return {}
    return dict(mod.check_catalog(s, ids))


def failing_devices_stmt(check_id: str) -> Any | None:
    mod = _module()
    if mod is None or not available():
        return None
    return mod.failing_devices_stmt(check_id)


def secure_score(s: Session, group_ids: list[int] | None) -> Any | None:
    mod = _module()
    fn = getattr(mod, "secure_score", None) if mod is not None else None
    if fn is None:
        return None
    return fn(s, group_ids)


def has_secure_score() -> bool:
    mod = _module()
    return mod is not None and (hasattr(mod, "configuration_score") or hasattr(mod, "secure_score"))


def configuration_score(s: Session, group_ids: list[int] | None) -> dict[str, Any] | None:
    """The row of ``/api/configurationScore`` (the assessment's ``configuration_score``)."""
    mod = _module()
    fn = getattr(mod, "configuration_score", None) if mod is not None else None
    if fn is not None:
        return dict(fn(s, group_ids))
    res = secure_score(s, group_ids)
    if res is None:
        return None
    return res if isinstance(res, dict) else {"score": res}


def export_assessments(s: Session, group_ids: Iterable[int] | None, since: Any = None) -> Iterable[dict[str, Any]] | None:
    mod = _module()
    fn = getattr(mod, "export_assessments", None) if mod is not None else None
    if fn is None:
        return None
    return fn(s, group_ids, since)


def assessment_changes(s: Session, after_id: int) -> list[dict[str, Any]]:
    mod = _module()
    fn = getattr(mod, "assessment_changes", None) if mod is not None else None
    if fn is None:
        return []
    return list(fn(s, after_id))
