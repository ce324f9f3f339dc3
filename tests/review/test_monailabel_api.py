"""MONAI Label's own client against medlabel's server: info, next sample, infer, labels, train."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("monailabel.client", reason="monailabel is not installed")


@pytest.mark.slow
def test_monailabel_client_workflow(live_job: tuple[str, object, Path], tmp_path: Path) -> None:
    from monailabel.client import MONAILabelClient
    from monailabel.client.client import MONAILabelClientException

    url, store, job = live_job
    client = MONAILabelClient(url, tmpdir=str(tmp_path))
    with pytest.raises(MONAILabelClientException):
        client.info()  # nothing without signing in
    assert client.auth_enabled()
    client.update_auth(client.auth_token("ana", "long enough pw"))
    info = client.info()
    assert info["models"]["ct-lungs"]["type"] == "segmentation"
    assert info["models"]["ct-lungs"]["labels"] == {"lung_right": 1, "lung_left": 2}
    assert info["models"]["cxr-pneumonia"]["type"] == "classification"
    assert {"uncertainty", "random"} <= set(info["strategies"])
    assert info["datastore"]["total"] == 3

    sample = client.next_sample("uncertainty", {})
    assert sample["id"] in {r["item"] for r in store.predictions("pending")}  # type: ignore[attr-defined]
    chest = next(r["item"] for r in store.predictions() if r["source"] == "ct/chest.nii.gz")  # type: ignore[attr-defined]
    mask_file, params = client.infer("ct-lungs", chest, {})
    assert Path(mask_file).is_file() and params["label_names"] == {"lung_right": 1, "lung_left": 2}
    saved = client.save_label(chest, mask_file, tag="final", params={"model": "ct-lungs"})
    assert saved["image"] == chest and saved["label"].endswith(".nii.gz")
    assert store.latest_annotation(chest, "ct-lungs")["author"] == "ana"  # type: ignore[attr-defined]
    objects = client.datastore()["objects"]
    assert objects[chest]["labels"] == {"final": {}}
    up = client.upload_image(str(job / saved["label"]), image_id="upload1")
    assert up == {"image": "upload1"}
    assert client.datastore()["objects"]["upload1"]["labels"] == {}

    # train on the reviewed labels (the two phantom volumes), poll it, and stop a second run
    other = next(r["item"] for r in store.predictions("pending") if r["model"] == "ct-lungs")  # type: ignore[attr-defined]
    store.decide(other, "ct-lungs", "accepted", "ana")  # type: ignore[attr-defined]
    started = client.train_start("ct-lungs", {"budget_minutes": 0.05})
    assert started["status"] == "RUNNING"
    deadline = time.time() + 300
    while client.train_status(check_if_running=True) and time.time() < deadline:
        time.sleep(1)
    status = client.train_status()
    assert status["status"] == "DONE", (job / ".medlabel").glob("train-*.log")
    assert (Path(status["out"]) / "bundle.json").is_file()
    assert client.info()["train_stats"]["ct-lungs"]["status"] == "DONE"
    client.train_start("ct-lungs", {"budget_minutes": 5})
    assert client.train_status(check_if_running=True)
    assert client.train_stop()["status"] == "STOPPED"
    assert not client.train_status(check_if_running=True)


def test_train_requests_fine_tune_trained_bundles_unless_told_not_to() -> None:
    from medlabel.review.monailabel_api import train_command

    job, out = Path("job"), Path("job/models/m-v1")
    lungs = train_command(job, "cxr-lungs", "segment", out, {"budget_minutes": 2})
    assert lungs[lungs.index("--init-from") + 1] == "cxr-lungs"
    assert lungs[lungs.index("--budget-minutes") + 1] == "2.0"
    anew = train_command(job, "cxr-lungs", "segment", out, {"pretrained": False})
    assert "--init-from" not in anew
    assert "--init-from" not in train_command(job, "ct-lungs", "segment", out, {})  # a recipe
    pneumonia = train_command(job, "cxr-pneumonia", "classify", out, {"max_epochs": 3})
    assert pneumonia[pneumonia.index("--init-from") + 1] == "cxr-pneumonia"
    assert pneumonia[pneumonia.index("--epochs") + 1] == "3"
    anew = train_command(job, "cxr-pneumonia", "classify", out, {"pretrained": False})
    assert "--init-from" not in anew
    # a segmentation bundle does not start a classifier, nor the reverse
    assert "--init-from" not in train_command(job, "cxr-lungs", "classify", out, {})
    assert "--init-from" not in train_command(job, "cxr-pneumonia", "segment", out, {})
