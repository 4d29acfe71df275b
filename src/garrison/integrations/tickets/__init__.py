"""Ticket connectors: one file per ticketing system, each registered by name on import."""

from garrison.integrations.tickets import github, jira, servicenow, webhook  # noqa: F401
from garrison.integrations.tickets.base import (
    CONNECTORS,
    IntegrationError,
    TicketConnector,
    TicketRef,
    TicketRequest,
    TicketState,
    get_connector,
    register_connector,
)

__all__ = ["CONNECTORS", "IntegrationError", "TicketConnector", "TicketRef", "TicketRequest", "TicketState",
           "get_connector", "register_connector"]
