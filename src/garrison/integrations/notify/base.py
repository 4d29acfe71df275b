"""Notifiers: one plugin per delivery channel (``NOTIFIERS``, every module of this package discovered).

A notifier names its channel (``NotificationDelivery.channel``, a rule's target kind) and the kind of
integration connection that carries its settings; it validates that connection's settings, finds the
connection a delivery goes through, sends, and answers a connection test.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from garrison.integrations.httpclient import IntegrationError
from garrison.registry import Registry


@dataclass(frozen=True)
class StoredConnection:
    """A tenant's integration connection as a delivery pass read it (secrets still sealed)."""

    id: int
    kind: str
    config: dict[str, Any]
    secrets: dict[str, Any]
    enabled: bool


class Notifier(ABC):
    channel: ClassVar[str]
    connection_kind: ClassVar[str]

    @staticmethod
    @abstractmethod
    def validate(config: dict[str, Any], secrets: dict[str, Any]) -> dict[str, Any]:
        """The connection's settings normalised; ValueError with a message a user can act on."""

    @abstractmethod
    def connection(self, conns: dict[int, StoredConnection], target: str) -> StoredConnection:
        """The connection a delivery to ``target`` goes through; IntegrationError when there is none."""

    @abstractmethod
    def send(self, client: httpx.Client, config: dict[str, Any], secrets: dict[str, Any], target: str,
             subject: str, body: dict[str, Any]) -> None:
        """Deliver; IntegrationError (retryable or not) on failure."""

    @abstractmethod
    def ping(self, client: httpx.Client, config: dict[str, Any], secrets: dict[str, Any],
             to: str | None) -> str | None:
        """Test the connection: None when it worked, else what to tell the user."""


NOTIFIERS: Registry[Notifier] = Registry("notifier", package="garrison.integrations.notify",
                                         name_of=lambda n: n.channel)


def register_notifier(cls: type[Notifier]) -> type[Notifier]:
    NOTIFIERS.register(cls())
    return cls


def notifier_for(connection_kind: str) -> Notifier | None:
    """The notifier whose settings a connection of this kind carries."""
    return next((n for n in NOTIFIERS.values() if n.connection_kind == connection_kind), None)


def unknown_channel(channel: str) -> IntegrationError:
    return IntegrationError(f"no notifier for channel {channel[:40]!r}", retryable=False)
