"""Configuration check definitions shared by the agent (which evaluates them) and the server
(which scores them): YAML data, its schema and loader. Imports only the shared layer."""

from garrison.checks.loader import CheckLoadError, CheckSet, builtin_checks, load_checks, parse_checks
from garrison.checks.schema import CATEGORIES, CATEGORY_LABELS, CheckDef, Platform, ProbeCall

__all__ = [
    "CATEGORIES",
    "CATEGORY_LABELS",
    "CheckDef",
    "CheckLoadError",
    "CheckSet",
    "Platform",
    "ProbeCall",
    "builtin_checks",
    "load_checks",
    "parse_checks",
]
