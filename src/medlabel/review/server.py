"""``medlabel review``: a FastAPI server with a web UI to accept, correct or reject results.

Everything except the login page needs a logged-in user (signed session cookie); reviewers
and admins may decide, viewers may only look. Signing out, or an admin resetting a password,
ends every session of that user. URLs carry item ids, never paths: files are looked up in the
store and must lie inside the job folder. Request bodies are limited in size (counted as they
arrive) and state-changing requests from another origin are refused
(:mod:`medlabel.review.guards`). A mask edit names the version it was drawn on, so two
reviewers saving the same mask cannot silently overwrite each other (409). A rerun of
``medlabel annotate`` into the job folder shows up without restarting the server.
Slices are rendered on the server (:mod:`medlabel.review.render`); the page's JavaScript is
written for this project and served from the package.

Example:
    >>> import tempfile, pathlib
    >>> from fastapi.testclient import TestClient
    >>> from medlabel.annotate.job import annotate
    >>> from medlabel.io import write_image
    >>> from medlabel.segment.recipes.ct import chest_phantom
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> write_image(chest_phantom()[0], root / "in" / "chest.nii.gz")
    >>> _ = annotate(root / "in", root / "out", models=["ct-lungs"], progress=False)
    >>> app = create_app(root / "out")
    >>> app.state.store.add_user("ana", "reviewer", "long enough pw")
    >>> client = TestClient(app)
    >>> client.get("/api/queue").status_code
    401
    >>> client.post("/login", data={"username": "ana", "password": "long enough pw"}).status_code
    200
    >>> [r["model"] for r in client.get("/api/queue").json()]
    ['ct-lungs']
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import Depends, FastAPI, Form, HTTPException, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from pydantic import BaseModel

from medlabel.annotate.items import read_item
from medlabel.errors import MedlabelError
from medlabel.io import read_image
from medlabel.preprocess.window import WINDOW_PRESETS
from medlabel.review.active import STRATEGIES
from medlabel.review.auth import COOKIE, Sessions, load_secret
from medlabel.review.export import model_classes
from medlabel.review.guards import BodyLimit, SameOrigin
from medlabel.review.queue import rank_pending
from medlabel.review.render import View, decode_rle, encode_rle
from medlabel.review.store import Store, StoreError, open_store, source_item
from medlabel.visualize.preview import LABEL_COLOURS

__all__ = ["MAX_BODY_BYTES", "MAX_UPLOAD_BYTES", "create_app"]

#: Largest request body accepted (bytes): a mask slice as run-length code is far smaller.
MAX_BODY_BYTES = 8 * 1024 * 1024
#: Largest image or label upload through the MONAI Label datastore routes (bytes).
MAX_UPLOAD_BYTES = 1024 * 1024 * 1024

_STATIC = Path(__file__).resolve().parent / "static"


class Decision(BaseModel):
    """A review decision from the UI."""

    model: str
    status: str
    label: str | None = None


class NewUser(BaseModel):
    """An admin's request to create a user or reset one's role and password."""

    name: str
    role: str
    password: str


class RoleChange(BaseModel):
    """An admin's request to change a user's role."""

    role: str


class MaskEdit(BaseModel):
    """One edited slice of a mask, run-length coded in display orientation."""

    index: int
    width: int
    height: int
    rle: list[int]
    #: the mask version the edit was drawn on (0: the model's mask); ``None`` skips the check
    base: int | None = None


def _login_page(message: str = "") -> str:
    note = f'<p class="err">{message}</p>' if message else ""
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>medlabel review: sign in</title>
<style>body{{font-family:system-ui,sans-serif;background:#111;color:#eee;display:flex;
justify-content:center;margin-top:12vh}}form{{background:#222;padding:2em;border-radius:8px;
min-width:18em}}input{{display:block;width:100%;margin:.4em 0 1em;padding:.5em;
box-sizing:border-box}}button{{padding:.5em 1.5em}}.err{{color:#f77}}</style></head><body>
<form method="post" action="/login"><h2>medlabel review</h2>{note}
<label>User<input name="username" id="username" autocomplete="username" autofocus></label>
<label>Password<input name="password" id="password" type="password"
autocomplete="current-password"></label><button type="submit" id="signin">Sign in</button>
</form></body></html>"""


