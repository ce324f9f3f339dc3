"""User accounts of the annotation store: roles, password hashes, the last admin."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text

from medlabel.errors import StoreError
from medlabel.review.store import open_store
from medlabel.review.users import _hash_password


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


def test_new_user_names_are_letters_digits_and_a_few_marks(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    for ok in ("ana.maria@lab-2", "José_Ñ", "x" * 120):
        store.add_user(ok, "viewer", "long enough pw")
    for bad in ("a/b", "a b", "a%2Fb", "ana?", "x" * 121, ""):
        with pytest.raises(StoreError, match=r"user names are 1-120 letters, digits"):
            store.add_user(bad, "viewer", "long enough pw")
    # a user an older medlabel let in keeps working: reset and removed as before
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "insert into users (name, role, password_hash, created) "
                "values ('old/name', 'viewer', 'x', '2026-01-01')"
            )
        )
    store.add_user("old/name", "reviewer", "a new password")
    assert store.check_password("old/name", "a new password")
    store.remove_user("old/name", by="José_Ñ")
    assert store.role("old/name") is None


def test_sessions_are_revoked_by_signing_out_and_password_resets(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    store.add_user("ana", "reviewer", "long enough pw")
    assert store.account("ana") == ("reviewer", 0.0) and store.account("bob") is None
    before = time.time()
    store.revoke_sessions("ana", by="root")
    role, since = store.account("ana")  # type: ignore[misc]
    assert role == "reviewer" and before <= since <= time.time()
    entry = store.audit(1)[0]
    assert (entry["user"], entry["action"], entry["detail"]) == (
        "root",
        "user:signed-out",
        {"name": "ana"},
    )
    time.sleep(0.01)
    store.add_user("ana", "viewer", "another long pw")  # a reset ends the old sessions too
    role, reset = store.account("ana")  # type: ignore[misc]
    assert role == "viewer" and reset > since
    with pytest.raises(StoreError, match="no user 'bob'"):
        store.revoke_sessions("bob")


def test_a_store_from_before_sessions_keeps_its_users(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from medlabel.review.store import _MIGRATIONS

    url = f"sqlite:///{tmp_path}/s.db"
    engine = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:  # the schema of medlabel with revision 0002, with a user
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
        conn.execute(
            text(
                "insert into users (name, role, password_hash, created) "
                "values ('ana', 'admin', :h, '2026-01-01')"
            ),
            {"h": _hash_password("long enough pw")},
        )
    engine.dispose()
    store = open_store(url)  # migrates to the head, keeping the user
    with store.engine.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).scalar() == "0003"
    assert store.account("ana") == ("admin", 0.0)
    assert store.check_password("ana", "long enough pw")
    store.revoke_sessions("ana")
    assert store.account("ana")[1] > 0  # type: ignore[index]
