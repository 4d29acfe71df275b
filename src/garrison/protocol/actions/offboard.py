"""Offboard: the agent stops and forgets its credential (requested by ``POST /api/machines/{id}/offboard``,
which also marks the device offboarded)."""

from garrison.protocol.actions import action_type

OFFBOARD = action_type("Offboard")
