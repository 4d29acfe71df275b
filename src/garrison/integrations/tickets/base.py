"""What a ticket connector is: a class registered by name that opens a ticket and reads its state."""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx

from garrison.integrations.httpclient import IntegrationError
from garrison.registry import Registry

__all__ = [
    "CONNECTORS",
    "IntegrationError",
    "TicketConnector",
    "TicketRef",
    "TicketRequest",
    "TicketState",
    "get_connector",
    "register_connector",
]


@dataclass
class TicketRequest:
    """A remediation activity as a ticket: everything a connector may put in it."""

    activity_id: str
    title: str
    description: str
    priority: str  # High | Medium | Low
    due_on: dt.date | None
    category: str
    remediation_type: str
    recommendation_id: str
    related_component: str
    recommended_version: str
    target_devices: int
    fixed_devices: int
    device_names: list[str] = field(default_factory=list)
    notes: str = ""
    requester: str = ""

    def text(self) -> str:
        """Plain-text body shared by the connectors."""
        lines = [self.description, "",
                 f"Remediation type: {self.remediation_type}",
                 f"Related component: {self.related_component}"]
        if self.recommended_version:
            lines.append(f"Recommended version: {self.recommended_version}")
        lines += [f"Priority: {self.priority}",
                  f"Due date: {self.due_on.isoformat() if self.due_on else 'none'}",
                  f"Exposed devices: {self.target_devices} ({self.fixed_devices} fixed)",
                  f"Garrison remediation activity: {self.activity_id}",
                  f"Garrison recommendation: {self.recommendation_id}"]
        if self.requester:
            lines.append(f"Requested by: {self.requester}")
        if self.notes:
            lines += ["", "Notes:", self.notes]
        if self.device_names:
            lines += ["", "Devices:"] + [f"- {n}" for n in self.device_names]
        return "\n".join(lines)


@dataclass
class TicketRef:
    external_id: str
    url: str
    state: str
    closed: bool = False


@dataclass
class TicketState:
    state: str
    closed: bool


class TicketConnector(ABC):
    """One ticketing system. ``config`` holds plain settings, ``secrets`` tokens and passwords."""

    kind: ClassVar[str]
    title: ClassVar[str]
    required: ClassVar[tuple[str, ...]] = ()  # config keys
    required_secrets: ClassVar[tuple[str, ...]] = ()
    url_keys: ClassVar[tuple[str, ...]] = ()  # config keys holding URLs (validated)

    def __init__(self, config: dict[str, Any], secrets: dict[str, Any], client: httpx.Client) -> None:
        self.config, self.secrets, self.client = config, secrets, client

    @classmethod
    def validate(cls, config: dict[str, Any], secrets: dict[str, Any]) -> dict[str, Any]:
        """Check and normalise the configuration; raise ValueError with a clear message."""
        from garrison.integrations.httpclient import check_url

        out = dict(config)
        for key in cls.required:
            if not str(out.get(key) or "").strip():
                raise ValueError(f"{cls.kind}: config.{key} is required")
        for key in cls.required_secrets:
            if not str(secrets.get(key) or "").strip():
                raise ValueError(f"{cls.kind}: secrets.{key} is required")
        for key in cls.url_keys:
            if out.get(key):
                out[key] = check_url(str(out[key]), f"{cls.kind}: config.{key}")
        return out

    @abstractmethod
    def create(self, req: TicketRequest) -> TicketRef: ...

    @abstractmethod
    def fetch(self, external_id: str) -> TicketState: ...


CONNECTORS: Registry[type[TicketConnector]] = Registry("ticket connector", package="garrison.integrations.tickets",
                                                      name_of=lambda cls: cls.kind)
"""Every module of ``garrison.integrations.tickets`` is discovered (one file per ticketing system)."""


def register_connector(cls: type[TicketConnector]) -> type[TicketConnector]:
    return CONNECTORS.register(cls)


def get_connector(kind: str) -> type[TicketConnector]:
    return CONNECTORS[kind]


Factory = Callable[[dict[str, Any], dict[str, Any], httpx.Client], TicketConnector]
