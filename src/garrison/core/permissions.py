"""The permission policy: named permissions, the built-in roles that group them, custom roles.

One table (``PERMISSIONS``) names every permission and says which built-in roles hold it — the only
place that decides who may do what (Fleet's single authorisation policy). A route declares the one
permission it needs (``require(P.MACHINES_ACT)``); start-up refuses a route that declares none
(``garrison.server.app.check_routes``). A tenant admin may define custom roles (``custom_roles`` rows: a
name and a set of these permissions, ``garrison.core.roles``) and give them to users and API keys like
the built-in ones.

``admin``, ``security_operator`` and ``analyst`` keep the meaning they had as ranked roles: an analyst
reads; a security operator also acts on devices and findings; an admin also administers the tenant.
``tests/server/test_permission_policy.py`` proves that every route answers the three built-in roles as
the old ranking did. The detection-and-response permissions are declared ahead of their routes so that
custom roles can name them already.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

ADMIN, OPERATOR, ANALYST = "admin", "security_operator", "analyst"
BUILTIN_ROLES = (ADMIN, OPERATOR, ANALYST)
ROLE_LABELS = {ADMIN: "Administrator", OPERATOR: "Security operator", ANALYST: "Analyst"}


@dataclass(frozen=True)
class Permission:
    name: str
    area: str  # how the console groups permissions
    label: str  # what a person reads
    description: str
    roles: tuple[str, ...]  # the built-in roles that hold it


_ALL = (ADMIN, OPERATOR, ANALYST)
_ACT = (ADMIN, OPERATOR)
_ADMIN = (ADMIN,)
_DEVICES, _TVM, _EDR, _TENANT = "Devices", "Vulnerability management", "Detection and response", "Administration"

PERMISSIONS: dict[str, Permission] = {p.name: p for p in (
    Permission("self", "Account", "Own account", "See one's own identity; sign out (every role holds it)", _ALL),
    # Devices
    Permission("machines.read", _DEVICES, "View devices",
               "List and read devices, their actions, logged-on users and device groups", _ALL),
    Permission("machines.act", _DEVICES, "Act on devices",
               "Tag devices, set their value, request inventory, configuration assessment or an antivirus scan, "
               "cancel actions", _ACT),
    Permission("machines.import", _DEVICES, "Import devices and events",
               "Create agentless devices from an inventory; import event logs into a device's timeline", _ACT),
    Permission("machines.offboard", _DEVICES, "Offboard devices", "Offboard a device (its credential stops working)",
               _ADMIN),
    Permission("events.read", _DEVICES, "View device timelines",
               "Read a device's event timeline, its events and sensor health; export the timeline", _ALL),
    # Vulnerability management
    Permission("vulnerabilities.read", _TVM, "View vulnerability management",
               "Software, vulnerabilities, recommendations, configuration assessment, scores, exports, "
               "exceptions, remediation activities, event timeline, notification rules, feed status", _ALL),
    Permission("remediation.manage", _TVM, "Manage remediation",
               "Create and complete remediation activities, open their tickets; recompute scores", _ACT),
    Permission("exceptions.manage", _TVM, "Manage exceptions",
               "Create and cancel recommendation exceptions for the caller's device groups", _ACT),
    Permission("exceptions.global", _TVM, "Manage global exceptions",
               "Create and cancel Global exceptions (every current and future device group)", _ADMIN),
    # Administration
    Permission("users.manage", _TENANT, "Manage users", "Create, change, disable and delete users", _ADMIN),
    Permission("apikeys.manage", _TENANT, "Manage API keys", "Create, list and revoke API keys", _ADMIN),
    Permission("roles.manage", _TENANT, "Manage roles", "Define, change and delete custom roles", _ADMIN),
    Permission("enrollment.manage", _TENANT, "Manage enrollment",
               "Create, list and revoke enrollment secrets", _ADMIN),
    Permission("groups.manage", _TENANT, "Manage device groups",
               "Create, change and delete device groups and their rules", _ADMIN),
    Permission("audit.read", _TENANT, "View audit log", "Read the audit log", _ADMIN),
    Permission("settings.read", _TENANT, "View sensor settings", "Read sensor exclusion settings", _ACT),
    Permission("settings.manage", _TENANT, "Manage settings",
               "Sensor exclusions, integration connections and notification rules", _ADMIN),
    # Detection and response: declared now, for the routes the EDR issues add.
    Permission("hunt", _EDR, "Advanced hunting", "Run advanced hunting queries", _ALL),
    Permission("alerts.read", _EDR, "View alerts and incidents", "Read detection alerts and incidents", _ALL),
    Permission("alerts.manage", _EDR, "Manage alerts",
               "Assign, classify and resolve alerts and incidents; raise vulnerability alerts on devices", _ACT),
    Permission("indicators.read", _EDR, "View indicators", "List custom indicators (hashes, IPs, domains, URLs)",
               _ALL),
    Permission("indicators.manage", _EDR, "Manage indicators", "Submit, update and delete custom indicators", _ACT),
    Permission("rules.manage", _EDR, "Manage detection rules", "Create, change and delete detection rules", _ACT),
    Permission("isolate", _EDR, "Isolate devices", "Isolate devices from the network and release them", _ACT),
    Permission("liveresponse.basic", _EDR, "Live response (basic)", "Live response: read-only commands", _ACT),
    Permission("liveresponse.advanced", _EDR, "Live response (advanced)",
               "Live response: run scripts, put and get files", _ADMIN),
    Permission("remediation.approve", _EDR, "Approve remediation actions",
               "Approve pending remediation actions on devices", _ADMIN),
)}

# Held by every role, built-in or custom.
ALWAYS = frozenset({"self"})

BUILTIN: dict[str, frozenset[str]] = {
    role: frozenset(p.name for p in PERMISSIONS.values() if role in p.roles) for role in BUILTIN_ROLES
}


class P:
    """Permission names as constants, so that a typo in a route is an import-time error."""

    SELF = "self"
    MACHINES_READ = "machines.read"
    MACHINES_ACT = "machines.act"
    MACHINES_IMPORT = "machines.import"
    MACHINES_OFFBOARD = "machines.offboard"
    EVENTS_READ = "events.read"
    VULNERABILITIES_READ = "vulnerabilities.read"
    REMEDIATION_MANAGE = "remediation.manage"
    EXCEPTIONS_MANAGE = "exceptions.manage"
    EXCEPTIONS_GLOBAL = "exceptions.global"
    ALERTS_MANAGE = "alerts.manage"
    USERS_MANAGE = "users.manage"
    APIKEYS_MANAGE = "apikeys.manage"
    ROLES_MANAGE = "roles.manage"
    ENROLLMENT_MANAGE = "enrollment.manage"
    GROUPS_MANAGE = "groups.manage"
    AUDIT_READ = "audit.read"
    SETTINGS_READ = "settings.read"
    SETTINGS_MANAGE = "settings.manage"
    HUNT = "hunt"
    ALERTS_READ = "alerts.read"
    INDICATORS_READ = "indicators.read"
    INDICATORS_MANAGE = "indicators.manage"
    RULES_MANAGE = "rules.manage"
    ISOLATE = "isolate"
    LIVERESPONSE_BASIC = "liveresponse.basic"
    LIVERESPONSE_ADVANCED = "liveresponse.advanced"
    REMEDIATION_APPROVE = "remediation.approve"


if {v for k, v in vars(P).items() if not k.startswith("_")} != set(PERMISSIONS):
    raise RuntimeError("garrison.core.permissions: P and PERMISSIONS disagree")


def known(name: str) -> str:
    """``name`` if it is a permission of the table, else ValueError (a typo in code)."""
    if name not in PERMISSIONS:
        raise ValueError(f"unknown permission {name!r}")
    return name


def check_permissions(names: Iterable[str]) -> frozenset[str]:
    """A custom role's permissions, validated against the table (``ALWAYS`` added)."""
    names = set(names)
    unknown = sorted(names - set(PERMISSIONS))
    if unknown:
        raise ValueError(f"unknown permission(s) {', '.join(unknown)}; see GET /api/permissions")
    return frozenset(names) | ALWAYS


def of_builtin(role: str) -> frozenset[str] | None:
    """The permissions of a built-in role, None for any other name."""
    return BUILTIN.get(role)
