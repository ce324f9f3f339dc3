"""The annotation store: migrations, importing a job, review decisions, audit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from medlabel.review.store import StoreError, open_store


def _job(folder: Path, rows: list[dict]) -> Path:  # type: ignore[type-arg]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _row(item: str, model: str = "cls", label: str = "a", version: str = "1", **kw):  # type: ignore[no-untyped-def]
    return {
        "item": item,
        "source": f"{item}.png",
        "modality": "CR",
        "model": model,
        "model_id": f"{model}@{version}",
        "task": "classification",
        "status": "done",
        "label": label,
        "confidence": 0.8,
        "uncertainty": 0.5,
        "margin": 0.6,
        "p_a": 0.8,
        "p_b": 0.2,
        "mask": "",
        "thumbnail": f"thumbs/{item}.png",
        **kw,
    }


def test_migrations_create_the_schema_once(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    tables = set(inspect(store.engine).get_table_names())
    assert {"items", "predictions", "annotations", "reviews", "users", "audit"} <= tables
    with store.engine.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).scalar() == "0002"
    again = open_store(tmp_path)  # reopening migrates nothing and loses nothing
    assert (tmp_path / ".medlabel" / "review.db").is_file() and again.url == store.url


def test_a_store_made_before_notes_is_upgraded_in_place(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from medlabel.review.store import _MIGRATIONS, default_url

    url = default_url(tmp_path)
    engine = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:  # the schema as the first release made it, with a prediction
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(
            text("insert into items values ('i1', 'i1.png', 'CR', '{}', '', '2026-01-01')")
        )
        conn.execute(
            text(
                "insert into predictions (item_id, model, model_id, task, label, probs, mask, "
                "created) values ('i1', 'cls', 'cls@1', 'classification', 'a', '{}', '', "
                "'2026-01-01')"
            )
        )
    engine.dispose()
    store = open_store(tmp_path)  # migrates to the head, keeping the row
    item = store.item("i1")
    assert item is not None
    (pred,) = item["results"]
    assert pred["label"] == "a" and pred["ood"] is False and pred["notes"] == []
    # importing the same job again fills in what the old store could not keep
    job = _job(tmp_path / "job", [_row("i1", ood=True, notes=["why"])])
    assert store.import_job(job)["predictions"] == 0
    (pred,) = store.predictions(None)
    assert (pred["ood"], pred["notes"], pred["label"]) == (True, ["why"], "a")


def test_out_of_distribution_flags_and_notes_come_through(tmp_path: Path) -> None:
    store = open_store(tmp_path / "db")
    why = ["the network hesitates (entropy 0.1 in its structures; at most 0.023 on its ...)"]
    job = _job(tmp_path / "job", [_row("i1", ood=True, notes=why), _row("i2")])
    store.import_job(job)
    by = {r["item"]: r for r in store.predictions(None)}
    assert (by["i1"]["ood"], by["i1"]["notes"]) == (True, why)
    assert (by["i2"]["ood"], by["i2"]["notes"]) == (False, [])
    item = store.item("i1")
    assert item is not None and item["results"][0]["notes"] == why


def test_import_is_idempotent_and_keeps_human_work(tmp_path: Path) -> None:
    store = open_store(tmp_path / "db")
    job = _job(tmp_path / "job", [_row("i1"), _row("i2", label="b"), _row("i3", status="failed")])
    assert store.import_job(job) == {"items": 2, "predictions": 2, "reviews": 2}
    assert store.import_job(job) == {"items": 0, "predictions": 0, "reviews": 0}
    store.add_user("ana", "reviewer", "long enough pw")
    store.decide("i1", "cls", "accepted", "ana")
    # a rerun with a new model version updates the prediction, not the decided review
    _job(job, [_row("i1", label="b", version="2"), _row("i2", label="b", version="2")])
    assert store.import_job(job)["predictions"] == 2
    states = {(r["item"], r["status"], r["label"]) for r in store.predictions(None)}
    assert states == {("i1", "accepted", "b"), ("i2", "pending", "b")}
    assert store.latest_annotation("i1", "cls")["label"] == "a"  # what the human accepted
    with pytest.raises(StoreError, match=r"manifest\.jsonl"):
        store.import_job(tmp_path / "empty")


def test_review_decisions_versions_progress_and_audit(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.import_job(_job(tmp_path / "job", [_row("i1"), _row("i2"), _row("i3")]))
    store.add_user("ana", "reviewer", "long enough pw")
    store.add_user("vic", "viewer", "long enough pw")
    store.decide("i1", "cls", "accepted", "ana")
    store.decide("i2", "cls", "corrected", "ana", label="b")
    store.decide("i2", "cls", "corrected", "ana", mask="masks/i2/v2.nii.gz")
    store.decide("i3", "cls", "rejected", "ana")
    a2 = store.latest_annotation("i2", "cls")
    assert a2 is not None and a2["version"] == 2 and a2["mask"] == "masks/i2/v2.nii.gz"
    assert a2["author"] == "ana" and a2["prediction_id"] is not None
    assert store.latest_annotation("i3", "cls") is None  # rejecting stores no annotation
    p = store.progress()
    assert (p["accepted"], p["corrected"], p["rejected"], p["pending"]) == (1, 1, 1, 0)
    assert p["agreement"] == pytest.approx(0.5)
    actions = [a["action"] for a in store.audit(4)]
    assert actions == ["review:rejected", "review:corrected", "review:corrected", "review:accepted"]
    with pytest.raises(StoreError, match="may not review"):
        store.decide("i1", "cls", "rejected", "vic")
    with pytest.raises(StoreError, match="status"):
        store.decide("i1", "cls", "maybe", "ana")
    with pytest.raises(StoreError, match="needs a label or a mask"):
        store.decide("i1", "cls", "corrected", "ana")
    with pytest.raises(StoreError, match="no prediction"):
        store.decide("nope", "cls", "accepted", "ana")


def test_the_same_store_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    store = open_store(postgres_url)
    assert store.engine.dialect.name == "postgresql"
    store.import_job(_job(tmp_path / "job", [_row("p1"), _row("p2", label="b")]))
    store.add_user("ana", "admin", "long enough pw")
    store.decide("p1", "cls", "corrected", "ana", label="b")
    assert store.latest_annotation("p1", "cls")["label"] == "b"
    assert store.progress()["corrected"] == 1
    assert open_store(postgres_url).progress()["total"] == 2  # reopened: migrated once
