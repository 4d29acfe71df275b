"""Registry, ecosystem mapping, invalid input, memoisation, and key() order agreeing with compare()."""

from __future__ import annotations

import functools
import itertools
import random

import pytest

from garrison.tvm.versions import (
    ECOSYSTEM_SCHEMES,
    InvalidVersion,
    UnknownEcosystemError,
    UnknownSchemeError,
    VersionScheme,
    available_schemes,
    get_scheme,
    register_scheme,
    scheme_for_ecosystem,
)
from tests.tvm.versions.version_vectors import EXPECTED, FILE_SCHEMES, load, versions

ALL_SCHEMES = ["apk", "cran", "dpkg", "generic", "go", "hackage", "maven", "nuget", "packagist", "pep440", "pub", "rpm",
               "rubygems", "semver"]  # fmt: skip


def test_all_schemes_registered() -> None:
    assert available_schemes() == ALL_SCHEMES
    for name in ALL_SCHEMES:
        s = get_scheme(name)
        assert isinstance(s, VersionScheme)
        assert s.name == name


def test_unknown_scheme_is_a_clear_error() -> None:
    with pytest.raises(UnknownSchemeError, match="unknown version scheme 'nope'.*dpkg"):
        get_scheme("nope")


def test_registering_a_taken_name_fails() -> None:
    with pytest.raises(ValueError, match="registered twice"):

        @register_scheme("dpkg")
        class Again(VersionScheme):
            def _key(self, version: str) -> tuple[str]:
                return (version,)


@pytest.mark.parametrize(
    ("ecosystem", "scheme"),
    [
        ("Debian", "dpkg"),
        ("Debian:12", "dpkg"),
        ("Ubuntu", "dpkg"),
        ("Ubuntu:20.04:LTS", "dpkg"),
        ("Ubuntu:Pro:18.04:LTS", "dpkg"),
        ("Alpine", "apk"),
        ("Alpine:v3.14", "apk"),
        ("Red Hat", "rpm"),
        ("Red Hat:enterprise_linux:9::appstream", "rpm"),
        ("Rocky Linux", "rpm"),
        ("Rocky Linux:9", "rpm"),
        ("AlmaLinux", "rpm"),
        ("AlmaLinux:8", "rpm"),
        ("SUSE", "rpm"),
        ("SUSE:Linux Enterprise Server 15 SP5", "rpm"),
        ("openSUSE", "rpm"),
        ("openSUSE:Leap 15.5", "rpm"),
        ("CentOS", "rpm"),
        ("Fedora", "rpm"),
        ("PyPI", "pep440"),
        ("npm", "semver"),
        ("crates.io", "semver"),
        ("Go", "go"),
        ("Maven", "maven"),
        ("RubyGems", "rubygems"),
        ("NuGet", "nuget"),
        ("Packagist", "packagist"),
        ("CRAN", "cran"),
        ("Hackage", "hackage"),
        ("Pub", "pub"),
        ("pypi", "pep440"),  # case-insensitive
    ],
)
def test_scheme_for_ecosystem(ecosystem: str, scheme: str) -> None:
    assert scheme_for_ecosystem(ecosystem) is get_scheme(scheme)


def test_every_mapped_ecosystem_has_a_scheme() -> None:
    for ecosystem, scheme in ECOSYSTEM_SCHEMES.items():
        assert scheme_for_ecosystem(ecosystem).name == scheme


@pytest.mark.parametrize("ecosystem", ["", "Gentoo", "Arch Linux", ":12", "Debianish", None])
def test_unknown_ecosystem_is_a_clear_error(ecosystem: object) -> None:
    with pytest.raises(UnknownEcosystemError, match="ecosystem"):
        scheme_for_ecosystem(ecosystem)  # type: ignore[arg-type]


# Garbage every scheme must refuse.
COMMON_GARBAGE: list[object] = [
    "",
    " ",
    "1.0 ",
    " 1.0",
    "1 0",
    "1.0\n",
    "1.\x00",
    "\t",
    "1" * 300,
    None,
    1,
    b"1.0",
]

