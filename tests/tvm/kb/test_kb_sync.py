import hashlib
import shutil
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest

from garrison.tvm.kb import feeds_status, sync
from tests.tvm.kb.kbutil import advisory, vuln


class Mirror:
    """A feed mirror on loopback: serves files with ETag/Last-Modified and answers 304 on a match."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[tuple[str, dict[str, str], int]] = []
        self.fail: set[str] = set()
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                path = urlparse(self.path).path
                headers = {k: v for k, v in self.headers.items()}
                if path in mirror.fail:
                    self._reply(path, headers, 500)
                    return
                file = (mirror.root / path.lstrip("/")).resolve()
                if mirror.root.resolve() not in file.parents or not file.is_file():
                    self._reply(path, headers, 404)
                    return
                body = file.read_bytes()
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == etag:
                    self._reply(path, headers, 304, etag=etag)
                    return
                self._reply(path, headers, 200, body, etag)

            def _reply(self, path, headers, code, body=b"", etag=None) -> None:
                mirror.requests.append((path, headers, code))
                self.send_response(code)
                if etag:
                    self.send_header("ETag", etag)
                    self.send_header("Last-Modified", "Mon, 25 Aug 2025 17:04:19 GMT")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mirror(data, tmp_path) -> Iterator[Mirror]:
    root = tmp_path / "mirror"
    (root / "kev").mkdir(parents=True)
    shutil.copy(data / "kev" / "known_exploited_vulnerabilities.json", root / "kev")
    (root / "epss").mkdir()
    shutil.copy(data / "epss" / "epss_scores.csv.gz", root / "epss" / "epss_scores-current.csv.gz")
    (root / "osv" / "PyPI").mkdir(parents=True)
    with zipfile.ZipFile(root / "osv" / "PyPI" / "all.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for p in (data / "osv").glob("*/**/*"):
            if p.is_file() and (p.suffix == ".yaml" or "ghsa" in p.parts):
                zf.write(p, p.name)
    (root / "nvd" / "cves").mkdir(parents=True)
    shutil.copy(data / "nvd" / "nvdcve-2.0-sample.json", root / "nvd" / "cves" / "2.0")
    m = Mirror(root)
    yield m
    m.close()


def _mirrors(m: Mirror) -> dict[str, str]:
    return {name: f"{m.base}/{name}" for name in ("kev", "epss", "osv", "nvd")}


def test_sync_downloads_imports_and_then_asks_conditionally(store, mirror) -> None:
    sources = ["kev", "epss", "osv:PyPI/all.zip"]
    first = sync(store, sources=sources, mirrors=_mirrors(mirror))
    assert [(f.feed, f.status) for f in first.feeds] == [
        ("epss", "imported"), ("kev", "imported"), ("osv:PyPI/all.zip", "imported")]
    assert first.errors == []
    assert vuln(store, "CVE-2021-3156").kev and vuln(store, "CVE-2021-3156").epss == 0.99295
    assert sorted(vuln(store, "CVE-2021-21236").sources) == ["GHSA-hq37-853p-g5cf", "PYSEC-2021-5"]
    assert all("If-None-Match" not in h for _, h, _ in mirror.requests)

    mirror.requests.clear()
    second = sync(store, sources=sources, mirrors=_mirrors(mirror))
    assert [f.status for f in second.feeds] == ["not_modified"] * 3
    assert [code for _, _, code in mirror.requests] == [304, 304, 304]
    assert all(h.get("If-None-Match", "").startswith('"') for _, h, _ in mirror.requests)
    assert all(h.get("If-Modified-Since") == "Mon, 25 Aug 2025 17:04:19 GMT" for _, h, _ in mirror.requests)
    assert second.total.records == 0

    status = {f["name"]: f for f in feeds_status(store)}
    assert status["kev"]["url"] == f"{mirror.base}/kev/known_exploited_vulnerabilities.json"
    assert status["kev"]["etag"] and status["kev"]["last_success"] and status["kev"]["error"] is None
    assert status["kev"]["record_count"] == 17 and status["kev"]["vulnerabilities"] == 17
    assert status["osv:PyPI/all.zip"]["advisories"] == 5


def test_a_failing_feed_is_recorded_and_the_others_still_sync(store, mirror) -> None:
    mirror.fail.add("/kev/known_exploited_vulnerabilities.json")
    result = sync(store, sources=["kev", "epss"], mirrors=_mirrors(mirror))
    assert {f.feed: f.status for f in result.feeds} == {"kev": "failed", "epss": "imported"}
    assert result.errors and "500" in result.errors[0]
    status = {f["name"]: f for f in feeds_status(store)}
    assert "500" in status["kev"]["error"] and status["kev"]["last_success"] is None
    assert status["kev"]["etag"] is None  # nothing imported: the next sync downloads again
    assert vuln(store, "CVE-2021-3156").epss == 0.99295
    mirror.fail.clear()
    again = sync(store, sources=["kev"], mirrors=_mirrors(mirror))
    assert again.feeds[0].status == "imported"
    assert feeds_status(store)[[f["name"] for f in feeds_status(store)].index("kev")]["error"] is None


def test_a_download_that_is_not_the_feed_is_an_error(store, mirror) -> None:
    (mirror.root / "kev" / "known_exploited_vulnerabilities.json").write_text("<html>maintenance</html>")
    result = sync(store, sources=["kev"], mirrors=_mirrors(mirror))
    assert result.feeds[0].status == "failed"
    status = {f["name"]: f for f in feeds_status(store)}
    assert status["kev"]["etag"] is None


def test_nvd_pages_are_fetched_on_request_only(store, mirror) -> None:
    result = sync(store, sources=["nvd"], mirrors=_mirrors(mirror))
    assert [(f.feed, f.status) for f in result.feeds] == [("nvd", "imported")]
    assert advisory(store, "NVD-CVE-2024-0012") is not None
    assert mirror.requests[0][0] == "/nvd/cves/2.0"
    # A default sync (no sources) leaves NVD out: it is hours of paging.
    from garrison.tvm.kb.online import _selected
    from garrison.tvm.kb.registry import get_importer

    assert not _selected(get_importer("nvd"), "cves/2.0", None)
    assert _selected(get_importer("kev"), "known_exploited_vulnerabilities.json", None)
