"""The annotation store: migrations, importing a job, review decisions, audit."""

from __future__ import annotations

import json
import os
import stat
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
        assert conn.execute(text("select version_num from alembic_version")).scalar() == "0003"
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


def test_reimport_repairs_where_the_files_are(tmp_path: Path) -> None:
    """A rerun of annotate (absolute paths now) updates files, thumbnail and modality of an
    item imported before; its id, source and the human work stay."""
    store = open_store(tmp_path / "db")
    job = _job(tmp_path / "job", [_row("i1", files=["in/i1.png"])])
    store.import_job(job)
    store.add_user("ana", "reviewer", "long enough pw")
    store.decide("i1", "cls", "corrected", "ana", label="b")
    fixed = str(tmp_path / "in" / "i1.png")
    _job(job, [_row("i1", files=[fixed], thumbnail="thumbs/new.png", modality="DX")])
    assert store.import_job(job)["items"] == 0
    item = store.item("i1")
    assert item is not None and item["files"]["paths"] == [fixed]
    assert (item["thumbnail"], item["modality"], item["source"]) == (
        "thumbs/new.png",
        "DX",
        "i1.png",
    )
    assert item["results"][0]["status"] == "corrected"
    assert store.latest_annotation("i1", "cls")["label"] == "b"


def test_accepting_after_a_correction_keeps_the_correction(tmp_path: Path) -> None:
    store = open_store(tmp_path / "db")
    store.import_job(_job(tmp_path / "job", [_row("i1"), _row("i2")]))
    store.add_user("ana", "reviewer", "long enough pw")
    assert store.decide("i1", "cls", "corrected", "ana", mask="masks/i1/cls.v1.nii.gz") == (
        "corrected"
    )
    assert store.decide("i1", "cls", "accepted", "ana") == "corrected"
    kept = store.latest_annotation("i1", "cls")
    assert kept is not None and (kept["version"], kept["mask"]) == (1, "masks/i1/cls.v1.nii.gz")
    entry = store.audit(1)[0]
    assert entry["action"] == "review:accepted" and entry["detail"]["kept"] == 1
    # the same after a label correction set back to pending
    store.decide("i2", "cls", "corrected", "ana", label="b")
    store.decide("i2", "cls", "pending", "ana")
    assert store.decide("i2", "cls", "accepted", "ana") == "corrected"
    assert store.latest_annotation("i2", "cls")["label"] == "b"
    p = store.progress()
    assert (p["accepted"], p["corrected"], p["agreement"]) == (0, 2, 0.0)


def test_correction_labels_are_the_models_classes(tmp_path: Path) -> None:
    store = open_store(tmp_path / "db")
    # i2 without class probabilities: nothing to check its labels against
    rows = [_row("i1"), {k: v for k, v in _row("i2").items() if not k.startswith("p_")}]
    store.import_job(_job(tmp_path / "job", rows))
    store.add_user("ana", "reviewer", "long enough pw")
    with pytest.raises(StoreError, match=r"'BANANA' is not a class of model 'cls'.*a, b"):
        store.decide("i1", "cls", "corrected", "ana", label="BANANA")
    assert store.latest_annotation("i1", "cls") is None
    assert store.decide("i2", "cls", "corrected", "ana", label="BANANA") == "corrected"


def test_correcting_to_the_models_label_is_accepting(tmp_path: Path) -> None:
    store = open_store(tmp_path / "db")
    store.import_job(_job(tmp_path / "job", [_row("i1"), _row("i2")]))
    store.add_user("ana", "reviewer", "long enough pw")
    assert store.decide("i1", "cls", "corrected", "ana", label="a") == "accepted"
    entry = store.audit(1)[0]
    assert entry["action"] == "review:accepted" and entry["detail"]["requested"] == "corrected"
    # after a correction to b, correcting back to the model's a stores a, accepted
    store.decide("i2", "cls", "corrected", "ana", label="b")
    assert store.decide("i2", "cls", "corrected", "ana", label="a") == "accepted"
    latest = store.latest_annotation("i2", "cls")
    assert latest is not None and (latest["label"], latest["version"]) == ("a", 2)
    p = store.progress()
    assert (p["accepted"], p["corrected"], p["agreement"]) == (2, 0, 1.0)


def test_labelled_items_are_those_decided_now(tmp_path: Path) -> None:
    store = open_store(tmp_path / "db")
    rows = [_row("i1"), _row("i1", model="other"), _row("i2"), _row("i3")]
    store.import_job(_job(tmp_path / "job", rows))
    store.add_user("ana", "reviewer", "long enough pw")
    store.decide("i1", "cls", "accepted", "ana")
    store.decide("i2", "cls", "corrected", "ana", label="b")
    store.decide("i2", "cls", "pending", "ana")  # set back: labelled no more
    store.decide("i3", "cls", "rejected", "ana")
    assert {i["id"]: i["labelled"] for i in store.items()} == {
        "i1": True,
        "i2": False,
        "i3": False,
    }
    p = store.progress()
    assert (p["items"], p["total"], p["pending"]) == (3, 4, 2)


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
def test_the_database_file_is_private(tmp_path: Path) -> None:
    store = open_store(tmp_path / "job")
    store.add_user("ana", "reviewer", "long enough pw")
    db = tmp_path / "job" / ".medlabel" / "review.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    for extra in (Path(f"{db}-wal"), Path(f"{db}-shm")):  # SQLite copies the mode
        assert not extra.exists() or stat.S_IMODE(extra.stat().st_mode) & 0o077 == 0
    open_store(f"sqlite:///{tmp_path}/other.db")
    assert stat.S_IMODE((tmp_path / "other.db").stat().st_mode) == 0o600
    (tmp_path / "old.db").touch()
    os.chmod(tmp_path / "old.db", 0o640)  # an existing file keeps its mode
    open_store(f"sqlite:///{tmp_path}/old.db")
    assert stat.S_IMODE((tmp_path / "old.db").stat().st_mode) == 0o640


def test_accepting_a_new_models_prediction_stores_it(tmp_path: Path) -> None:
    """A label a person gave for an older model's prediction is not a correction of the new
    model's: accepting the new prediction stores it, and the state is accepted."""
    store = open_store(tmp_path / "db")
    store.import_job(_job(tmp_path / "job", [_row("i1", label="a")]))
    store.add_user("ana", "reviewer", "long enough pw")
    store.decide("i1", "cls", "corrected", "ana", label="b")  # model 1 said a; ana says b
    # model 2 (retrained) says a as well, and ana, looking again, agrees this time
    store.import_job(_job(tmp_path / "job", [_row("i1", label="a", version="2")]))
    assert store.decide("i1", "cls", "accepted", "ana") == "accepted"
    latest = store.latest_annotation("i1", "cls")
    assert latest is not None and (latest["label"], latest["version"]) == ("a", 2)
    # a correction of the new prediction is still kept when accepting afterwards
    store.decide("i1", "cls", "corrected", "ana", label="b")
    assert store.decide("i1", "cls", "accepted", "ana") == "corrected"
    assert store.latest_annotation("i1", "cls")["label"] == "b"
