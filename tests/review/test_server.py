"""The review server's API: sign-in everywhere, roles, ids not paths, size limits, edits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from medlabel.annotate.job import annotate
from medlabel.image import same_grid
from medlabel.io import read_image
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
