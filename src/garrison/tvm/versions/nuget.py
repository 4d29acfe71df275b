"""NuGet: ``major.minor.patch.revision[-prerelease][+metadata]`` (NuGet.Versioning's VersionComparer).

Hand-written on the SemVer parser: four numeric parts (missing ones are 0, so ``1.0 == 1.0.0.0``),
pre-release labels compared case-insensitively, metadata ignored. univers agrees on every vector but
is ~20x slower per comparison and rejects inputs this accepts.
"""

from __future__ import annotations

from ._base import register_scheme
from .semver import SemverScheme


@register_scheme("nuget")
class NugetScheme(SemverScheme):
    width = 4
    fold_case = True
