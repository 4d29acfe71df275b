"""OSV ecosystem name -> version scheme.

OSV qualifies some ecosystems with a release after a colon ("Debian:12", "Alpine:v3.14",
"Ubuntu:20.04:LTS", "Red Hat:enterprise_linux:9::appstream"); only the part before the first colon
chooses the scheme.
"""

from __future__ import annotations

from ._base import UnknownEcosystemError, VersionScheme, get_scheme

ECOSYSTEM_SCHEMES: dict[str, str] = {
    # Debian family
    "Debian": "dpkg",
    "Ubuntu": "dpkg",
    # apk family
    "Alpine": "apk",
    "Wolfi": "apk",
    "Chainguard": "apk",
    # RPM family
    "Red Hat": "rpm",
    "Rocky Linux": "rpm",
    "AlmaLinux": "rpm",
    "SUSE": "rpm",
    "openSUSE": "rpm",
    "CentOS": "rpm",
    "Fedora": "rpm",
    "Mageia": "rpm",
    "openEuler": "rpm",
    # language ecosystems
    "PyPI": "pep440",
    "npm": "semver",
    "crates.io": "semver",
    "Hex": "semver",
    "Go": "go",
    "Maven": "maven",
    "RubyGems": "rubygems",
    "NuGet": "nuget",
    "Packagist": "packagist",
    "CRAN": "cran",
    "Hackage": "hackage",
    "Pub": "pub",
    # software matched by NVD CPE configurations (garrison.tvm.software.CPE_ECOSYSTEM)
    "CPE": "generic",
}

# OSV names are case-sensitive, but feeds and users are not always careful.
_BY_LOWER = {name.lower(): scheme for name, scheme in ECOSYSTEM_SCHEMES.items()}


def scheme_for_ecosystem(ecosystem: str) -> VersionScheme:
    """The version scheme for an OSV ecosystem name; ``UnknownEcosystemError`` if there is none."""
    if not isinstance(ecosystem, str):
        raise UnknownEcosystemError(f"ecosystem must be a str, got {type(ecosystem).__name__}")
    base = ecosystem.split(":", 1)[0].strip()
    scheme = _BY_LOWER.get(base.lower())
    if scheme is None:
        raise UnknownEcosystemError(
            f"no version scheme for ecosystem {ecosystem!r}; known: {', '.join(sorted(ECOSYSTEM_SCHEMES))}"
        )
    return get_scheme(scheme)
