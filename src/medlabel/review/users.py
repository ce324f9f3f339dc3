"""People of the annotation store: accounts, roles, scrypt password hashes.

:class:`UserAccounts` is the part of :class:`medlabel.review.store.Store` that manages who may
review and decide. Every change is audited; the last admin can never lose the role. A user's
``sessions_from`` time revokes the sessions (sign-ins) made before it: signing out everywhere
and password resets set it.

Example:
    >>> import tempfile
    >>> from medlabel.review.store import open_store
    >>> store = open_store(f"sqlite:///{tempfile.mkdtemp()}/review.db")
    >>> store.add_user("ana", "admin", "correct horse battery")
    >>> store.set_role("ana", "reviewer", by="ana")
    Traceback (most recent call last):
    ...
    medlabel.errors.StoreError: ana is the only admin; make another admin first
    >>> store.account("ana")[0], store.account("nobody")
    ('admin', None)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medlabel.errors import StoreError
from medlabel.review.schema import ROLES, Audit, User

__all__ = ["NAME_CHARACTERS", "UserAccounts", "valid_name"]

#: what a new user name may hold besides letters and digits (any script)
NAME_CHARACTERS = "._@-"


def valid_name(name: str) -> bool:
    """Whether ``name`` may name a new user: 1-120 letters, digits or ``._@-`` (so it is safe
    in a URL path and a log line).

    Example:
        >>> valid_name("ana.maria@lab-2"), valid_name("José"), valid_name("a/b"), valid_name("")
        (True, True, False, False)
    """
    return 0 < len(name) <= 120 and all(c.isalnum() or c in NAME_CHARACTERS for c in name)


_NAME_RULE = (
    "user names are 1-120 letters, digits or the characters . _ @ - "
    "(no spaces, slashes or other symbols)"
)


def _hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def _verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    expected = _hash_password(password, base64.b64decode(salt_b64)).split("$")[2]
    return hmac.compare_digest(expected, digest_b64)


class UserAccounts:
    """User management over the store's transactional ``session()``."""

    def session(self) -> AbstractContextManager[Session]:
        """A session that commits on success and rolls back on error."""
        raise NotImplementedError

    def add_user(self, name: str, role: str, password: str, *, by: str | None = None) -> None:
        """Create a user (or reset an existing user's role and password, which also revokes
        their sessions).

        ``by`` is the admin who did it (recorded in the audit; default: the user). New names
        are 1-120 letters, digits or ``._@-`` (:func:`valid_name`); users whose names an
        older medlabel accepted can still be reset.

        Raises:
            StoreError: an invalid name, an unknown role, a password shorter than 8
                characters, or the last admin losing the role.
        """
        if not name or len(name) > 120 or not name.isprintable() or name != name.strip():
            raise StoreError(None, _NAME_RULE)
        if role not in ROLES:
            raise StoreError(None, f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if len(password) < 8:
            raise StoreError(None, "passwords have at least 8 characters")
        with self.session() as s:
            user = s.get(User, name)
            if user is None:
                if not valid_name(name):
                    raise StoreError(None, _NAME_RULE)
                s.add(User(name=name, role=role, password_hash=_hash_password(password)))
            else:
                self._keep_an_admin(s, user, role)
                user.role, user.password_hash = role, _hash_password(password)
                user.sessions_from = time.time()  # a reset password ends the old sessions
            s.add(Audit(user=by or name, action="user", detail={"name": name, "role": role}))

    def revoke_sessions(self, name: str, *, by: str | None = None) -> None:
        """End every session of ``name`` made until now (sign out everywhere); ``by`` is who
        did it (recorded in the audit; default: the user).

        Raises:
            StoreError: an unknown user.
        """
        with self.session() as s:
            user = s.get(User, name)
            if user is None:
                raise StoreError(None, f"no user {name!r}")
            user.sessions_from = time.time()
            s.add(Audit(user=by or name, action="user:signed-out", detail={"name": name}))

    def account(self, name: str) -> tuple[str, float] | None:
        """A user's role and the time (epoch seconds) before which their sessions are revoked
        (``0.0`` when never), or ``None`` for unknown users."""
        with self.session() as s:
            user = s.get(User, name)
            return None if user is None else (user.role, float(user.sessions_from or 0.0))

    def set_role(self, name: str, role: str, *, by: str) -> None:
        """Change a user's role.

        Raises:
            StoreError: an unknown user or role, or the last admin losing the role.
        """
        if role not in ROLES:
            raise StoreError(None, f"role must be one of {', '.join(ROLES)}, not {role!r}")
        with self.session() as s:
            user = s.get(User, name)
            if user is None:
                raise StoreError(None, f"no user {name!r}")
            self._keep_an_admin(s, user, role)
            user.role = role
            s.add(Audit(user=by, action="user", detail={"name": name, "role": role}))

    def remove_user(self, name: str, *, by: str) -> None:
        """Delete a user; their past annotations keep their name as author.

        Raises:
            StoreError: an unknown user, or the last admin.
        """
        with self.session() as s:
            user = s.get(User, name)
            if user is None:
                raise StoreError(None, f"no user {name!r}")
            self._keep_an_admin(s, user, None)
            s.delete(user)
            s.add(Audit(user=by, action="user:removed", detail={"name": name}))

    @staticmethod
    def _keep_an_admin(s: Session, user: User, new_role: str | None) -> None:
        if user.role == "admin" and new_role != "admin":
            admins = s.scalar(select(func.count()).select_from(User).where(User.role == "admin"))
            if int(admins or 0) <= 1:
                raise StoreError(None, f"{user.name} is the only admin; make another admin first")

    def users(self) -> list[dict[str, Any]]:
        """Every user: name, role and when they were created (no password hashes)."""
        with self.session() as s:
            rows = s.scalars(select(User).order_by(User.name)).all()
            return [
                {"name": u.name, "role": u.role, "created": u.created.isoformat()} for u in rows
            ]

    def check_password(self, name: str, password: str) -> bool:
        """Whether ``password`` is ``name``'s (constant-time comparison)."""
        with self.session() as s:
            user = s.get(User, name)
            return user is not None and _verify_password(password, user.password_hash)

    def role(self, name: str) -> str | None:
        """A user's role (``None`` for unknown users)."""
        with self.session() as s:
            user = s.get(User, name)
            return None if user is None else user.role
