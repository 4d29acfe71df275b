"""The quarantine on the device: detected files moved to an agent-owned store, restorable exactly.

Layout: ``<dir>/`` (0700, the agent's user — root on a device) holds ``<id>.bin`` (the file's
content, mode 0400: readable by the owner only, executable by nobody) and ``<id>.json`` (0600: the
original path, mode, owner, group, times, size, hashes, the detection, when). A file is moved by
``rename`` when the quarantine is on the same file system (its inode moves: nothing is copied, and an
open descriptor of a running process keeps working but no new open finds it) and copied, synced and
unlinked otherwise. Restore puts the content back at the original path (or a given one) with the
original mode, owner and modification time, after checking the SHA-256; it never overwrites a file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import stat
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

_ID = re.compile(r"^[0-9a-f]{32}$")
_CHUNK = 1 << 20


@dataclass
class QuarantineEntry:
    id: str
    original_path: str
    mode: int  # st_mode's permission bits (with setuid/setgid/sticky)
    uid: int
    gid: int
    size: int
    mtime_ns: int
    sha256: str
    sha1: str
    md5: str
    quarantined_at: str
    threat_name: str = ""
    detection: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _hashes(path: Path) -> tuple[str, str, str]:
    md5, sha1, sha256 = (hashlib.md5(usedforsecurity=False), hashlib.sha1(usedforsecurity=False),
                         hashlib.sha256())
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            md5.update(chunk)
            sha1.update(chunk)
            sha256.update(chunk)
    return sha256.hexdigest(), sha1.hexdigest(), md5.hexdigest()


class Quarantine:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)  # an existing directory is tightened too

    def _paths(self, entry_id: str) -> tuple[Path, Path]:
        if not _ID.match(entry_id):
            raise KeyError(f"no quarantine entry {entry_id!r}")
        return self.dir / f"{entry_id}.bin", self.dir / f"{entry_id}.json"

    def add(self, path: str, threat_name: str = "", detection: dict[str, Any] | None = None) -> QuarantineEntry:
        """Move the regular file ``path`` into the quarantine. Raises OSError/ValueError when it cannot."""
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path}: not a regular file")
        entry_id = uuid.uuid4().hex
        blob, meta = self._paths(entry_id)
        try:
            os.rename(path, blob)
        except OSError as exc:
            if exc.errno != 18:  # EXDEV: another file system — copy, sync, then unlink the original
                raise
            tmp = blob.with_suffix(".part")
            with open(path, "rb") as src, open(tmp, "xb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
                dst.flush()
                os.fsync(dst.fileno())
            os.replace(tmp, blob)
            os.unlink(path)
        os.chown(blob, os.geteuid(), os.getegid())
        os.chmod(blob, 0o400)
        sha256, sha1, md5 = _hashes(blob)
        entry = QuarantineEntry(
            id=entry_id, original_path=os.path.abspath(path), mode=stat.S_IMODE(st.st_mode), uid=st.st_uid,
            gid=st.st_gid, size=st.st_size, mtime_ns=st.st_mtime_ns, sha256=sha256, sha1=sha1, md5=md5,
            quarantined_at=dt.datetime.now(dt.UTC).isoformat(), threat_name=threat_name[:256],
            detection=detection or {})
        fd = os.open(meta, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(entry.to_dict(), f)
        return entry

    def get(self, entry_id: str) -> QuarantineEntry:
        _, meta = self._paths(entry_id)
        try:
            return QuarantineEntry(**json.loads(meta.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise KeyError(f"no quarantine entry {entry_id!r}") from None

    def entries(self) -> list[QuarantineEntry]:
        entries = []
        for meta in sorted(self.dir.glob("*.json")):
            try:
                entries.append(self.get(meta.stem))
            except (KeyError, ValueError, TypeError):
                continue
        return sorted(entries, key=lambda e: e.quarantined_at)

    def restore(self, entry_id: str, to: str | None = None) -> str:
        """Put the file back (content, mode, owner, modification time); returns the path restored to."""
        entry = self.get(entry_id)
        blob, meta = self._paths(entry_id)
        if _hashes(blob)[0] != entry.sha256:
            raise ValueError(f"quarantined content of {entry_id} does not match its SHA-256: not restored")
        target = to or entry.original_path
        if os.path.lexists(target):
            raise FileExistsError(f"{target} exists: not overwritten")
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        tmp = f"{target}.garrison-restore-{entry_id[:8]}"
        try:
            os.rename(blob, tmp)
        except OSError as exc:
            if exc.errno != 18:
                raise
            shutil.copyfile(blob, tmp)
            blob.unlink()
        os.chown(tmp, entry.uid, entry.gid)
        os.chmod(tmp, entry.mode)  # after chown: chown clears setuid/setgid
        os.utime(tmp, ns=(entry.mtime_ns, entry.mtime_ns))
        os.link(tmp, target)  # fails if the target appeared meanwhile: never overwrites
        os.unlink(tmp)
        meta.unlink()
        return target

    def delete(self, entry_id: str) -> None:
        blob, meta = self._paths(entry_id)
        self.get(entry_id)
        blob.unlink(missing_ok=True)
        meta.unlink()
