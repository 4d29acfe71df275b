"""Lengths of the agent's values that the server stores in sized columns: ONE source of truth.

The wire models (``garrison.protocol``) refuse a longer value at the edge, the state store's columns
(``garrison.store.models``) are declared with the same constant, and the agent cuts what it collects
to it. So a value the protocol accepts always fits its column: one device's over-long version can
neither fail an enrollment with a 500 nor the heartbeat write of the whole fleet.
``tests/server/test_wire_limits.py`` compares every wire field with its column.
"""

HOSTNAME_LEN = 255  # devices.computer_dns_name (a DNS name is at most 253)
MACHINE_KEY_LEN = 64  # devices.machine_key
AGENT_VERSION_LEN = 64  # devices.agent_version
OS_FIELD_LEN = 128  # devices.os_platform, os_version, os_build, os_id, os_codename, kernel, os_processor
OS_FAMILY_LEN = 128  # device_assessment_state.os_family
CHECKS_VERSION_LEN = 128  # device_assessment_state.checks_version
INT_MAX = 2**31 - 1  # every Integer column (32-bit on PostgreSQL): ids, upload seq, generations
