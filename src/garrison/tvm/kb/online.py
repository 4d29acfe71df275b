"""Online sync: fetch each importer's official feed URLs (or a mirror) and import what changed.

Conditional requests (If-None-Match / If-Modified-Since from ``feed_sources``) make an unchanged feed
cost one 304. Downloads stream to a temporary file with a size limit; the HTTP validators are saved
only after the import succeeded, so a failed import is retried on the next sync. One failing feed
does not stop the others; its error is kept in ``feed_sources.error``.

The NVD API is paged rather than a file: it is synced only when asked for (``sources=["nvd"]``),
incrementally by lastModStartDate once it has succeeded.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from garrison.store.base import utcnow
from garrison.store.db import Store
from garrison.store.models.kb import FeedSource
from garrison.tvm.kb.pipeline import ImportResult, import_bytes, import_paths
from garrison.tvm.kb.registry import Importer, importers

MAX_DOWNLOAD = 4 * 1024 * 1024 * 1024
USER_AGENT = "garrison-kb-sync/0.1"
NVD_PAGE = 2000
NVD_MAX_WINDOW = dt.timedelta(days=120)  # the API's limit for lastMod ranges


@dataclass
class FeedResult:
    feed: str
    url: str
    status: str  # imported, not_modified, failed
    http_status: int | None = None
    result: ImportResult | None = None
    error: str | None = None


@dataclass
class SyncResult:
    feeds: list[FeedResult] = field(default_factory=list)
    total: ImportResult = field(default_factory=ImportResult)

    @property
    def errors(self) -> list[str]:
        return [f"{f.feed}: {f.error}" for f in self.feeds if f.error]


def feed_name(imp: Importer, key: str) -> str:
    return imp.name if len(imp.default_urls) == 1 else f"{imp.name}:{key}"


def _selected(imp: Importer, key: str, sources: list[str] | None) -> bool:
    if sources is None:
        return imp.name != "nvd"  # a full NVD sync is hours of paging: only on request
    return imp.name in sources or feed_name(imp, key) in sources


def sync(
    store: Store,
    sources: list[str] | None = None,
    mirrors: dict[str, str] | None = None,
    progress: Callable[[str, str], None] | None = None,
    *,
    client: httpx.Client | None = None,
    timeout: float = 120.0,
    nvd_api_key: str | None = None,
    nvd_page_delay: float | None = None,
) -> SyncResult:
    """Fetch and import feeds. ``sources``: importer names ("kev") or feed names ("osv:PyPI/all.zip");
    default all but NVD. ``mirrors``: importer name -> base URL replacing the official host (the
    feed's path under it is the key of ``default_urls``). ``progress(feed, status)`` after each feed."""
    mirrors = mirrors or {}
    own = client is None
    http = client or httpx.Client(timeout=timeout, follow_redirects=True, headers={"User-Agent": USER_AGENT})
    out = SyncResult()
    try:
        for imp in importers():
            for key, official in imp.default_urls.items():
                if not _selected(imp, key, sources):
                    continue
                base = mirrors.get(imp.name)
                url = f"{base.rstrip('/')}/{key}" if base else official
                name = feed_name(imp, key)
                if imp.name == "nvd":
                    delay = nvd_page_delay if nvd_page_delay is not None else (0.0 if base or nvd_api_key else 6.0)
                    fr = _sync_nvd(store, http, name, url, nvd_api_key, delay)
                else:
                    fr = _sync_file(store, http, imp, name, url)
                out.feeds.append(fr)
                if fr.result:
                    out.total.merge(fr.result)
                if progress:
                    progress(name, fr.status)
    finally:
        if own:
            http.close()
    return out


def _feed_row(store: Store, name: str) -> tuple[str | None, str | None, dt.datetime | None]:
    with store.system() as s:
        row = s.get(FeedSource, name)
        return (row.etag, row.last_modified, row.last_success) if row else (None, None, None)


def _record(store: Store, name: str, url: str, *, error: str | None = None, etag: str | None = None,
            last_modified: str | None = None, success: bool = False, clear_error: bool = True) -> None:
    now = utcnow()
    with store.system() as s:
        row = s.get(FeedSource, name)
        if row is None:
            row = FeedSource(name=name, stats={})
            s.add(row)
        row.url = url
        row.last_sync = now
        if success:
            row.last_success = now
            if clear_error:
                row.error = None
        if error is not None:
            row.error = error[:4000]
        if etag is not None:
            row.etag = etag[:512]
        if last_modified is not None:
            row.last_modified = last_modified[:128]


def _sync_file(store: Store, http: httpx.Client, imp: Importer, name: str, url: str) -> FeedResult:
    etag, last_modified, _ = _feed_row(store, name)
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    tmp_path = None
    try:
        with http.stream("GET", url, headers=headers) as resp:
            if resp.status_code == 304:
                _record(store, name, url, success=True)
                return FeedResult(name, url, "not_modified", 304)
            if resp.status_code != 200:
                raise httpx.HTTPStatusError(f"HTTP {resp.status_code}", request=resp.request, response=resp)
            fd, tmp_path = tempfile.mkstemp(prefix="garrison-feed-")
            size = 0
            with os.fdopen(fd, "wb") as fh:
                for chunk in resp.iter_bytes(1024 * 1024):
                    size += len(chunk)
                    if size > MAX_DOWNLOAD:
                        raise ValueError(f"download larger than {MAX_DOWNLOAD} bytes")
                    fh.write(chunk)
            new_etag = resp.headers.get("ETag")
            new_lm = resp.headers.get("Last-Modified")
        result = import_paths(store, tmp_path, importer=imp.name, feed=name, feed_url=url)
        failed = result.records == 0 and result.error_count > 0
        if failed:
            _record(store, name, url, error="; ".join(result.errors[:5]))
            return FeedResult(name, url, "failed", 200, result, result.errors[0])
        # Validators only after a successful import: a failed one is fetched again next time.
        _record(store, name, url, etag=new_etag or "", last_modified=new_lm or "", success=True,
                clear_error=False)  # keep the import's record errors
        return FeedResult(name, url, "imported", 200, result)
    except (httpx.HTTPError, OSError, ValueError) as exc:
        message = str(exc)[:500] or exc.__class__.__name__
        _record(store, name, url, error=message)
        return FeedResult(name, url, "failed", getattr(getattr(exc, "response", None), "status_code", None),
                          error=message)
    finally:
        if tmp_path:
            try:
                os.unlink(tmp_path)
            except OSError:
                pass


def _sync_nvd(store: Store, http: httpx.Client, name: str, url: str, api_key: str | None,
              delay: float) -> FeedResult:
    _, _, last_success = _feed_row(store, name)
    params: dict[str, Any] = {"resultsPerPage": NVD_PAGE, "startIndex": 0}
    now = utcnow()
    if last_success and now - last_success < NVD_MAX_WINDOW:
        fmt = "%Y-%m-%dT%H:%M:%S.000Z"
        params["lastModStartDate"] = last_success.astimezone(dt.UTC).strftime(fmt)
        params["lastModEndDate"] = now.strftime(fmt)
    headers = {"apiKey": api_key} if api_key else {}
    total = ImportResult()
    try:
        while True:
            resp = http.get(url, params=params, headers=headers)
            if resp.status_code != 200:
                raise httpx.HTTPStatusError(f"HTTP {resp.status_code}", request=resp.request, response=resp)
            if len(resp.content) > MAX_DOWNLOAD:
                raise ValueError("NVD page too large")
            page = resp.json()
            result = import_bytes(store, resp.content, f"{url}?startIndex={params['startIndex']}", importer="nvd")
            total.merge(result)
            got = len(page.get("vulnerabilities") or []) if isinstance(page, dict) else 0
            count = page.get("totalResults", 0) if isinstance(page, dict) else 0
            params["startIndex"] += got
            if got == 0 or not isinstance(count, int) or params["startIndex"] >= count:
                break
            if delay:
                time.sleep(delay)  # NVD allows 5 requests per 30 s without a key
        _record(store, name, url, success=True)
        with store.system() as s:
            row = s.get(FeedSource, name)
            if row is not None:
                row.record_count = total.records
                row.stats = {"records": total.records, "unchanged": total.unchanged, "errors": total.error_count}
        return FeedResult(name, url, "imported", 200, total)
    except (httpx.HTTPError, OSError, ValueError) as exc:
        message = str(exc)[:500] or exc.__class__.__name__
        _record(store, name, url, error=message)
        return FeedResult(name, url, "failed", error=message, result=total)
