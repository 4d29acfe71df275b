"""Machine action types: one module each in this package (discovered by ``ACTION_TYPES``).

An action type names its typed parameters (a :class:`ActionParams` model): the server validates them
when an action is created (``garrison.core.actions.create``), and the agent validates them again
before its handler runs. ``api_path`` is the API's request route, ``POST /api/machines/{id}/<api_path>``
(None: requested some other way, like ``Offboard``). Adding an action type is adding one file here and
its handler in ``garrison/agent/actions/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ConfigDict, ValidationError

from garrison.protocol.models import Wire
from garrison.registry import Registry


class ActionParams(Wire):
    """An action's parameters; the base takes none (unknown keys are refused)."""

    model_config = ConfigDict(extra="forbid")


class InvalidActionParams(ValueError):
    pass


@dataclass(frozen=True)
class ActionType:
    name: str
    params: type[Wire] = ActionParams
    api_path: str | None = None

    def parse(self, params: dict[str, Any] | None) -> Wire:
        """The parameters typed; :class:`InvalidActionParams` names the first bad one."""
        try:
            return self.params.model_validate(params or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "(root)"
            raise InvalidActionParams(f"invalid {self.name} parameters at {where}: {first.get('msg')}") from None


ACTION_TYPES: Registry[ActionType] = Registry("machine action type", package=__name__, name_of=lambda a: a.name)


def action_type(name: str, params: type[Wire] = ActionParams, *, api_path: str | None = None) -> ActionType:
    """Declare (and register) an action type."""
    return ACTION_TYPES.register(ActionType(name, params, api_path))


__all__ = ["ACTION_TYPES", "ActionParams", "ActionType", "InvalidActionParams", "action_type"]
