"""Scheme registry and the base class every version scheme implements.

A scheme turns a version string into a *sort key*: an object with a total order (``<`` and ``==``)
that agrees with the ecosystem's own comparison. Matching sorts and bisects many versions, so keys
are memoised per scheme and, wherever possible, are plain tuples (compared in C, not Python).
Keys are only comparable with keys of the same scheme.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, TypeVar

from garrison.registry import Registry

__all__ = [
    "InvalidVersion",
    "SortKey",
    "UnknownEcosystemError",
    "UnknownSchemeError",
    "VersionScheme",
    "available_schemes",
    "get_scheme",
    "register_scheme",
]

# Longer strings are not versions; refusing them bounds the work and the cache's memory.
MAX_VERSION_LENGTH = 256


class InvalidVersion(ValueError):
    """The string cannot be ordered by the scheme (empty, whitespace, control characters, bad shape)."""

    def __init__(self, scheme: str, version: object, reason: str) -> None:
        self.scheme = scheme
        self.version = version
        self.reason = reason
        super().__init__(f"invalid {scheme} version {version!r}: {reason}")


class UnknownSchemeError(ValueError):
    """No scheme is registered under that name."""


class UnknownEcosystemError(ValueError):
    """The OSV ecosystem name maps to no version scheme."""


class SortKey(Protocol):
    """What ``VersionScheme.key`` returns: totally ordered within one scheme."""

    def __lt__(self, other: Any, /) -> bool: ...

    def __eq__(self, other: object, /) -> bool: ...


class VersionScheme(ABC):
    """One ecosystem's version ordering.

    Subclasses set ``name`` (via ``register_scheme``) and implement ``_key``; the public ``key`` is
    ``_key`` behind common input checks and an LRU cache. ``compare`` and ``validate`` derive from it.
    """

    name: ClassVar[str] = ""
    # Large enough for every version of a big ecosystem that one matching run touches.
    cache_size: ClassVar[int] = 1 << 16

    #: Memoised ``version -> SortKey``; raises ``InvalidVersion``. Set per instance in ``__init__``.
    key: Callable[[str], SortKey]

    def __init__(self) -> None:
        # A bound lru_cache per instance (not on the method) so each scheme has its own cache.
        self.key = functools.lru_cache(maxsize=self.cache_size)(self._checked_key)

    @abstractmethod
    def _key(self, version: str) -> SortKey:
        """Build the sort key for an already screened string; raise ``InvalidVersion`` for garbage."""

    def _checked_key(self, version: str) -> SortKey:
        if not isinstance(version, str):
            raise InvalidVersion(self.name, version, f"expected str, got {type(version).__name__}")
        if not version:
            raise InvalidVersion(self.name, version, "empty string")
        if len(version) > MAX_VERSION_LENGTH:
            raise InvalidVersion(
                self.name, version[:40] + "...", f"longer than {MAX_VERSION_LENGTH} characters"
            )
        if not version.isprintable() or any(c.isspace() for c in version):
            raise InvalidVersion(self.name, version, "contains whitespace or control characters")
        return self._key(version)

    def invalid(self, version: str, reason: str) -> InvalidVersion:
        """Build the error for ``version`` (helper for subclasses)."""
        return InvalidVersion(self.name, version, reason)

    def compare(self, a: str, b: str) -> int:
        """-1, 0 or 1 as ``a`` is older than, equal to or newer than ``b``."""
        ka, kb = self.key(a), self.key(b)
        if ka < kb:
            return -1
        if kb < ka:
            return 1
        return 0

    def validate(self, version: str) -> None:
        """Raise ``InvalidVersion`` if the scheme cannot order ``version``."""
        self.key(version)

    def clear_cache(self) -> None:
        self.key.cache_clear()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


SCHEMES: Registry[VersionScheme] = Registry("version scheme", package="garrison.tvm.versions",
                                            unknown=UnknownSchemeError)
"""One shared instance per scheme; every module of ``garrison.tvm.versions`` is discovered."""

S = TypeVar("S", bound=type[VersionScheme])


def register_scheme(name: str) -> Callable[[S], S]:
    """Class decorator: register one shared instance of the scheme under ``name``."""

    def decorate(cls: S) -> S:
        cls.name = name
        SCHEMES.add(name, cls())
        return cls

    return decorate


def get_scheme(name: str) -> VersionScheme:
    return SCHEMES[name]


def available_schemes() -> list[str]:
    return list(SCHEMES)
