"""MONAI Label-compatible REST routes, so 3D Slicer's MONAI Label plugin and OHIF can use a
medlabel review server unchanged.

The routes and reply shapes follow MONAI Label's public API (written from its documentation
and client, no code taken): ``/auth/``, ``/auth/token``, ``/info/``, ``/infer/{model}``,
``/activelearning/{strategy}``, ``/datastore/...`` and ``/train/...``. They sit behind the same
sign-in as the web UI: the plugin gets a bearer token from ``/auth/token`` with a medlabel
user's name and password.

* The **datastore** is the annotation job: its items are the images; a label is the newest
  human mask of an item (tag ``final``), or the model's mask (tag ``original``).
* **Infer** runs a model of the job (bundled model, user bundle or recipe) on a stored image
  and replies with the mask (NIfTI) and/or a JSON ``params`` part; it writes files, so it
  needs a reviewer.
* **Label uploads** must be masks on the item's grid with the model's classes; the model is
  ``params.model``, or the item's only segmentation model when the client names none.
* **Active learning** returns the next pending item by the chosen strategy, ``{}`` when none.
* **Train** runs ``medlabel train ... --from-review`` in a subprocess on the reviewed labels,
  writing ``JOB/models/<model>-v<N>``; it can be polled and stopped. A segmentation bundle is
  fine-tuned from its current weights unless the request says ``"pretrained": false``
  (:func:`train_command`).

Example (the multipart reply of ``/infer``):
    >>> reply = _multipart({"label_names": {"lung": 1}}, "mask.nii.gz", b"...")
    >>> reply.media_type.startswith("multipart/form-data"), b'name="params"' in reply.body
    (True, True)
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.datastructures import UploadFile

from medlabel import __version__
from medlabel.errors import MedlabelError
from medlabel.image import same_grid
from medlabel.review.active import STRATEGIES
from medlabel.review.export import model_classes
from medlabel.review.queue import rank_pending
from medlabel.review.store import source_item

__all__ = ["add_monailabel_routes", "train_command"]

_TAG = re.compile(r"[A-Za-z0-9_-]{1,32}")


async def _json_params(request: Request) -> dict[str, Any]:
    """A request's JSON object body (``{}`` when empty); another content type is refused, so
    a cross-site form cannot pass for JSON."""
    body = await request.body()
    if not body.strip():
        return {}
    if "json" not in request.headers.get("content-type", ""):
        raise HTTPException(status_code=415, detail="send the parameters as application/json")
    try:
        params = json.loads(body)
    except ValueError as err:
        raise HTTPException(status_code=422, detail=f"not JSON: {err}") from err
    if not isinstance(params, dict):
        raise HTTPException(status_code=422, detail="the parameters are a JSON object")
    return params


def train_command(
    folder: Path, model: str, task: str, out: Path, params: dict[str, Any]
) -> list[str]:
    """The ``medlabel train`` command that the ``/train/{model}`` route runs.

    ``params`` as MONAI Label sends them: ``budget_minutes`` (default 5), ``max_epochs``
    (classifiers) and ``pretrained`` (default true): a segmentation bundle or a CNN
    classifier is then fine-tuned from its current weights (``--init-from``), as MONAI
    Label's trainers start from the model being corrected; recipes and classic classifiers
    train anew.

    Example:
        >>> cmd = train_command(Path("job"), "cxr-lungs", "segment", Path("v2"), {})
        >>> cmd[cmd.index("--init-from") + 1], "--init-from" in train_command(
        ...     Path("job"), "ct-lungs", "segment", Path("v2"), {})
        ('cxr-lungs', False)
    """
    cmd = [sys.executable, "-m", "medlabel.cli", "train", task, "--from-review", str(folder)]
    cmd += ["--review-model", model, "--out", str(out)]
    cmd += ["--budget-minutes", str(float(params.get("budget_minutes", 5.0)))]
    if params.get("max_epochs") and task == "classify":
        cmd += ["--epochs", str(int(params["max_epochs"]))]
    if params.get("pretrained", True) and _bundle_kind(model) == _TUNABLE[task]:
        cmd += ["--init-from", model]
    return cmd


_TUNABLE = {"segment": "segmentation", "classify": "cnn"}  # bundle kinds that fine-tune


def _bundle_kind(model: str) -> str | None:
    from medlabel.models import resolve_model

    try:  # a recipe, or a model no longer there, is no bundle
        description = resolve_model(model) / "bundle.json"
        return str(json.loads(description.read_text()).get("kind", "cnn"))
    except (OSError, ValueError, MedlabelError):
        return None


def _multipart(params: dict[str, Any], name: str, data: bytes) -> Response:
    boundary = "medlabel" + str(int(time.time() * 1000))
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="params"\r\n'
            f"Content-Type: application/json\r\n\r\n{json.dumps(params)}\r\n"
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return Response(body, media_type=f"multipart/form-data; boundary={boundary}")


def add_monailabel_routes(app: FastAPI, current_user: Any, reviewer: Any) -> None:
    """Mount the MONAI Label routes on the review ``app`` (which holds the store and folder)."""
    store = app.state.store
    folder: Path = app.state.folder
    sessions = app.state.sessions
    router = APIRouter()
    training: dict[str, Any] = {"process": None, "status": "NONE"}
    loaded: dict[str, Any] = {}

    def model_of(name: str) -> Any:
        from medlabel.annotate.models import open_model

        if name not in loaded:
            loaded[name] = open_model(name)
        return loaded[name]

    def model_dims(name: str) -> int | None:
        try:
            return int(model_of(name).dims)
        except MedlabelError:  # a model this installation does not have
            return None

    def job_models() -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        classes = model_classes(folder)
        for r in store.predictions(None):
            if r["model"] in out:
                continue
            labels = classes.get(r["model"]) or {k + 1: c for k, c in enumerate(r["probs"])}
            out[r["model"]] = {
                "type": r["task"],
                "labels": {name: value for value, name in labels.items()},
                "dimension": model_dims(r["model"]),
                "description": f"medlabel {r['task']} model {r['model']}",
            }
        return out

    def item_image(item_id: str) -> Any:
        from medlabel.annotate.items import read_item

        item = store.item(item_id)
        if item is None:
            raise HTTPException(status_code=404, detail=f"no image {item_id!r}")
        return read_item(source_item(item))

    @router.get("/auth/")
    def auth_info() -> dict[str, Any]:
        return {"enabled": True, "client_id": "medlabel", "realm_uri": "", "username": ""}

    @router.post("/auth/token")
    def auth_token(username: str = Form(...), password: str = Form(...)) -> dict[str, str]:
        if not store.check_password(username, password):
            raise HTTPException(status_code=401, detail="wrong user or password")
        return {"access_token": sessions.issue(username), "token_type": "bearer"}

    @router.get("/auth/token/valid")
    def auth_valid(user: str = Depends(current_user)) -> dict[str, str]:
        return {"user": user}

    @router.get("/info/")
    def info(user: str = Depends(current_user)) -> dict[str, Any]:
        app.state.refresh()
        models = job_models()
        labels = sorted({name for m in models.values() for name in m["labels"]})
        return {
            "name": f"medlabel: {folder.name}",
            "description": "medlabel annotation job served with MONAI Label's API",
            "version": __version__,
            "labels": labels,
            "models": models,
            "strategies": {
                s: {"type": s, "description": f"medlabel active learning: {s}"} for s in STRATEGIES
            },
            "scoring": {},
            "trainers": {
                m: {
                    "description": f"retrain {m} on reviewed labels",
                    "config": {"budget_minutes": 5.0},
                }
                for m in models
            },
            "train_stats": {m: training.get("stats", {}).get(m, {}) for m in models},
            "datastore": datastore_stats(),
        }

    @router.post("/activelearning/{strategy}")
    async def next_sample(
        strategy: str, request: Request, user: str = Depends(current_user)
    ) -> dict[str, Any]:
        if strategy not in STRATEGIES:
            raise HTTPException(status_code=404, detail=f"strategy: one of {STRATEGIES}")
        params = await _json_params(request)
        app.state.refresh()
        rows = store.predictions("pending")
        if not rows:
            return {}
        chosen = rank_pending(folder, rows, strategy, 1, seed=int(params.get("seed", 0) or 0))[0]
        return {
            "id": chosen["item"],
            "name": chosen["source"],
            "strategy": strategy,
            "model": chosen["model"],
            "uncertainty": chosen["uncertainty"],
        }

    @router.post("/infer/{model}")
    def infer(
        model: str, image: str, output: str = "all", user: str = Depends(reviewer)
    ) -> Response:
        from medlabel.io import write_image

        if output not in ("image", "json", "all"):
            raise HTTPException(status_code=422, detail="output: image, json or all")
        if model not in job_models():
            raise HTTPException(status_code=404, detail=f"no model {model!r} in this job")
        img = item_image(image)
        try:
            m = model_of(model)
        except MedlabelError as err:
            raise HTTPException(
                status_code=404, detail=f"model {model!r} is not installed"
            ) from err
        start = time.perf_counter()
        if m.kind == "classification":
            res = m.classify([img])[0]
            return JSONResponse(
                {
                    "label": res.label,
                    "confidence": res.confidence,
                    "probs": res.probs,
                    "latencies": {"total": time.perf_counter() - start},
                }
            )
        seg = m.segment(img)
        params = {
            "label_names": {n: v for v, n in seg.classes.items()},
            "latencies": {"total": time.perf_counter() - start},
            "model": model,
        }
        if output == "json":
            return JSONResponse(params)
        out = folder / ".medlabel" / "infer" / f"{image}.{model}.nii.gz"
        write_image(seg.mask, out)
        data = out.read_bytes()
        if output == "image":
            return Response(
                data,
                media_type="application/octet-stream",
                headers={"content-disposition": f'attachment; filename="{out.name}"'},
            )
        return _multipart(params, out.name, data)

    def datastore_stats() -> dict[str, Any]:
        items = store.items()
        done = sum(1 for i in items if i["labelled"])
        return {
            "total": len(items),
            "completed": done,
            "label_tags": {"final": done},
            "train": done,
        }

    @router.get("/datastore/")
    def datastore(output: str = "stats", user: str = Depends(current_user)) -> Any:
        app.state.refresh()
        if output == "stats":
            return datastore_stats()
        items = store.items()
        done = [i for i in items if i["labelled"]]
        if output == "train":
            out = []
            for i in done:
                item = store.item(i["id"]) or {"results": []}
                masks = [(r["annotation"] or {}).get("mask") for r in item["results"]]
                ann = next((m for m in masks if m), None)
                if ann:
                    out.append({"image": i["id"], "label": str(folder / ann)})
            return out
        return {
            "name": folder.name,
            "objects": {
                i["id"]: {
                    "image": {"id": i["id"], "name": i["source"]},
                    "labels": {"final": {}} if i["labelled"] else {},
                }
                for i in items
            },
        }

    async def _save_upload(file: UploadFile, target: Path) -> None:
        from medlabel.io.atomic import atomic_output

        with atomic_output(target) as tmp, tmp.open("wb") as fh:
            while chunk := await file.read(1 << 20):
                fh.write(chunk)

    async def put_image(request: Request, image: str | None, user: str) -> dict[str, Any]:
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise HTTPException(status_code=422, detail="send the image as the 'file' part")
        name = Path(upload.filename).name
        item_id = image or name.split(".")[0]
        if not item_id.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise HTTPException(status_code=422, detail="image ids are letters, digits, -_.")
        suffix = name[len(name.split(".")[0]) :] or ".nii.gz"
        target = folder / "uploads" / f"{item_id}{suffix}"
        await _save_upload(upload, target)
        store.add_item(item_id, name, [str(target)], user=user)
        return {"image": item_id}

    @router.put("/datastore/image")
    async def upload_image(
        request: Request, image: str | None = None, user: str = Depends(reviewer)
    ) -> dict[str, Any]:
        return await put_image(request, image, user)

    @router.put("/datastore/")
    async def upload_image_alias(
        request: Request, image: str | None = None, user: str = Depends(reviewer)
    ) -> dict[str, Any]:
        return await put_image(request, image, user)

    def label_model(item: dict[str, Any], params: dict[str, Any]) -> str:
        """The segmentation model an uploaded label belongs to (named, or the item's only)."""
        segmenters = sorted(r["model"] for r in item["results"] if r["task"] == "segmentation")
        named = params.get("model")
        if named is None and len(segmenters) == 1:
            return segmenters[0]
        if named is None or named not in model_classes(folder):
            known = ", ".join(segmenters or sorted(model_classes(folder))) or "none"
            raise HTTPException(
                status_code=422,
                detail=f"name the segmentation model in params.model (this job's: {known})",
            )
        return str(named)

    def checked_label(path: Path, item: dict[str, Any], model: str) -> None:
        """Refuse an upload that is not a mask of ``model`` on the item's grid."""
        from medlabel.io import read_image

        try:
            mask = read_image(path, is_label=True)
        except MedlabelError as err:
            raise HTTPException(
                status_code=422, detail=f"not a readable mask: {err.reason}"
            ) from err
        image = item_image(item["id"])
        if not same_grid(mask, image):
            raise HTTPException(
                status_code=422,
                detail=f"the mask's grid (size {mask.size}, spacing {mask.spacing}) is not "
                f"the image's (size {image.size}, spacing {image.spacing}) or their origin "
                "or direction differ",
            )
        import numpy as np

        values = set(np.unique(np.asarray(mask.array)).tolist())
        known = set(model_classes(folder).get(model, {})) | {0}
        if not values <= known:
            raise HTTPException(
                status_code=422,
                detail=f"label values {sorted(values - known)} are not classes of {model}",
            )

    @router.put("/datastore/label")
    async def upload_label(
        request: Request, image: str, tag: str = "final", user: str = Depends(reviewer)
    ) -> dict[str, Any]:
        form = await request.form()
        upload = form.get("label")
        if not isinstance(upload, UploadFile):
            raise HTTPException(status_code=422, detail="send the mask as the 'label' part")
        if not _TAG.fullmatch(tag):
            raise HTTPException(status_code=422, detail="tags are 1-32 letters, digits, - or _")
        try:
            params = json.loads(str(form.get("params") or "{}"))
        except ValueError as err:
            raise HTTPException(status_code=422, detail=f"params: not JSON: {err}") from err
        item = store.item(image)
        if item is None:
            raise HTTPException(status_code=404, detail=f"no image {image!r}")
        model = label_model(item, params if isinstance(params, dict) else {})
        staging = folder / ".medlabel" / "uploads"
        staging.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=staging) as tmp:
            suffix = "".join(Path(upload.filename or "label.nii.gz").suffixes[-2:]) or ".nii.gz"
            received = Path(tmp) / f"label{suffix}"
            await _save_upload(upload, received)
            checked_label(received, item, model)
            with app.state.saving:
                current = store.latest_annotation(image, model)
                version = (current["version"] if current else 0) + 1
                rel = f"masks/{image}/{model}.{tag}.v{version}{suffix}"
                (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                received.replace(folder / rel)
                store.add_label(image, model, rel, user)
        return {"image": image, "label": rel, "tag": tag}

    @router.get("/datastore/image")
    def download_image(image: str, user: str = Depends(current_user)) -> Response:
        from medlabel.io import write_image

        img = item_image(image)  # a known item, or 404: ids are never paths
        out = folder / ".medlabel" / "images" / f"{image}.nii.gz"
        if not out.resolve().is_relative_to(folder) or not out.is_file():
            write_image(img, out)
        return FileResponse(out, media_type="application/octet-stream", filename=out.name)

    @router.get("/datastore/label")
    def download_label(
        label: str, tag: str = "final", user: str = Depends(current_user)
    ) -> Response:
        item = store.item(label)
        candidates = (
            []
            if item is None
            else [
                (r["annotation"] or {}).get("mask") or (r["mask"] if tag == "original" else "")
                for r in item["results"]
            ]
        )
        rel = next((c for c in candidates if c), "")
        path = (folder / rel).resolve()
        if not rel or not path.is_relative_to(folder) or not path.is_file():
            raise HTTPException(status_code=404, detail=f"no {tag} label for {label!r}")
        return FileResponse(path, media_type="application/octet-stream", filename=path.name)

    def running() -> bool:
        proc = training.get("process")
        return proc is not None and proc.poll() is None

    @router.post("/train/{model}")
    async def train(model: str, request: Request, user: str = Depends(reviewer)) -> dict[str, Any]:
        if running():
            raise HTTPException(status_code=409, detail="a training run is already going on")
        params = await _json_params(request)
        models = job_models()
        if model not in models:
            raise HTTPException(status_code=404, detail=f"no model {model!r} in this job")
        task = "segment" if models[model]["type"] == "segmentation" else "classify"
        version = len(list((folder / "models").glob(f"{model}-v*"))) + 1
        out = folder / "models" / f"{model}-v{version}"
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = train_command(folder, model, task, out, params)
        log = (folder / ".medlabel" / f"train-{model}-v{version}.log").open("w")
        training.update(
            process=subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT),
            status="RUNNING",
            model=model,
            out=str(out),
            start=time.time(),
            log=log,
        )
        store.log(user, "train:start", {"model": model, "out": str(out)})
        return {"id": f"{model}-v{version}", "status": "RUNNING", "model": model}

    @router.get("/train/")
    def train_status(check_if_running: bool = False, user: str = Depends(current_user)) -> Response:
        proc = training.get("process")
        if proc is not None and proc.poll() is not None and training["status"] == "RUNNING":
            training["status"] = "DONE" if proc.returncode == 0 else "FAILED"
            training["log"].close()
            training.setdefault("stats", {})[training["model"]] = {
                "status": training["status"],
                "bundle": training["out"],
                "seconds": time.time() - training["start"],
            }
        if check_if_running:
            if running():
                return JSONResponse({"status": "RUNNING"})
            return JSONResponse({"status": training["status"]}, status_code=404)
        return JSONResponse({k: training.get(k) for k in ("status", "model", "out", "start")})

    @router.delete("/train/")
    def train_stop(user: str = Depends(reviewer)) -> dict[str, Any]:
        if running():
            training["process"].terminate()
            training["process"].wait(timeout=30)
            training["status"] = "STOPPED"
            store.log(user, "train:stop", {"model": training.get("model")})
        return {"status": training["status"]}

    app.include_router(router)