def create_app(job: str | os.PathLike[str], *, db: str | None = None) -> FastAPI:
    """The review app for the annotation job folder ``job`` (store: ``db`` or its SQLite).

    Raises:
        StoreError: the folder holds no annotation job.
    """
    folder = Path(job).resolve()
    if db is None and not (folder / "manifest.jsonl").is_file():
        raise StoreError(folder, "no manifest.jsonl here: run medlabel annotate first")
    store: Store = open_store(db or folder)
    store.import_job(folder)
    sessions = Sessions(load_secret(folder))
    classes = model_classes(folder)
    manifest = folder / "manifest.jsonl"
    seen = {"manifest": manifest.stat().st_mtime_ns}
    views: OrderedDict[str, View] = OrderedDict()
    masks: OrderedDict[tuple[str, str, str], np.ndarray] = OrderedDict()
    saving = threading.Lock()
    app = FastAPI(title="medlabel review", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.state.folder = folder
    app.state.sessions = sessions
    app.state.saving = saving
    app.state.refresh = lambda: refresh()
    app.add_middleware(SameOrigin)
    app.add_middleware(
        BodyLimit,
        limit=lambda path: MAX_UPLOAD_BYTES if path.startswith("/datastore") else MAX_BODY_BYTES,
    )

    def refresh() -> None:
        """Import the job anew when ``medlabel annotate`` has rewritten its manifest."""
        try:
            mtime = manifest.stat().st_mtime_ns
        except OSError:
            return
        if mtime != seen["manifest"]:
            seen["manifest"] = mtime
            store.import_job(folder)
            classes.clear()
            classes.update(model_classes(folder))

    def current_user(request: Request) -> str:
        token = request.cookies.get(COOKIE)
        bearer = request.headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):  # MONAI Label clients
            token = bearer[7:].strip()
        claims = sessions.claims(token)
        account = None if claims is None else store.account(claims[0])
        if claims is None or account is None or claims[1] < account[1]:
            raise HTTPException(status_code=401, detail="sign in first")
        return claims[0]

    def reviewer(user: str = Depends(current_user)) -> str:
        if store.role(user) not in ("admin", "reviewer"):
            raise HTTPException(status_code=403, detail="viewers cannot change annotations")
        return user

    def admin(user: str = Depends(current_user)) -> str:
        if store.role(user) != "admin":
            raise HTTPException(status_code=403, detail="only admins manage users")
        return user

    def in_job(rel: str) -> Path | None:
        path = (folder / rel).resolve()
        return path if rel and path.is_relative_to(folder) and path.is_file() else None

    def inside(rel: str) -> Path:
        path = in_job(rel)
        if path is None:
            raise HTTPException(status_code=404, detail="no such file")
        return path

    def item_or_404(item_id: str) -> dict[str, Any]:
        item = store.item(item_id)
        if item is None:
            raise HTTPException(status_code=404, detail="no such item")
        return item

    def view(item_id: str) -> View:
        if item_id in views:
            views.move_to_end(item_id)
            return views[item_id]
        try:
            v = View(read_item(source_item(item_or_404(item_id))))
        except MedlabelError as err:
            raise HTTPException(status_code=422, detail=str(err)) from err
        views[item_id] = v
        while len(views) > 6:  # a few volumes in memory at most
            views.popitem(last=False)
        return v

    def mask_labels(item_id: str, model: str) -> np.ndarray:
        """The current mask of a result in display orientation (cached: every slice and
        overlay request of the viewer needs it)."""
        item = item_or_404(item_id)
        result = next((r for r in item["results"] if r["model"] == model), None)
        if result is None:
            raise HTTPException(status_code=404, detail="no such result")
        rel = (result["annotation"] or {}).get("mask") or result["mask"]
        key = (item_id, model, rel)  # a new mask version is a new path: a new entry
        if key in masks:
            masks.move_to_end(key)
            return masks[key]
        labels = view(item_id).mask_display(read_image(inside(rel), is_label=True))
        masks[key] = labels
        while len(masks) > 6:
            masks.popitem(last=False)
        return labels

    @app.get("/login", response_class=HTMLResponse)
    def login_form() -> str:
        return _login_page()

    @app.post("/login")
    def login(username: str = Form(...), password: str = Form(...)) -> Response:
        if not store.check_password(username, password):
            return HTMLResponse(_login_page("Wrong user or password."), status_code=401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE, sessions.issue(username), httponly=True, samesite="strict", max_age=12 * 3600
        )
        return response

    @app.post("/logout")
    def logout(request: Request) -> Response:
        user = sessions.user(request.cookies.get(COOKIE))
        if user is not None and store.account(user) is not None:
            store.revoke_sessions(user, by=user)  # the cookie may have been copied
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> Response:
        if sessions.user(request.cookies.get(COOKIE)) is None:
            return RedirectResponse("/login", status_code=303)
        return HTMLResponse((_STATIC / "review.html").read_text())

    @app.get("/static/{name}")
    def static(name: str, user: str = Depends(current_user)) -> FileResponse:
        allowed = {"review.js": "text/javascript", "review.css": "text/css"}
        if name not in allowed:
            raise HTTPException(status_code=404, detail="no such file")
        return FileResponse(_STATIC / name, media_type=allowed[name])

    @app.get("/api/me")
    def me(user: str = Depends(current_user)) -> dict[str, Any]:
        return {"user": user, "role": store.role(user)}

    @app.get("/api/queue")
    def queue(
        strategy: str = "uncertainty",
        status: str = "pending",
        model: str | None = None,
        label: str | None = None,
        n: int = 500,
        user: str = Depends(current_user),
    ) -> list[dict[str, Any]]:
        if strategy not in STRATEGIES:
            raise HTTPException(status_code=422, detail=f"strategy: one of {STRATEGIES}")
        if n < 1:
            raise HTTPException(status_code=422, detail="n: at least 1")
        refresh()
        rows = store.predictions(None if status == "all" else status)
        if model:
            rows = [r for r in rows if r["model"] == model]
        if label:
            rows = [r for r in rows if label.lower() in (r["label"] or "").lower()]
        return rank_pending(folder, rows, strategy, n)

    @app.get("/api/progress")
    def progress(user: str = Depends(current_user)) -> dict[str, Any]:
        refresh()
        return store.progress()

    @app.get("/api/items/{item_id}")
    def item_info(item_id: str, user: str = Depends(current_user)) -> dict[str, Any]:
        item = item_or_404(item_id)
        v = view(item_id)
        level, width = v.default_window()
        for result in item["results"]:
            result["classes"] = (
                {str(k): n for k, n in classes.get(result["model"], {}).items()}
                if result["task"] == "segmentation"
                else list(result["probs"])
            )
        item.pop("files", None)  # paths stay on the server
        return {
            **item,
            "slices": v.slices,
            "aspect": v.aspect,
            "window": {"level": level, "width": width},
            "presets": {k: {"level": lw[0], "width": lw[1]} for k, lw in WINDOW_PRESETS.items()},
            "modality": item["modality"] or v.image.modality or "",
            "colours": [list(c) for c in LABEL_COLOURS],
        }

    @app.get("/api/items/{item_id}/slice/{index}.png")
    def slice_png(
        item_id: str, index: int, level: float, width: float, user: str = Depends(current_user)
    ) -> Response:
        if not (math.isfinite(level) and math.isfinite(width) and width > 0):
            raise HTTPException(status_code=422, detail="level and width: finite, width > 0")
        return Response(view(item_id).slice_png(index, level, width), media_type="image/png")

    @app.get("/api/items/{item_id}/overlay/{model}/{index}.png")
    def overlay_png(
        item_id: str, model: str, index: int, user: str = Depends(current_user)
    ) -> Response:
        labels = mask_labels(item_id, model)
        return Response(view(item_id).overlay_png(labels, index), media_type="image/png")

    @app.get("/api/items/{item_id}/labels/{model}/{index}")
    def labels_slice(
        item_id: str, model: str, index: int, user: str = Depends(current_user)
    ) -> dict[str, Any]:
        labels = mask_labels(item_id, model)
        plane = labels if labels.ndim == 2 else labels[int(np.clip(index, 0, len(labels) - 1))]
        return {"width": plane.shape[1], "height": plane.shape[0], "rle": encode_rle(plane)}

    @app.get("/api/thumbs/{item_id}.png")
    def thumb(item_id: str, user: str = Depends(current_user)) -> FileResponse:
        return FileResponse(inside(item_or_404(item_id)["thumbnail"]), media_type="image/png")

    @app.post("/api/items/{item_id}/review")
    def review(item_id: str, decision: Decision, user: str = Depends(reviewer)) -> dict[str, Any]:
        if decision.status == "accepted":
            result = next(
                (r for r in item_or_404(item_id)["results"] if r["model"] == decision.model), None
            )
            rel = result and ((result["annotation"] or {}).get("mask") or result["mask"])
            if rel and in_job(rel) is None:
                raise HTTPException(
                    status_code=422,
                    detail=f"the mask of {decision.model} is missing ({rel}): "
                    "correct it or reject the result",
                )
        with saving:
            try:
                status = store.decide(
                    item_id, decision.model, decision.status, user, label=decision.label
                )
            except StoreError as err:
                raise HTTPException(status_code=422, detail=err.reason) from err
        return {"ok": True, "status": status, "progress": store.progress()}

    @app.post("/api/items/{item_id}/mask/{model}")
    def save_mask(
        item_id: str, model: str, edit: MaskEdit, user: str = Depends(reviewer)
    ) -> dict[str, Any]:
        labels = mask_labels(item_id, model)
        shape = labels.shape if labels.ndim == 2 else labels.shape[1:]
        slices = 1 if labels.ndim == 2 else len(labels)
        if not 0 <= edit.index < slices:
            raise HTTPException(status_code=422, detail=f"index: 0 to {slices - 1}")
        if (edit.height, edit.width) != tuple(shape):
            raise HTTPException(status_code=422, detail=f"slice must be {shape[1]}x{shape[0]}")
        try:
            plane = decode_rle(edit.rle, edit.width * edit.height).reshape(shape)
        except ValueError as err:
            raise HTTPException(status_code=422, detail=str(err)) from err
        known = set(classes.get(model, {})) | {0}
        if not set(np.unique(plane).tolist()) <= known:
            raise HTTPException(status_code=422, detail="labels outside the model's classes")
        with saving:  # one save at a time: versions and files never collide
            current = store.latest_annotation(item_id, model)
            have = current["version"] if current else 0
            if edit.base is not None and edit.base != have:
                by = current["author"] if current else "someone"
                raise HTTPException(
                    status_code=409,
                    detail=f"{by} saved version {have} of this mask after you opened it "
                    f"(you drew on version {edit.base}): reload the item and redo the edit",
                )
            labels = mask_labels(item_id, model)  # the newest mask, under the lock
            version = have + 1
            rel = f"masks/{item_id}/{model}.v{version}.nii.gz"
            view(item_id).save_edit(labels, edit.index, plane, folder / rel, classes.get(model, {}))
            store.decide(item_id, model, "corrected", user, mask=rel)
        return {"ok": True, "mask": rel, "version": version}

    @app.get("/api/export/{model}.csv")
    def export_csv(model: str, user: str = Depends(current_user)) -> Response:
        from medlabel.review.export import export_reviewed

        try:
            export = export_reviewed(folder, model, db=db)
        except StoreError as err:
            raise HTTPException(status_code=404, detail=err.reason) from err
        return Response(
            export.path.read_bytes(),
            media_type="text/csv",
            headers={"content-disposition": f'attachment; filename="reviewed-{model}.csv"'},
        )

    @app.get("/api/users")
    def users(user: str = Depends(admin)) -> list[dict[str, Any]]:
        return store.users()

    @app.post("/api/users")
    def add_user(new: NewUser, user: str = Depends(admin)) -> list[dict[str, Any]]:
        try:
            store.add_user(new.name, new.role, new.password, by=user)
        except StoreError as err:
            raise HTTPException(status_code=422, detail=err.reason) from err
        return store.users()

    @app.put("/api/users/{name}")
    def change_role(
        name: str, change: RoleChange, user: str = Depends(admin)
    ) -> list[dict[str, Any]]:
        try:
            store.set_role(name, change.role, by=user)
        except StoreError as err:
            raise HTTPException(status_code=422, detail=err.reason) from err
        return store.users()

    @app.delete("/api/users/{name}")
    def remove_user(name: str, user: str = Depends(admin)) -> list[dict[str, Any]]:
        if name == user:
            raise HTTPException(status_code=422, detail="you cannot remove yourself")
        try:
            store.remove_user(name, by=user)
        except StoreError as err:
            raise HTTPException(status_code=422, detail=err.reason) from err
        return store.users()

    from medlabel.review.monailabel_api import add_monailabel_routes

    add_monailabel_routes(app, current_user, reviewer)
    return app