# Scheme-specific garbage.
GARBAGE = {
    "dpkg": ["a:1", ":1", "1:", "-1", "1.0-", "1.0-1!", "1.0@2", "x:1.0-1"],
    "semver": ["abc", "v", "x1.2.3", "-1.0.0", "=", "vv1.0.0"],
    "go": ["abc", "v", "latest"],
    "nuget": ["abc", "v", "beta"],
    "pub": ["abc", "v", "any"],
    "cran": ["1.a", "a", "1..2", "1.0-", "v1.0"],
    "hackage": ["1-2", "a", "1.", "1.0a"],
    "rubygems": ["abc", ".1", "1.0+x", "1.0_1", "=1.0"],
    "maven": ["...", "--", ".-."],
    "packagist": ["...", "--", "#"],
    "pep440": ["...", "--", "!"],
}


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
@pytest.mark.parametrize("garbage", COMMON_GARBAGE, ids=repr)
def test_common_garbage_is_rejected(scheme: str, garbage: object) -> None:
    s = get_scheme(scheme)
    with pytest.raises(InvalidVersion) as err:
        s.validate(garbage)  # type: ignore[arg-type]
    with pytest.raises(InvalidVersion):
        s.key(garbage)  # type: ignore[arg-type]
    with pytest.raises(InvalidVersion):
        s.compare(garbage, "1.0")  # type: ignore[arg-type]
    assert isinstance(err.value, ValueError)
    assert err.value.scheme == scheme
    assert f"invalid {scheme} version" in str(err.value)


@pytest.mark.parametrize(("scheme", "garbage"), [(s, g) for s, gs in GARBAGE.items() for g in gs])
def test_scheme_garbage_is_rejected(scheme: str, garbage: str) -> None:
    with pytest.raises(InvalidVersion, match=f"invalid {scheme} version") as err:
        get_scheme(scheme).validate(garbage)
    assert err.value.version == garbage
    assert err.value.reason


@pytest.mark.parametrize(
    ("scheme", "good"),
    [
        ("dpkg", "1:2.30-1ubuntu1~20.04.1"),
        ("rpm", "2:1.0.2k-25.el7_9"),
        ("apk", "1.2.3_rc1-r0"),
        ("pep440", "1!2.0rc1.post2.dev3+local.7"),
        ("pep440", "0.9-doduo"),  # legacy, ordered before every PEP 440 version
        ("semver", "v1.2.3-beta.1+build.5"),
        ("go", "v0.0.0-20210101000000-abcdef123456"),
        ("go", "v2.0.0+incompatible"),
        ("maven", "1.0.0.RELEASE"),
        ("rubygems", "1.0.0.pre.rc1"),
        ("nuget", "1.0.0.1-Beta+meta"),
        ("packagist", "dev-main"),
        ("cran", "1.0-12"),
        ("hackage", "0.1.2.3"),
        ("pub", "1.0.0-dev.1+build"),
    ],
)
def test_valid_versions_pass_validate(scheme: str, good: str) -> None:
    get_scheme(scheme).validate(good)


def test_legacy_pypi_sorts_below_pep440() -> None:
    s = get_scheme("pep440")
    assert s.compare("0.9-doduo", "0.0.1") == -1
    assert s.compare("1.0.0+local", "1.0.0") == 1
    assert s.compare("1.0", "1.0.0") == 0


def test_key_is_memoised() -> None:
    s = get_scheme("dpkg")
    s.clear_cache()
    s.key("1.2.3-1")
    s.key("1.2.3-1")
    info = s.key.cache_info()  # type: ignore[attr-defined]
    assert info.hits >= 1 and info.misses == 1
    assert s.key("1.2.3-1") is s.key("1.2.3-1")


def _sign(ka: object, kb: object) -> int:
    return -1 if ka < kb else (1 if kb < ka else 0)  # type: ignore[operator]


# PHP's "#" placeholder equals every number, so no total order can agree with compare() on it.
KEY_EXEMPT = {("packagist", "1.2.3.#", "1.2.3.1"), ("packagist", "1.2.3.1", "1.2.3.#")}


