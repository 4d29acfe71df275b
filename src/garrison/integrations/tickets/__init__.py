"""Ticket connectors: one file per ticketing system, each registered by name (every
module here is discovered by ``CONNECTORS``)."""

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
