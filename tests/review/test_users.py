"""User accounts of the annotation store: roles, password hashes, the last admin."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from medlabel.errors import StoreError
from medlabel.review.store import open_store


def test_users_roles_and_password_hashes(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    store.add_user("ana", "reviewer", "long enough pw")
    with store.engine.connect() as conn:
        stored = conn.execute(text("select password_hash from users")).scalar()
    assert "long enough pw" not in stored and stored.startswith("scrypt$")
    assert store.check_password("ana", "long enough pw") and not store.check_password("ana", "no")
    assert not store.check_password("bob", "long enough pw") and store.role("ana") == "reviewer"
    with pytest.raises(StoreError, match="role"):
        store.add_user("x", "superuser", "long enough pw")
    with pytest.raises(StoreError, match="8 characters"):
        store.add_user("x", "viewer", "short")
    with pytest.raises(StoreError, match="user names"):
        store.add_user(" ana", "viewer", "long enough pw")


def test_roles_change_users_leave_and_one_admin_always_stays(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    store.add_user("root", "admin", "long enough pw")
    with pytest.raises(StoreError, match="only admin"):
        store.set_role("root", "reviewer", by="root")
    with pytest.raises(StoreError, match="only admin"):
        store.remove_user("root", by="root")
    store.add_user("ana", "viewer", "long enough pw", by="root")
    store.set_role("ana", "admin", by="root")
    store.set_role("root", "reviewer", by="ana")  # another admin exists now
    store.remove_user("root", by="ana")
    assert [(u["name"], u["role"]) for u in store.users()] == [("ana", "admin")]
    with pytest.raises(StoreError, match="no user"):
        store.set_role("root", "viewer", by="ana")
    with pytest.raises(StoreError, match="role must be one of"):
        store.set_role("ana", "owner", by="ana")
    actions = [(e["user"], e["action"]) for e in store.audit()]
    assert ("ana", "user:removed") in actions and ("root", "user") in actions
