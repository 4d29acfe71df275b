"""Integrations: ticket connectors (plugins, one file each) and notification senders.

* ``garrison.integrations.tickets`` — registry of ticket connectors: signed generic webhook (HMAC),
  Jira (REST v3), GitHub Issues, ServiceNow (Table API). A connector opens a ticket for a
  remediation activity and reads its state back.
* ``garrison.integrations.notify`` — senders of notifications: e-mail over SMTP, signed webhook.
* ``garrison.integrations.connections`` — validation and API view of configured connections.
* ``garrison.integrations.service`` — opening and syncing tickets, delivering the notification
  outbox, and the background jobs that do it.

This package works on the state store's rows (remediation activities, deliveries); it does not
import the vulnerability-management services.
"""
