"""Rule packs: versioned by content, compiled once (cached), a bad source left out and reported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from garrison.agent.protection.rulepack import load_pack
from tests.agent.protection.samples import RULES


def test_version_cache_and_bad_sources(tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    shutil.copytree(RULES, pack)
    (pack / "pack.json").write_text(json.dumps({"name": "signature-base", "version": "2026.04.09"}))
    cache = tmp_path / "cache"
    first = load_pack(pack, cache)
    assert first.version.startswith("signature-base@2026.04.09+") and first.errors == {}
    assert first.files == 2 and first.rule_count == 2
    compiled = list(cache.glob("*.yarc"))
    assert [p.name for p in compiled] == [f"{first.digest}.yarc"]
    assert oct(cache.stat().st_mode & 0o777) == "0o700" and oct(compiled[0].stat().st_mode & 0o777) == "0o600"
    # Loaded from the cache the second time: the cached file is what is used (its mtime is unchanged).
    mtime = compiled[0].stat().st_mtime_ns
    again = load_pack(pack, cache)
    assert again.digest == first.digest and again.rule_count == 2 and compiled[0].stat().st_mtime_ns == mtime
    # A broken source: left out and reported, the rest still compiles; the version changes.
    (pack / "broken.yar").write_text("rule broken { strings: $a = \"x\" condition: $b }")
    (pack / "includes.yar").write_text('include "/etc/passwd"\nrule inc { condition: true }')
    third = load_pack(pack, cache)
    assert set(third.errors) == {"broken.yar", "includes.yar"} and third.rule_count == 2
    assert third.digest != first.digest
    assert set(load_pack(pack, cache).errors) == {"broken.yar", "includes.yar"}  # also from the cache
    with pytest.raises(ValueError, match="no rule files"):
        load_pack(tmp_path / "cache", None)
