from . import apk, dpkg, pep440, rpm  # noqa: F401
from ._base import get_scheme
