"""The gateway's secret key, and what it signs.

Run ids derived from an Idempotency-Key, input ids and list page tokens are
HMAC-SHA256 under this key, so nobody without it can compute another tenant's run id or forge a
page token. The key is `DURABLE_AGENT_SECRET_KEY`; when that is unset, a random key is created
once in `<data_dir>/gateway.secret` (mode 0600) and reused, so that restarts and every gateway on
the host agree. Gateways on several hosts must set the same `DURABLE_AGENT_SECRET_KEY`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from config import Settings

logger = logging.getLogger(__name__)

SECRET_FILE = "gateway.secret"
_TOKEN_MAC_BYTES = 16


def load_secret(settings: Settings) -> bytes:
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        return settings.secret_key.get_secret_value().encode()
    return _file_secret(Path(settings.data_dir) / SECRET_FILE)


def _file_secret(path: Path) -> bytes:
    """The key in `path`, made there first if missing. Several gateways starting at once agree:
    each writes a private temporary file and links it into place; only the first link wins."""
    if path.exists():
        return _read(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
        try:
            os.link(temporary, path)
            logger.info("created the gateway secret key in %s", path)
        except FileExistsError:
            pass  # another gateway was first: use its key
    finally:
        temporary.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> bytes:
    key = path.read_text().strip()
    if not key:
        raise RuntimeError(f"{path} is empty; delete it or set DURABLE_AGENT_SECRET_KEY")
    return key.encode()


def mac(secret: bytes, *parts: str) -> str:
    """Hex HMAC-SHA256 of the parts (NUL-separated, so ("a", "bc") != ("ab", "c"))."""
    message = "\0".join(parts).encode("utf-8", "surrogatepass")
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign_token(secret: bytes, raw: bytes) -> str:
    tag = hmac.new(secret, raw, hashlib.sha256).digest()[:_TOKEN_MAC_BYTES]
    return base64.urlsafe_b64encode(tag + raw).decode()


def open_token(secret: bytes, token: str) -> bytes | None:
    """The bytes `sign_token` signed, or None for a forged, tampered or garbled token."""
    try:
        blob = base64.urlsafe_b64decode(token.encode("ascii"))
    except (binascii.Error, ValueError):
        return None
    tag, raw = blob[:_TOKEN_MAC_BYTES], blob[_TOKEN_MAC_BYTES:]
    expected = hmac.new(secret, raw, hashlib.sha256).digest()[:_TOKEN_MAC_BYTES]
    if not raw or not hmac.compare_digest(tag, expected):
        return None
    return raw
