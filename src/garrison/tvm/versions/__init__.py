"""Version comparison per ecosystem, for vulnerability matching.

    from garrison.tvm.versions import scheme_for_ecosystem
    scheme = scheme_for_ecosystem("Debian:12")
    scheme.compare("1.2.3-1~deb12u1", "1.2.3-1")  # -1
    sorted(versions, key=scheme.key)               # keys are memoised and cheap to compare

Each scheme module registers itself in ``SCHEMES`` (every module here is discovered); see docs/versions.md
for how each was chosen.
"""

from ._base import (
    SCHEMES,
    InvalidVersion,
    SortKey,
    UnknownEcosystemError,
    UnknownSchemeError,
    VersionScheme,
    available_schemes,
    get_scheme,
    register_scheme,
)
from .ecosystems import ECOSYSTEM_SCHEMES, scheme_for_ecosystem

__all__ = [
    "ECOSYSTEM_SCHEMES",
    "SCHEMES",
    "InvalidVersion",
    "SortKey",
    "UnknownEcosystemError",
    "UnknownSchemeError",
    "VersionScheme",
    "available_schemes",
    "get_scheme",
    "register_scheme",
    "scheme_for_ecosystem",
]