@pytest.mark.parametrize(("prefix", "scheme"), [(p, s) for p, ss in FILE_SCHEMES.items() for s in ss])
def test_key_order_agrees_with_compare_on_vectors(prefix: str, scheme: str) -> None:
    s = get_scheme(scheme)
    for vec in load(prefix):
        if (scheme, vec.a, vec.b) in KEY_EXEMPT:
            continue
        ka, kb = s.key(vec.a), s.key(vec.b)
        assert _sign(ka, kb) == s.compare(vec.a, vec.b) == EXPECTED[vec.op], vec
        assert (ka == kb) == (vec.op == "="), vec


@pytest.mark.parametrize(("prefix", "scheme"), [(p, s) for p, ss in FILE_SCHEMES.items() for s in ss])
def test_sorting_by_key_is_a_total_order_consistent_with_compare(prefix: str, scheme: str) -> None:
    """Sort every version of the files by key; random pairs must then compare in sorted order."""
    s = get_scheme(scheme)
    vs = [v for v in versions(prefix) if "#" not in v or scheme != "packagist"]
    rng = random.Random(1234)
    rng.shuffle(vs)
    by_key = sorted(vs, key=s.key)
    by_cmp = sorted(vs, key=functools.cmp_to_key(s.compare))
    assert [s.key(v) for v in by_key] == [s.key(v) for v in by_cmp]
    for _ in range(5000):
        i, j = sorted(rng.sample(range(len(by_key)), 2)) if len(by_key) > 1 else (0, 0)
        assert s.compare(by_key[i], by_key[j]) <= 0, (by_key[i], by_key[j])
        assert s.compare(by_key[j], by_key[i]) >= 0, (by_key[j], by_key[i])


@pytest.mark.parametrize(
    ("scheme", "ordered"),
    [
        (
            "dpkg",
            ["1.0~rc1", "1.0", "1.0-0.1", "1.0-1~deb12u1", "1.0-1", "1.0-1+b1", "1.0a", "1.0.1", "1:0.1"],
        ),
        ("rpm", ["1.0~rc1", "1.0", "1.0-1", "1.0-1.el9", "1.0-2", "1.0^git1", "1.0.1", "1:0.1"]),
        ("apk", ["1.0_alpha1", "1.0_rc1", "1.0", "1.0-r1", "1.0_p1", "1.0a", "1.0.1"]),
        ("pep440", ["1.0.dev0", "1.0a1", "1.0rc1", "1.0", "1.0+local", "1.0.post1", "1.1", "1!0.1"]),
        ("semver", ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta", "1.0.0-rc.1", "1.0.0", "1.0.1", "v2.0.0"]),
        ("go", ["v0.0.0-20200101000000-aaaaaaaaaaaa", "v0.1.0", "v1.2.3", "v2.0.0+incompatible"]),
        (
            "maven",
            [
                "1.0-alpha-1",
                "1.0-beta",
                "1.0-milestone-1",
                "1.0-rc1",
                "1.0-SNAPSHOT",
                "1.0",
                "1.0-sp1",
                "1.0.1",
            ],
        ),
        ("rubygems", ["1.0.a", "1.0.b1", "1.0.rc", "1.0", "1.0.1", "1.1"]),
        ("nuget", ["1.0.0-alpha", "1.0.0-BETA", "1.0.0-rc.1", "1.0.0", "1.0.0.1", "1.0.1"]),
        (
            "packagist",
            ["1.0-dev", "1.0alpha1", "1.0beta1", "1.0RC1", "1.0", "1.0.1", "1.0pl1", "1.1"],
        ),  # pl > any number
        ("cran", ["0.9", "0.9-1", "0.10", "1.0"]),
        ("hackage", ["0.9", "0.9.0", "0.10", "1"]),
        ("pub", ["1.0.0-dev", "1.0.0", "1.0.0+1", "1.0.0+2", "1.0.1"]),
    ],
)
def test_known_orderings(scheme: str, ordered: list[str]) -> None:
    s = get_scheme(scheme)
    shuffled = list(reversed(ordered))
    assert sorted(shuffled, key=s.key) == ordered
    for older, newer in itertools.pairwise(ordered):
        assert s.compare(older, newer) == -1, (older, newer)
