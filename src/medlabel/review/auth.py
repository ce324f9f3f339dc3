"""Sessions for the review server: signed, expiring tokens in an HTTP-only cookie.

A token is ``user.issued.signature`` (issue time in milliseconds) with an HMAC-SHA256
signature under a secret kept in the job folder (``.medlabel/secret``, created with
owner-only permissions), so sessions survive a server restart and cannot be forged. A token
lives ``lifetime_s`` from its issue; the server also refuses tokens issued before the user's
last sign-out or password reset (:meth:`Sessions.claims` gives the issue time to compare).
Passwords are checked by the store (scrypt hashes).

Example:
    >>> keys = Sessions(b"0" * 32)
    >>> token = keys.issue("ana")
    >>> keys.user(token), keys.user(token + "x"), keys.user("ana.1.forged")
    ('ana', None, None)
    >>> Sessions(b"0" * 32, lifetime_s=-1).user(token)  # expired
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
        """A token for ``user`` valid for ``lifetime_s`` seconds from now."""
        name = base64.urlsafe_b64encode(user.encode()).decode().rstrip("=")
        payload = f"{name}.{int(time.time() * 1000)}"
        return f"{payload}.{self._sign(payload)}"

    def claims(self, token: str | None) -> tuple[str, float] | None:
        """The user of a valid, unexpired token and when it was issued (epoch seconds),
        ``None`` otherwise."""
        if not token or token.count(".") != 2:
            return None
        name, issued, signature = token.split(".")
        if not hmac.compare_digest(self._sign(f"{name}.{issued}"), signature):
            return None
        if not issued.isdigit() or int(issued) / 1000 + self.lifetime_s < time.time():
            return None
        padded = name + "=" * (-len(name) % 4)
        try:
            return base64.urlsafe_b64decode(padded).decode(), int(issued) / 1000
        except (ValueError, UnicodeDecodeError):
            return None

    def user(self, token: str | None) -> str | None:
        """The user of a valid, unexpired token (``None`` otherwise)."""
        found = self.claims(token)
        return None if found is None else found[0]
