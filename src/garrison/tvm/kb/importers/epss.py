"""FIRST EPSS scores: CSV ``cve,epss,percentile``, possibly after a ``#model_version:…`` comment line
(as https://epss.empiricalsecurity.com publishes it), usually gzip-compressed (the walker unpacks it)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any, ClassVar

from garrison.tvm.kb.records import CVE_RE, Record, RecordError, ScoreTable
from garrison.tvm.kb.registry import Importer, register_importer

_HEADER_RE = re.compile(rb"^(?:#[^\n]*\n)*\s*cve,epss,percentile\s*(?:\r?\n|$)")
CHUNK = 20_000


@register_importer
class EpssImporter(Importer):
    name = "epss"
    priority = 10
    default_urls: ClassVar[dict[str, str]] = {
        "epss_scores-current.csv.gz": "https://epss.empiricalsecurity.com/epss_scores-current.csv.gz",
    }

    def sniff(self, head: bytes) -> bool:
        return _HEADER_RE.match(head.lstrip(b"\xef\xbb\xbf")) is not None

    def parse(self, data: bytes, origin: str) -> Iterator[Record]:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            yield RecordError(f"{origin}: not UTF-8 text: {exc}")
            return
        header_seen = False
        errors = 0
        rows: list[tuple[Any, ...]] = []
        cve_match = CVE_RE.match
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line or line[0] == "#":
                continue
            if not header_seen:
                if line.strip() != "cve,epss,percentile":
                    yield RecordError(f"{origin}:{lineno}: header: expected 'cve,epss,percentile'")
                    return
                header_seen = True
                continue
            parts = line.split(",")
            problem = None
            if len(parts) != 3:
                problem = "expected 3 fields"
            elif not cve_match(parts[0]):
                problem = f"cve: not a CVE id: {parts[0][:32]!r}"
            else:
                try:
                    epss, pct = float(parts[1]), float(parts[2])
                except ValueError:
                    problem = "epss/percentile: not a number"
                else:
                    if not (0.0 <= epss <= 1.0 and 0.0 <= pct <= 1.0) or math.isnan(epss) or math.isnan(pct):
                        problem = "epss/percentile: outside [0, 1]"
            if problem:
                errors += 1
                if errors <= 100:  # a broken file must not flood the error list
                    yield RecordError(f"{origin}:{lineno}: {problem}")
                continue
            rows.append((parts[0], epss, pct))
            if len(rows) >= CHUNK:
                yield ScoreTable(("epss", "epss_percentile"), rows)
                rows = []
        if rows:
            yield ScoreTable(("epss", "epss_percentile"), rows)
