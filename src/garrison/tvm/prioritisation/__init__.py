"""Risk-based prioritisation: exposure scores, security recommendations, remediation activities,
exceptions, the event timeline and notification rules.

    from garrison.tvm.prioritisation import refresh, derive_events
    refresh(store, tenant_id)          # scores, recommendations, remediation progress
    derive_events(store, tenant_id)    # timeline events and queued notifications

Importing this package registers its background jobs (``service``).
"""

from garrison.tvm.prioritisation.service import derive_events, refresh, refresh_all, refresh_if_changed

__all__ = ["derive_events", "refresh", "refresh_all", "refresh_if_changed"]
