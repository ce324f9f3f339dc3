"""The review server's API: sign-in everywhere, roles, ids not paths, size limits, edits."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from medlabel.annotate.job import annotate
from medlabel.image import MedicalImage, same_grid
from medlabel.io import read_image, write_image
from medlabel.review.server import MAX_BODY_BYTES, create_app


@pytest.fixture
def job(mixed_archive: Path, tmp_path: Path) -> Path:
    out = tmp_path / "job"
    annotate(mixed_archive, out, models=["ct-lungs", "cxr-pneumonia"], progress=False)
    return out


def _client(job: Path, user: str = "ana", role: str = "reviewer") -> TestClient:
    app = create_app(job)
    app.state.store.add_user(user, role, "long enough pw")
    client = TestClient(app)
    r = client.post("/login", data={"username": user, "password": "long enough pw"})
    assert r.status_code == 200
    return client


def test_nothing_is_served_without_signing_in(job: Path) -> None:
    client = TestClient(create_app(job))
    assert client.get("/login").status_code == 200
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    for path in ("/api/queue", "/api/progress", "/static/review.js", "/api/items/x"):
        assert client.get(path).status_code == 401, path
    bad = client.post("/login", data={"username": "ana", "password": "wrong password"})
    assert bad.status_code == 401 and "Wrong user or password" in bad.text
    forged = TestClient(create_app(job), cookies={"medlabel_session": "YW5h.9999999999.x"})
    assert forged.get("/api/queue").status_code == 401


def test_review_flow_and_roles(job: Path) -> None:
    client = _client(job)
    queue = client.get("/api/queue", params={"model": "cxr-pneumonia"}).json()
    assert [r["source"] for r in queue] == ["png/photo.png"]
    item = queue[0]["item"]
    info = client.get(f"/api/items/{item}").json()
    assert info["slices"] == 1 and "files" not in info  # no server paths leak
    other = next(c for c in info["results"][0]["classes"] if c != info["results"][0]["label"])
    r = client.post(
        f"/api/items/{item}/review",
        json={"model": "cxr-pneumonia", "status": "corrected", "label": other},
    )
    assert r.status_code == 200 and r.json()["progress"]["corrected"] == 1
    store = client.app.state.store  # type: ignore[attr-defined]
    assert store.latest_annotation(item, "cxr-pneumonia")["label"] == other
    png = client.get(f"/api/items/{item}/slice/0.png", params={"level": 128, "width": 256})
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    viewer = _client(job, "vic", "viewer")
    denied = viewer.post(
        f"/api/items/{item}/review", json={"model": "cxr-pneumonia", "status": "accepted"}
    )
    assert denied.status_code == 403


def test_ids_not_paths_and_body_limit(job: Path) -> None:
    client = _client(job)
    assert client.get("/api/items/..%2F..%2Fetc%2Fpasswd").status_code == 404
    assert client.get("/static/..%2Fserver.py").status_code == 404
    big = client.post(
        "/api/items/x/review",
        content=b"x" * (MAX_BODY_BYTES + 1),
        headers={"content-type": "application/json"},
    )
    assert big.status_code == 413


def test_mask_edit_is_a_new_version_on_the_image_grid(job: Path, mixed_archive: Path) -> None:
    client = _client(job)
    queue = client.get("/api/queue", params={"model": "ct-lungs"}).json()
    chest = next(r for r in queue if r["source"] == "ct/chest.nii.gz")["item"]
    info = client.get(f"/api/items/{chest}").json()
    index = info["slices"] // 2
    plane = client.get(f"/api/items/{chest}/labels/ct-lungs/{index}").json()
    w, h = plane["width"], plane["height"]
    edited = np.zeros(w * h, np.uint8)
    edited[: w * 4] = 2  # paint the first four display rows as left lung
    rle = [int(v) for pair in ((2, w * 4), (0, w * h - w * 4)) for v in pair]
    r = client.post(
        f"/api/items/{chest}/mask/ct-lungs",
        json={"index": index, "width": w, "height": h, "rle": rle},
    )
    assert r.status_code == 200 and r.json()["version"] == 1
    saved = read_image(job / r.json()["mask"])
    original = read_image(mixed_archive / "ct" / "chest.nii.gz")
    assert same_grid(saved, original)
    again = client.get(f"/api/items/{chest}/labels/ct-lungs/{index}").json()
    assert again["rle"][:2] == [2, w * 4]  # the viewer now shows the edited version
    before = read_image(job / next(x for x in info["results"] if x["model"] == "ct-lungs")["mask"])
    changed = np.argwhere(saved.array != before.array)
    assert len(changed) and len({int(z) for z in changed[:, 0]}) == 1  # one stored slice only
    bad = client.post(
        f"/api/items/{chest}/mask/ct-lungs",
        json={"index": index, "width": w, "height": h, "rle": [9, w * h]},
    )
    assert bad.status_code == 422


def test_monailabel_datastore_routes(job: Path, tmp_path: Path) -> None:
    client = _client(job)
    info = client.get("/info/").json()
    assert info["models"]["ct-lungs"]["dimension"] == 3
    assert info["models"]["cxr-pneumonia"]["dimension"] == 2
    assert client.get("/datastore/", params={"output": "stats"}).json()["completed"] == 0
    chest = next(
        r["item"] for r in client.get("/api/queue").json() if r["source"] == "ct/chest.nii.gz"
    )
    image = client.get("/datastore/image", params={"image": chest})
    assert image.status_code == 200 and image.content[:2] == b"\x1f\x8b"  # gzipped NIfTI
    assert client.get("/datastore/label", params={"label": chest}).status_code == 404
    original = client.get("/datastore/label", params={"label": chest, "tag": "original"})
    assert original.status_code == 200
    upload = tmp_path / "up.nii.gz"
    upload.write_bytes(image.content)
    with upload.open("rb") as fh:
        up = client.put(
            "/datastore/image", params={"image": "up-1"}, files={"file": ("up.nii.gz", fh)}
        )
    assert up.json() == {"image": "up-1"}
    assert (
        client.put(
            "/datastore/image", params={"image": "../evil"}, files={"file": ("x.nii.gz", b"x")}
        ).status_code
        == 422
    )
    for row in client.get("/api/queue").json():
        client.post(
            f"/api/items/{row['item']}/review", json={"model": row["model"], "status": "accepted"}
        )
    assert client.post("/activelearning/uncertainty", json={}).json() == {}
    stats = client.get("/datastore/", params={"output": "stats"}).json()
    assert stats["completed"] == 3 and stats["total"] == 4
    train = client.get("/datastore/", params={"output": "train"}).json()
    assert {t["image"] for t in train} >= {chest} and all(Path(t["label"]).is_file() for t in train)
    assert client.get("/datastore/label", params={"label": chest}).status_code == 200


def test_admins_manage_users_and_others_cannot(job: Path) -> None:
    admin = _client(job, "ada", "admin")
    assert [u["name"] for u in admin.get("/api/users").json()] == ["ada"]
    r = admin.post("/api/users", json={"name": "bo", "role": "reviewer", "password": "long enough"})
    assert r.status_code == 200 and {u["name"]: u["role"] for u in r.json()} == {
        "ada": "admin",
        "bo": "reviewer",
    }
    assert all("password" not in str(u) for u in r.json())  # hashes never leave the store
    bo = TestClient(admin.app)
    assert bo.post("/login", data={"username": "bo", "password": "long enough"}).status_code == 200
    assert bo.get("/api/users").status_code == 403  # reviewers do not manage users
    assert bo.delete("/api/users/ada").status_code == 403
    short = admin.post("/api/users", json={"name": "cy", "role": "viewer", "password": "short"})
    assert short.status_code == 422 and "8 characters" in short.json()["detail"]
    bad_role = admin.put("/api/users/bo", json={"role": "root"})
    assert bad_role.status_code == 422
    assert admin.put("/api/users/bo", json={"role": "viewer"}).json()[1]["role"] == "viewer"
    assert (
        bo.post("/api/items/x/review", json={"model": "m", "status": "accepted"}).status_code == 403
    )
    # the last admin stays an admin, and nobody removes themselves
    last = admin.put("/api/users/ada", json={"role": "viewer"})
    assert last.status_code == 422 and "only admin" in last.json()["detail"]
    assert admin.delete("/api/users/ada").status_code == 422
    assert admin.delete("/api/users/bo").status_code == 200
    assert bo.get("/api/progress").status_code == 401  # a removed user's session ends
    store = admin.app.state.store  # type: ignore[attr-defined]
    assert {"name": "bo"} in [a["detail"] for a in store.audit(10) if a["user"] == "ada"]


def _chest(client: TestClient) -> str:
    return next(
        r["item"] for r in client.get("/api/queue").json() if r["source"] == "ct/chest.nii.gz"
    )


def _upload(client: TestClient, item: str, data: bytes, **params: object) -> object:
    tag = str(params.pop("tag", "final"))
    return client.put(
        "/datastore/label",
        params={"image": item, "tag": tag},
        files={"label": ("m.nii.gz", data)},
        data={"params": json.dumps(params)} if params else {},
    )


def test_uploaded_labels_are_masks_of_a_job_model_inside_the_job(job: Path, tmp_path: Path) -> None:
    client = _client(job)
    chest = _chest(client)
    model_mask = client.get("/datastore/label", params={"label": chest, "tag": "original"})
    good = model_mask.content
    for params, detail in (
        ({"model": "../../../../pwned"}, "params.model"),
        ({"model": "cxr-pneumonia"}, "params.model"),  # not a segmentation model
        ({"model": "ct-lungs", "tag": "../../x"}, "tags"),
    ):
        r = _upload(client, chest, good, **params)
        assert r.status_code == 422 and detail in r.json()["detail"], (params, r.text)
    garbage = _upload(client, chest, b"NOT A MASK", model="ct-lungs")
    assert garbage.status_code == 422 and "readable mask" in garbage.json()["detail"]
    small = tmp_path / "small.nii.gz"
    write_image(MedicalImage(np.zeros((4, 5, 6), np.uint8)), small)
    wrong = _upload(client, chest, small.read_bytes(), model="ct-lungs")
    assert wrong.status_code == 422 and "grid" in wrong.json()["detail"]
    odd = read_image(job / _mask_of(client, chest), is_label=True)
    odd_path = tmp_path / "odd.nii.gz"
    write_image(odd.with_array(np.full(odd.array.shape, 7, np.uint8)), odd_path)
    seven = _upload(client, chest, odd_path.read_bytes(), model="ct-lungs")
    assert seven.status_code == 422 and "[7]" in seven.json()["detail"]
    assert not [p for folder in job.parents[:5] for p in folder.glob("pwned*")]
    assert client.app.state.store.latest_annotation(chest, "ct-lungs") is None  # type: ignore[attr-defined]
    # a client naming no model (3D Slicer's plugin) gets the item's only segmentation model
    ok = _upload(client, chest, good)
    assert ok.status_code == 200, ok.text
    saved = job / ok.json()["label"]
    assert saved.resolve().is_relative_to(job.resolve()) and "/ct-lungs.final.v1" in str(saved)
    assert same_grid(read_image(saved, is_label=True), read_image(job / _mask_of(client, chest)))


def _mask_of(client: TestClient, item: str) -> str:
    store = client.app.state.store  # type: ignore[attr-defined]
    return str(next(r["mask"] for r in store.item(item)["results"] if r["model"] == "ct-lungs"))


def test_datastore_images_are_only_the_job_items(job: Path) -> None:
    client = _client(job)
    chest = _chest(client)
    assert client.get("/datastore/image", params={"image": chest}).status_code == 200
    outside = job.parent / "secret.nii.gz"
    outside.write_bytes(b"\x1f\x8b secret")
    # the image cache exists now; a path through it is still no item
    r = client.get("/datastore/image", params={"image": "../../../secret"})
    assert r.status_code == 404 and b"\x1f\x8b" not in r.content


def test_cross_origin_changes_are_refused(job: Path) -> None:
    client = _client(job)
    chest = _chest(client)
    decision = {"model": "ct-lungs", "status": "rejected"}
    for header in ({"origin": "http://127.0.0.1:9911"}, {"referer": "http://evil.example/x"}):
        r = client.post(f"/api/items/{chest}/review", json=decision, headers=header)
        assert r.status_code == 403 and "cross-origin" in r.json()["detail"]
        assert client.post("/train/cxr-pneumonia", json={}, headers=header).status_code == 403
    ours = client.post(
        f"/api/items/{chest}/review", json=decision, headers={"origin": "http://testserver"}
    )
    assert ours.status_code == 200
    # a form posted as text/plain does not pass for JSON parameters
    form = client.post(
        "/train/cxr-pneumonia",
        content=b'{"budget_minutes": 1}',
        headers={"content-type": "text/plain"},
    )
    assert form.status_code == 415
    login = client.post(
        "/login",
        data={"username": "ana", "password": "long enough pw"},
        headers={"origin": "http://127.0.0.1:9911"},
    )
    assert login.status_code == 403


def test_sign_out_and_password_reset_end_every_session(job: Path) -> None:
    client = _client(job)
    copied = TestClient(client.app, cookies=dict(client.cookies))
    assert copied.get("/api/me").status_code == 200
    client.post("/logout")
    assert copied.get("/api/me").status_code == 401  # the copied cookie is dead too
    again = TestClient(client.app)
    login = again.post("/login", data={"username": "ana", "password": "long enough pw"})
    assert login.status_code == 200 and again.get("/api/me").status_code == 200
    client.app.state.store.add_user("ana", "reviewer", "a new password")  # type: ignore[attr-defined]
    assert again.get("/api/me").status_code == 401


def test_mask_saves_name_their_version_and_never_overwrite_each_other(job: Path) -> None:
    client = _client(job)
    client.app.state.store.add_user("bo", "reviewer", "long enough pw")  # type: ignore[attr-defined]
    other = TestClient(client.app)
    assert (
        other.post("/login", data={"username": "bo", "password": "long enough pw"}).status_code
        == 200
    )
    chest = _chest(client)
    plane = client.get(f"/api/items/{chest}/labels/ct-lungs/3").json()
    w, h = plane["width"], plane["height"]

    def edit(value: int, base: int | None, index: int = 3) -> dict[str, object]:
        return {"index": index, "width": w, "height": h, "rle": [value, w * h], "base": base}

    url = f"/api/items/{chest}/mask/ct-lungs"
    assert client.post(url, json=edit(0, 0, index=10_000)).status_code == 422
    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda c: c.post(url, json=edit(1, 0)), [client, other]))
    assert sorted(r.status_code for r in replies) == [200, 409]
    conflict = next(r for r in replies if r.status_code == 409).json()["detail"]
    assert "version 1" in conflict and "reload" in conflict
    assert client.post(url, json=edit(2, 0)).status_code == 409  # drawn on a stale view
    newer = client.post(url, json=edit(2, 1))
    assert newer.status_code == 200 and newer.json()["version"] == 2
    store = client.app.state.store  # type: ignore[attr-defined]
    masks = [a["detail"]["mask"] for a in store.audit(20) if a["action"] == "review:corrected"]
    assert len(set(masks)) == len(masks) == 2  # every version its own file
    # accepting after the correction keeps the correction
    done = client.post(
        f"/api/items/{chest}/review", json={"model": "ct-lungs", "status": "accepted"}
    )
    assert done.status_code == 200 and done.json()["status"] == "corrected"
    assert store.latest_annotation(chest, "ct-lungs")["mask"] == newer.json()["mask"]


def test_accepting_a_missing_mask_and_odd_requests_are_refused(job: Path) -> None:
    client = _client(job)
    chest = _chest(client)
    (job / _mask_of(client, chest)).unlink()
    r = client.post(f"/api/items/{chest}/review", json={"model": "ct-lungs", "status": "accepted"})
    assert r.status_code == 422 and "missing" in r.json()["detail"]
    assert client.get("/api/queue", params={"n": 0}).status_code == 422
    png = client.get(f"/api/items/{chest}/slice/0.png", params={"level": "nan", "width": 400})
    assert png.status_code == 422
    # a chunked body has no length to trust: it is counted as it arrives
    big = client.post(
        f"/api/items/{chest}/review",
        content=iter([b"x" * (1 << 20)] * 9),
        headers={"content-type": "application/json"},
    )
    assert big.status_code == 413


def test_viewers_run_no_models_and_unknown_models_reveal_no_paths(job: Path) -> None:
    viewer = _client(job, "vic", "viewer")
    chest = _chest(viewer)
    assert viewer.post("/infer/ct-lungs", params={"image": chest}).status_code == 403
    client = _client(job)
    r = client.post("/infer/cxr-lungs-classical", params={"image": chest})
    assert r.status_code == 404 and "/" not in r.json()["detail"].replace("cxr-lungs", "")
    ok = client.post("/infer/ct-lungs", params={"image": chest, "output": "json"})
    assert ok.status_code == 200 and "label_names" in ok.json()


def test_a_rerun_of_annotate_shows_up_without_a_restart(job: Path, mixed_archive: Path) -> None:
    client = _client(job)
    sources = {r["source"] for r in client.get("/api/queue").json()}
    write_image(MedicalImage(np.full((32, 32), 90, np.uint8)), mixed_archive / "png" / "second.png")
    annotate(mixed_archive, job, models=["ct-lungs", "cxr-pneumonia"], progress=False)
    after = {r["source"] for r in client.get("/api/queue").json()}
    assert after - sources == {"png/second.png"}
