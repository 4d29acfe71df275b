"""Connection secrets encrypted at rest (AES-256-GCM) under a key kept outside the database.

Each value of ``IntegrationConnection.secrets`` is stored as ``enc:v1:<key id>:<base64(nonce|ciphertext)>``;
the keys (``token``, ``password``…) stay readable so the API can say which secrets are set without
the key. The associated data binds a value to its tenant and secret name, so a value copied into
another tenant's row does not decrypt.

The key is the operator's (``GARRISON_SECRETS_KEY``: comma-separated, the first encrypts, all
decrypt, for rotation and for several nodes sharing one database) or else ``<data-dir>/secrets.key``,
created 0600 on first encryption. Values written before encryption existed (plain strings) are
still read; they are encrypted on the next write and by the ``integrations.secrets`` job.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets as random
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from garrison.core.errors import GarrisonError
from garrison.integrations.settings import KEY_BYTES, current, decode_key

PREFIX = "enc:v1:"
NONCE_BYTES = 12


class SecretsError(GarrisonError):
    """The key is missing or wrong, or a stored value was altered: the server, not the request, is at fault."""

    status = 503
    code = "SecretsUnavailable"


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def is_encrypted(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def _keys(create: bool) -> tuple[bytes, ...]:
    cfg = current()
    if cfg.keys:
        return cfg.keys
    if cfg.key_file is None:
        raise SecretsError("no key for connection secrets: set GARRISON_SECRETS_KEY")
    try:
        return (_read(cfg.key_file),)
    except FileNotFoundError:
        if not create:
            raise SecretsError(f"the key file {cfg.key_file} is missing, so connection secrets cannot be decrypted: "
                               "restore it or set GARRISON_SECRETS_KEY, then save the connection's secrets "
                               "again if the key is lost") from None
        return (_create(cfg.key_file),)
    except OSError as exc:
        raise SecretsError(f"cannot read the key file {cfg.key_file}: {exc.strerror or exc}") from None


def _read(path: Path) -> bytes:
    try:
        return decode_key(path.read_text(encoding="ascii"))
    except (ValueError, UnicodeDecodeError):
        raise SecretsError(f"the key file {path} does not hold a key ({KEY_BYTES} bytes, URL-safe base64)") from None


def _create(path: Path) -> bytes:
    """A new random key file, 0600; if another process creates one at the same time, its key wins."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{random.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode() + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # atomic: never a half-written or replaced key file
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    except OSError as exc:
        raise SecretsError(f"cannot create the key file {path}: {exc.strerror or exc}") from None
    return _read(path)


def _aad(tenant_id: int, name: str) -> bytes:
    return f"garrison:connection-secret:{tenant_id}:{name}".encode()


def encrypt(tenant_id: int, name: str, value: str) -> str:
    key = _keys(create=True)[0]
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, value.encode(), _aad(tenant_id, name))
    return f"{PREFIX}{key_id(key)}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def decrypt(tenant_id: int, name: str, stored: object) -> str:
    """The plaintext of a stored value; a value stored before encryption is returned as it is."""
    if not is_encrypted(stored):
        return str(stored)
    kid, _, data = str(stored)[len(PREFIX):].partition(":")
    key = next((k for k in _keys(create=False) if key_id(k) == kid), None)
    if key is None:
        raise SecretsError(f"secret {name!r} was encrypted with key {kid}, which this server does not have "
                           "(check GARRISON_SECRETS_KEY or the data directory's secrets.key)")
    try:
        raw = base64.urlsafe_b64decode(data.encode())
        return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(tenant_id, name)).decode()
    except (InvalidTag, binascii.Error, ValueError):
        raise SecretsError(f"secret {name!r} cannot be decrypted: it was altered or copied from "
                           "another tenant") from None


def seal(tenant_id: int, stored: dict[str, object], new: dict[str, str] | None = None) -> dict[str, str]:
    """Stored values (legacy plaintext ones encrypted now) overlaid with ``new`` plaintext values, all encrypted."""
    out = {k: str(v) if is_encrypted(v) else encrypt(tenant_id, k, str(v)) for k, v in (stored or {}).items()
           if k not in (new or {})}
    out.update({k: encrypt(tenant_id, k, v) for k, v in (new or {}).items()})
    return out


def unseal(tenant_id: int, stored: dict[str, object]) -> dict[str, str]:
    return {k: decrypt(tenant_id, k, v) for k, v in (stored or {}).items()}


def current_key_id(create: bool = False) -> str:
    """Id of the key that encrypts now (the first operator key, or the key file's)."""
    return key_id(_keys(create)[0])


def key_id_of(value: object) -> str | None:
    return str(value)[len(PREFIX):].partition(":")[0] if is_encrypted(value) else None


def reseal(tenant_id: int, stored: dict[str, object]) -> dict[str, str]:
    """Every value encrypted under the current key: plaintext ones and those of an older key."""
    return seal(tenant_id, {}, unseal(tenant_id, stored))
