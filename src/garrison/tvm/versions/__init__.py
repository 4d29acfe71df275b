from . import apk, cran, dpkg, hackage, maven, nuget, pep440, pub, rpm, rubygems, semver  # noqa: F401
from ._base import get_scheme
