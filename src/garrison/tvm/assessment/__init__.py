"""Secure Score for Devices: ingest of configuration assessments, scores, history, exports.

Service functions for the API routes (all take a tenant session from ``Store.tenant``):

* ingest: :func:`ingest_assessment`, :func:`resync_kinds`
* score: :func:`secure_score`, :func:`device_secure_score`, :func:`configuration_score`
  (``/api/configurationScore``), :func:`record_daily_history`, :func:`secure_score_history`
* recommendations: :func:`failed_checks_for_recommendations`; for the prioritisation engine
  (``garrison.tvm.prioritisation.config``): :func:`failed_checks`, :func:`check_catalog`,
  :func:`failing_devices_stmt`, :func:`assessment_changes`, :func:`export_assessments`
* rows: :func:`assessment_by_machine` (``/api/machines/SecureConfigurationsAssessmentByMachine``),
  :func:`device_assessment`, :func:`devices_for_check`, :func:`assessment_events`,
  :func:`secure_configuration_assessment_rows`, :func:`secure_configuration_kb_rows`
"""

from garrison.tvm.assessment.ingest import (
    IngestResult,
    devices_needing_resync,
    ingest_assessment,
    resync_kinds,
)
from garrison.tvm.assessment.kb import ensure_check_kb, sync_check_kb
from garrison.tvm.assessment.provider import (
    assessment_changes,
    check_catalog,
    export_assessments,
    failed_checks,
    failing_devices_stmt,
)
from garrison.tvm.assessment.queries import (
    assessment_by_machine,
    assessment_events,
    device_assessment,
    devices_for_check,
    secure_configuration_assessment_rows,
    secure_configuration_kb_rows,
)
from garrison.tvm.assessment.score import (
    ConfigurationRecommendation,
    configuration_score,
    device_secure_score,
    failed_checks_for_recommendations,
    record_daily_history,
    secure_score,
    secure_score_history,
)

__all__ = [
    "ConfigurationRecommendation",
    "IngestResult",
    "assessment_by_machine",
    "assessment_changes",
    "assessment_events",
    "check_catalog",
    "configuration_score",
    "device_assessment",
    "device_secure_score",
    "devices_for_check",
    "devices_needing_resync",
    "ensure_check_kb",
    "export_assessments",
    "failed_checks",
    "failed_checks_for_recommendations",
    "failing_devices_stmt",
    "ingest_assessment",
    "record_daily_history",
    "resync_kinds",
    "secure_configuration_assessment_rows",
    "secure_configuration_kb_rows",
    "secure_score",
    "secure_score_history",
    "sync_check_kb",
]
