"""What a reported package *is*: its software product, its ecosystem and the name advisories use.

Everything here is a pure function of the package's identity, so that the global
``package_versions`` row of a package is the same whichever device reported it first.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass

from garrison.inventory.cpe import Cpe, CpeError, parse_cpe
from garrison.protocol import SoftwarePackage

# Package managers of language ecosystems: their packages carry no distro, so the ecosystem
# follows from the manager when the collector left it empty.
MANAGER_ECOSYSTEMS = {
    "python": "PyPI", "pip": "PyPI", "npm": "npm", "gem": "RubyGems", "cargo": "crates.io", "go": "Go",
    "maven": "Maven", "composer": "Packagist", "nuget": "NuGet",
}
# Distro ecosystem base -> the os-release ID used as software vendor (Defender: vendor-_-name).
DISTRO_VENDORS = {
    "Ubuntu": "ubuntu", "Debian": "debian", "Alpine": "alpine", "Red Hat": "rhel", "Rocky Linux": "rocky",
    "AlmaLinux": "almalinux", "SUSE": "sles", "openSUSE": "opensuse", "Wolfi": "wolfi",
    "Chainguard": "chainguard", "Photon OS": "photon", "Mageia": "mageia", "openEuler": "openeuler",
}
LANGUAGE_VENDORS = {
    "PyPI": "python", "npm": "npm", "RubyGems": "rubygems", "crates.io": "crates", "Go": "golang",
    "Maven": "maven", "Packagist": "packagist", "NuGet": "nuget",
}
# Ecosystems whose advisories name the *source* package (OSV schema, "Ecosystems" table):
# a binary is matched through its source package and the source version.
SOURCE_KEYED = frozenset({"Debian", "Ubuntu", "Alpine", "Mageia", "openEuler", "SUSE", "openSUSE", "Echo"})
# Distros whose advisories may name binary or source packages (Red Hat: either; Rocky: source;
# Alma: binaries): both names are looked up, each with the installed version.
BOTH_NAMES = frozenset({"Red Hat", "Rocky Linux", "AlmaLinux", "CentOS", "Fedora", "Photon OS", "Wolfi",
                        "Chainguard"})

# Package managers of a distro: an empty ecosystem means "the device's distro release".
DISTRO_MANAGERS = frozenset({"dpkg", "rpm", "apk", "kernel"})
# Software no distro or package database tracks (an SBOM's binary or application component with a CPE)
# is matched against NVD's CPE configurations, stored under this pseudo-ecosystem as "vendor:product".
CPE_ECOSYSTEM = "CPE"

_PYPI_RUN = re.compile(r"[-_.]+")
_ID_UNSAFE = re.compile(r"[^a-z0-9._+\-]+")


def ecosystem_base(ecosystem: str) -> str:
    return ecosystem.split(":", 1)[0]


def package_ecosystem(pkg: SoftwarePackage, distro_ecosystem: str) -> str:
    """The package's OSV ecosystem: as reported, else from its manager, else the device's distro for
    distro packages; other software with a CPE is matched by CPE, the rest by nothing."""
    if pkg.ecosystem:
        return pkg.ecosystem
    if pkg.manager in MANAGER_ECOSYSTEMS:
        return MANAGER_ECOSYSTEMS[pkg.manager]
    if pkg.manager in DISTRO_MANAGERS:
        return distro_ecosystem
    return CPE_ECOSYSTEM if _application_cpe(pkg.cpe) else ""


@functools.lru_cache(maxsize=4096)  # package_ecosystem and identity_of both ask, per package
def _application_cpe(text: str) -> Cpe | None:
    if not text:
        return None
    try:
        cpe = parse_cpe(text)
    except CpeError:
        return None
    return cpe if cpe.part == "a" else None


def normalise_name(ecosystem: str, name: str) -> str:
    if ecosystem_base(ecosystem) == "PyPI":
        return _PYPI_RUN.sub("-", name).lower()
    return name


def match_name(ecosystem: str, name: str, source_name: str) -> str:
    """The package name the ecosystem's advisories use for this package."""
    if ecosystem_base(ecosystem) in SOURCE_KEYED or ecosystem == CPE_ECOSYSTEM:
        return source_name or name
    return normalise_name(ecosystem, name)


def _id_part(text: str) -> str:
    return _ID_UNSAFE.sub("_", text.strip().lower()).strip("_") or "unknown"


def product_of(cpe_key: str) -> str:
    """``postgresql:postgresql`` (a CPE-matched package's match name) → ``postgresql``."""
    return _id_part(cpe_key.split(":", 1)[-1])


def vendor_of(ecosystem: str, manager: str, source_name: str = "") -> str:
    base = ecosystem_base(ecosystem)
    if base == CPE_ECOSYSTEM:
        return _id_part(source_name.split(":", 1)[0])  # the CPE's vendor, as Defender names software
    return DISTRO_VENDORS.get(base) or LANGUAGE_VENDORS.get(base) or _id_part(base or manager)


@dataclass(frozen=True)
class PackageIdentity:
    """The global identity of one package version (one ``package_versions`` row)."""

    ecosystem: str
    manager: str
    name: str
    version: str
    source_name: str
    source_version: str
    arch: str

    @property
    def key(self) -> str:
        fields = (self.ecosystem, self.manager, self.name, self.version, self.source_name, self.source_version,
                  self.arch)
        raw = "\x1f".join(fields)  # a separator no field can contain
        return hashlib.sha256(raw.encode()).hexdigest()

    @property
    def match_name(self) -> str:
        return match_name(self.ecosystem, self.name, self.source_name)

    @property
    def vendor(self) -> str:
        return vendor_of(self.ecosystem, self.manager, self.source_name)

    @property
    def software_name(self) -> str:
        if self.ecosystem == CPE_ECOSYSTEM:
            return product_of(self.source_name)
        return _id_part(normalise_name(self.ecosystem, self.name))

    @property
    def software_id(self) -> str:
        return f"{self.vendor}-_-{self.software_name}"[:300]


def identity_of(pkg: SoftwarePackage, distro_ecosystem: str) -> PackageIdentity:
    ecosystem = package_ecosystem(pkg, distro_ecosystem)
    name = normalise_name(ecosystem, pkg.name)
    source_name = pkg.source_name or name
    cpe = _application_cpe(pkg.cpe) if ecosystem == CPE_ECOSYSTEM else None
    if cpe is not None:
        source_name = cpe.product_key  # what NVD's configurations name
    return PackageIdentity(
        ecosystem=ecosystem,
        manager=pkg.manager,
        name=name,
        version=pkg.version,
        source_name=source_name,
        source_version=pkg.source_version or pkg.version,
        arch=pkg.arch,
    )
