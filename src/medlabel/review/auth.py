"""Sessions for the review server: signed, expiring tokens in an HTTP-only cookie.

A token is ``user.expiry.signature`` with an HMAC-SHA256 signature under a secret kept in the
job folder (``.medlabel/secret``, created with owner-only permissions), so sessions survive a
server restart and cannot be forged. Passwords are checked by the store (scrypt hashes).

Example:
    >>> keys = Sessions(b"0" * 32)
    >>> token = keys.issue("ana")
    >>> keys.user(token), keys.user(token + "x"), keys.user("ana.1.forged")
    ('ana', None, None)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["COOKIE", "Sessions", "load_secret"]

COOKIE = "medlabel_session"


def load_secret(folder: str | os.PathLike[str]) -> bytes:
    """The server secret of a job folder (created on first use, mode 0600)."""
    path = Path(folder) / ".medlabel" / "secret"
    if path.is_file():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secret)
    return secret


@dataclass
class Sessions:
    """Issues and checks session tokens."""

    secret: bytes
    lifetime_s: int = 12 * 3600

    def _sign(self, payload: str) -> str:
        mac = hmac.new(self.secret, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def issue(self, user: str) -> str:
        """A token for ``user`` valid for ``lifetime_s`` seconds."""
        name = base64.urlsafe_b64encode(user.encode()).decode().rstrip("=")
        payload = f"{name}.{int(time.time()) + self.lifetime_s}"
        return f"{payload}.{self._sign(payload)}"

    def user(self, token: str | None) -> str | None:
        """The user of a valid, unexpired token (``None`` otherwise)."""
        if not token or token.count(".") != 2:
            return None
        name, expiry, signature = token.split(".")
        if not hmac.compare_digest(self._sign(f"{name}.{expiry}"), signature):
            return None
        if not expiry.isdigit() or int(expiry) < time.time():
            return None
        padded = name + "=" * (-len(name) % 4)
        try:
            return base64.urlsafe_b64decode(padded).decode()
        except (ValueError, UnicodeDecodeError):
            return None
