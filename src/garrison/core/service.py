"""The core's plugins: the ``device`` upload kind and the upkeep jobs.

The server discovers every module named ``service`` in the core and service layers
(``garrison.server.runner.load_services``); registering here is all a kind or a job needs.
"""

from __future__ import annotations

from garrison.core import actions, devices, maintenance
from garrison.core.ingest import register_upload
from garrison.core.jobs import system_job
from garrison.protocol import DeviceReport

register_upload("device", DeviceReport)(devices.apply_device_report)
# One UPDATE over every tenant's expired actions: cheaper than a pass per tenant, and idempotent.
system_job("machine_action_timeouts", 300)(actions.expire_actions)
system_job("sqlite_analyze", 6 * 3600)(maintenance.analyze)
