"""Every vector line of every file must hold, in both directions, for every scheme it covers."""

from __future__ import annotations

import pytest

from garrison.tvm.versions import get_scheme
from tests.tvm.versions.version_vectors import EXPECTED, FILE_SCHEMES, Vector, load

CASES = [
    pytest.param(scheme, vec, id=f"{scheme}:{vec.file}:{vec.line}")
    for prefix, schemes in FILE_SCHEMES.items()
    for scheme in schemes
    for vec in load(prefix)
]


def test_every_vector_file_is_loaded() -> None:
    counts = {prefix: len(load(prefix)) for prefix in FILE_SCHEMES}
    assert all(counts.values()), counts
    # DATA.md counts 71,842 non-blank lines that do not start with '#'; 24 of them are '//' comments.
    assert sum(counts.values()) == 71_842 - 24


@pytest.mark.parametrize(("scheme", "vec"), CASES)
def test_vector(scheme: str, vec: Vector) -> None:
    s = get_scheme(scheme)
    want = EXPECTED[vec.op]
    assert s.compare(vec.a, vec.b) == want, f"{vec.a} {vec.op} {vec.b}"
    assert s.compare(vec.b, vec.a) == -want, f"{vec.b} (reversed) {vec.a}"
