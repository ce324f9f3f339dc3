"""Files of a model bundle, for every kind of model: atomic writing, the description, ONNX.

A bundle is a folder with ``bundle.json`` (format, version, kind, everything needed to
reproduce predictions), the weights, an ONNX export and ``MODEL_CARD.md``. Classifiers
(:mod:`medlabel.classify.bundle`) and segmenters (:mod:`medlabel.segment.bundle`) write and
read their folders through these helpers.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "b"
    >>> with staging(folder) as tmp:
    ...     write_description(tmp, {"kind": "demo"}, card=lambda meta: "# demo")
    >>> read_description(folder, kinds=("demo",))["kind"]
    'demo'
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import logging
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medlabel import __version__
from medlabel.errors import MedlabelError

__all__ = [
    "BUNDLE_FORMAT",
    "DESCRIPTION_FILES",
    "BundleError",
    "SampleIds",
    "check_bundle_target",
    "check_modality",
    "cpu_threads",
    "export_onnx",
    "file_checksums",
    "file_digest",
    "file_digests",
    "half_weights",
    "json_default",
    "loading",
    "read_description",
    "sample_key",
    "staging",
    "trained_ids",
    "verify_checksums",
    "was_seen",
    "write_description",
]

#: Version of the bundle layout; bundles of another version are refused with a clear error.
BUNDLE_FORMAT = 1


class BundleError(MedlabelError):
    """A bundle is missing, incomplete or from an incompatible version."""


#: What a refusal suggests instead.
_TARGET_HINT = "give a new or empty folder, or a bundle of the same kind to replace"


def check_bundle_target(
    path: str | os.PathLike[str],
    kinds: Sequence[str],
    data: str | os.PathLike[str] | None = None,
) -> Path:
    """Check that a bundle of one of ``kinds`` may be written to ``path``, before any work.

    Writing a bundle replaces the folder, so only a new path, an empty folder or a bundle
    whose ``bundle.json`` says one of ``kinds`` (the retrain flow) is accepted. ``data``, the
    training data, must not be the folder itself, lie in it or (a folder) contain it.

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> check_bundle_target(root / "new", kinds=("cnn",)) == root / "new"
        True
        >>> _ = (root / "notes.txt").write_text("important")
        >>> try:
        ...     check_bundle_target(root, kinds=("cnn",))
        ... except BundleError as err:
        ...     print(err.reason.split(":")[0])
        a folder holding other files (no bundle.json)

    Raises:
        BundleError: the path is a file, a folder of other content, a bundle of another kind,
            or overlaps the training data.
    """
    target = Path(path)
    if data is not None and Path(data).exists():
        here, source = target.resolve(), Path(data).resolve()
        if here == source:
            raise BundleError(target, f"is the training data; {_TARGET_HINT}")
        if source.is_dir() and source in here.parents:
            raise BundleError(target, f"lies inside the training data {data}; {_TARGET_HINT}")
        if here in source.parents:
            raise BundleError(target, f"contains the training data {data}; {_TARGET_HINT}")
    blocking = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise BundleError(target, f"{blocking} is a file, not a folder")
    if not target.exists():
        return target
    if not target.is_dir():
        raise BundleError(
            target, f"a file, not a bundle folder: refusing to replace it; {_TARGET_HINT}"
        )
    meta_path = target / "bundle.json"
    if not meta_path.is_file():
        if any(target.iterdir()):
            raise BundleError(
                target,
                f"a folder holding other files (no bundle.json): refusing to replace it; "
                f"{_TARGET_HINT}",
            )
        return target
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(
            meta_path, f"unreadable bundle description ({exc}): refusing to replace the folder"
        ) from exc
    kind = meta.get("kind") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != "medlabel.bundle":
        raise BundleError(target, f"not a medlabel bundle: refusing to replace it; {_TARGET_HINT}")
    if kind not in kinds:
        raise BundleError(
            target,
            f"a bundle of kind {kind!r}, not {'/'.join(kinds)}: refusing to replace it; "
            f"{_TARGET_HINT}",
        )
    return target


@contextlib.contextmanager
def loading(path: Path) -> Iterator[None]:
    """Turn a library's failure to load a model file (ONNX Runtime, torch, NumPy) into a
    :class:`BundleError` naming the file, for bundles without checksums.

    Example:
        >>> try:
        ...     with loading(Path("member-0.onnx")):
        ...         raise RuntimeError("protobuf parsing failed")
        ... except BundleError as err:
        ...     print(err.reason.split(";")[0])
        cannot be loaded (RuntimeError: protobuf parsing failed)
    """
    try:
        yield
    except MedlabelError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise BundleError(
            path,
            f"cannot be loaded ({type(exc).__name__}: {first}); the file may be damaged: "
            "reinstall the model or train it again",
        ) from exc


@contextlib.contextmanager
def staging(target: Path) -> Iterator[Path]:
    """A temporary sibling folder that replaces ``target`` only when the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def json_default(value: Any) -> Any:
    """JSON encoder hook for NumPy scalars and arrays and paths."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def cpu_threads() -> int:
    """Threads for ONNX Runtime: torch's setting where torch is loaded already (so that
    ``torch.set_num_threads`` governs both engines), else ``OMP_NUM_THREADS``, else the CPUs
    this process may run on. Reading it never imports torch.

    Example:
        >>> cpu_threads() >= 1
        True
    """
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "get_num_threads"):
        return max(1, int(torch.get_num_threads()))
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


#: The files of a bundle that describe it; every other file is a model file with a checksum.
DESCRIPTION_FILES = frozenset({"bundle.json", "MODEL_CARD.md"})


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def file_checksums(folder: Path) -> dict[str, str]:
    """SHA-256 of every model file of a bundle folder (all files but its description).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "model.onnx").write_bytes(b"weights")
        >>> file_checksums(folder)["model.onnx"][:12]
        '9a129038d9a0'
    """
    return {
        p.name: _sha256(p)
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name not in DESCRIPTION_FILES
    }


def verify_checksums(folder: Path, meta: dict[str, Any]) -> None:
    """Check the model files of a bundle against the checksums its description recorded
    (bundles written before checksums were recorded pass unchecked).

    Raises:
        BundleError: a file's contents differ from those the bundle was written with.
    """
    for name, expected in (meta.get("checksums") or {}).items():
        path = folder / name
        if path.is_file() and _sha256(path) != expected:
            raise BundleError(
                path,
                "damaged: its contents differ from those the bundle was written with "
                "(SHA-256 checksum); reinstall the model or train it again",
            )


def write_description(
    folder: Path, meta: dict[str, Any], card: Callable[[dict[str, Any]], str]
) -> None:
    """Write ``bundle.json`` (format fields and the model files' checksums filled in) and
    ``MODEL_CARD.md`` (``card(meta)``)."""
    meta["checksums"] = file_checksums(folder)
    meta.setdefault("format", "medlabel.bundle")
    meta.setdefault("format_version", BUNDLE_FORMAT)
    meta.setdefault("medlabel_version", __version__)
    meta.setdefault("created", dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    (folder / "bundle.json").write_text(json.dumps(meta, indent=2, default=json_default))
    (folder / "MODEL_CARD.md").write_text(card(meta))


def read_description(path: Path, kinds: Sequence[str]) -> dict[str, Any]:
    """The ``bundle.json`` of ``path``, checked for format, version and kind.

    Raises:
        BundleError: not a bundle, unreadable, another format version, or another kind.
    """
    meta_path = path / "bundle.json"
    if not meta_path.is_file():
        raise BundleError(path, "not a model bundle (no bundle.json)")
    try:
        meta: dict[str, Any] = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(meta_path, f"unreadable bundle description ({exc})") from exc
    if meta.get("format") != "medlabel.bundle":
        raise BundleError(meta_path, "not a medlabel bundle description")
    version = int(meta.get("format_version", 0))
    if version != BUNDLE_FORMAT:
        raise BundleError(
            path,
            f"bundle format {version} (made by medlabel {meta.get('medlabel_version', '?')}) is "
            f"not readable by this medlabel {__version__}, which reads format {BUNDLE_FORMAT}",
        )
    if meta.get("kind") not in kinds:
        raise BundleError(
            path, f"bundle kind {meta.get('kind')!r} does not fit here (expected {'/'.join(kinds)})"
        )
    verify_checksums(path, meta)
    return meta


def export_onnx(
    model: Any, example: Any, path: Path, output_name: str = "logits", *, half: bool = False
) -> None:
    """Export a torch module to ONNX with a dynamic batch axis; debug info stripped.

    ``half``: store the weights in half precision (see :func:`half_weights`), for bundles
    whose torch weights are half precision too, so both engines compute with the same values.
    """
    import onnx
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        with Path(os.devnull).open("w") as sink, contextlib.redirect_stdout(sink):
            torch.onnx.export(
                model,
                (example,),
                str(path),
                input_names=["image"],
                output_names=[output_name],
                dynamic_shapes=(
                    {0: torch.export.Dim("batch", min=1, max=4096)},
                ),  # whatever the argument's name
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    proto = onnx.load(str(path))
    for node in proto.graph.node:  # the exporter's stack traces hold this machine's paths
        del node.metadata_props[:]
    onnx.save(half_weights(proto) if half else proto, str(path))


def half_state(module: Any) -> dict[str, Any]:
    """A torch module's state dict with its floating-point tensors in half precision (what
    bundles store to stay small; loading copies them back into float32 parameters).

    Example:
        >>> import torch
        >>> half_state(torch.nn.Linear(2, 1))["weight"].dtype
        torch.float16
    """
    return {n: v.half() if v.is_floating_point() else v for n, v in module.state_dict().items()}


def half_weights(proto: Any, min_elements: int = 256) -> Any:
    """Store an ONNX model's float32 weights as float16, cast back to float32 in the graph.

    The file shrinks by half while the computation stays float32: ONNX Runtime folds each
    ``Cast`` of a constant when the session is created, so inference speed is unchanged.
    Tensors smaller than ``min_elements`` (epsilons, scales) are left as they are.

    Example:
        >>> import numpy as np, onnx
        >>> from onnx import helper, numpy_helper
        >>> w = numpy_helper.from_array(np.full((16, 16), 0.1, np.float32), "w")
        >>> graph = helper.make_graph(
        ...     [helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
        ...     [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 16])],
        ...     [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 16])], [w])
        >>> small = half_weights(helper.make_model(graph))
        >>> [t.data_type == onnx.TensorProto.FLOAT16 for t in small.graph.initializer]
        [True]
        >>> [n.op_type for n in small.graph.node]
        ['Cast', 'MatMul']
    """
    from onnx import TensorProto, helper, numpy_helper

    kept, casts = [], []
    for init in proto.graph.initializer:
        if init.data_type == TensorProto.FLOAT and int(np.prod(init.dims)) >= min_elements:
            half = numpy_helper.from_array(
                numpy_helper.to_array(init).astype(np.float16), f"{init.name}__half"
            )
            kept.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT))
        else:
            kept.append(init)
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(kept)
    nodes = list(proto.graph.node)
    del proto.graph.node[:]
    proto.graph.node.extend(casts + nodes)
    return proto


def sample_key(sample_id: str) -> str:
    """What a sample id is recognised by wherever its data set is laid out: the last two
    parts of its path (class folder and file name, or split and index), in lower case.

    Example:
        >>> sample_key("chest/test/NORMAL/IM-0001.jpeg"), sample_key("hippocampus_003")
        ('normal/im-0001.jpeg', 'hippocampus_003')
    """
    parts = [p for p in str(sample_id).replace("\\", "/").split("/") if p]
    return "/".join(parts[-2:]).lower()


#: Hex characters kept of a file's SHA-1: enough that two different images collide with a
#: chance of about 1e-10 among 10,000 training images and as many new ones.
DIGEST_CHARS = 12


@functools.lru_cache(maxsize=1 << 16)
def _sha1(path: str, size: int, mtime_ns: int) -> str:
    """The SHA-1 of a file; ``size`` and ``mtime_ns`` key the cache, so a changed file is
    read again."""
    sha = hashlib.sha1(usedforsecurity=False)
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def _file_sha1(path: Path) -> str:
    stat = path.stat()
    return _sha1(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def file_digest(path: str | os.PathLike[str] | None) -> str | None:
    """What a sample's file is recognised by under any name: the first
    :data:`DIGEST_CHARS` hex characters of the SHA-1 of its bytes (for a folder, such as a
    DICOM series: of its files' SHA-1s in name order, hidden files left out); ``None`` when
    there is no file or it cannot be read.
    Cached by path, size and modification time.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> (folder / "a.png").write_bytes(b"same"); (folder / "copy.png").write_bytes(b"same")
        4
        4
        >>> file_digest(folder / "a.png") == file_digest(folder / "copy.png"), file_digest(None)
        (True, None)
    """
    if path is None:
        return None
    target = Path(path)
    try:
        if not target.is_dir():
            return _file_sha1(target)[:DIGEST_CHARS]
        files = [f for f in sorted(target.rglob("*")) if f.is_file() and not f.name.startswith(".")]
        joined = "".join(_file_sha1(f) for f in files).encode()
        return hashlib.sha1(joined, usedforsecurity=False).hexdigest()[:DIGEST_CHARS]
    except OSError:
        return None


def file_digests(
    paths: Iterable[str | os.PathLike[str] | None], seen: Collection[str] = ()
) -> list[str]:
    """:func:`file_digest` of each readable file, for a bundle's ``data["train_digests"]``,
    followed by those ``seen`` records (the starting bundle's, when fine-tuning) that are not
    among them.

    Example:
        >>> file_digests([None], SampleIds(digests=["abc"]))
        ['abc']
    """
    mine = [d for d in map(file_digest, paths) if d is not None]
    earlier = seen.digests if isinstance(seen, SampleIds) else frozenset()
    return mine + sorted(earlier - set(mine))


class SampleIds(frozenset[str]):
    """Sample ids that also recognise the same samples laid out differently: an id is in it
    when it is, or when its :func:`sample_key` is that of one that is (a class folder moved
    under ``test/``, written in lower case, or named by an absolute path in a CSV).
    :meth:`holds` also recognises a sample by its file's bytes (:func:`file_digest`), so a
    copy under another name or folder is recognised too.

    Example:
        >>> ids = SampleIds(["NORMAL/IM-0001.jpeg"])
        >>> "data/test/normal/IM-0001.jpeg" in ids, "PNEUMONIA/IM-0001.jpeg" in ids
        (True, False)
    """

    _keys: frozenset[str]
    digests: frozenset[str]

    def __new__(cls, ids: Iterable[str] = (), digests: Iterable[str] = ()) -> SampleIds:
        out = super().__new__(cls, ids)
        out._keys = frozenset(sample_key(i) for i in out)
        out.digests = frozenset(digests)
        return out

    def __contains__(self, item: object) -> bool:
        if frozenset.__contains__(self, item):
            return True
        return isinstance(item, str) and sample_key(item) in self._keys

    def __bool__(self) -> bool:
        return bool(len(self) or self.digests)

    def holds(self, sample_id: str, file: str | os.PathLike[str] | None = None) -> bool:
        """Whether the sample is one of these, by its id or by its file's bytes."""
        if sample_id in self:
            return True
        return bool(self.digests) and file_digest(file) in self.digests


def was_seen(
    seen: Collection[str], sample_id: str, file: str | os.PathLike[str] | None = None
) -> bool:
    """Whether a model trained on ``seen`` saw this sample: by id for a plain collection, and
    also by the file's bytes for :class:`SampleIds` that record them.

    Example:
        >>> was_seen({"a"}, "a"), was_seen(SampleIds(["x/a.png"]), "y/a.png")
        (True, False)
    """
    if isinstance(seen, SampleIds):
        return seen.holds(sample_id, file)
    return sample_id in seen


def trained_ids(meta: dict[str, Any]) -> SampleIds:
    """Ids of the samples (cases) some member of a bundle was trained on, from its description
    (as :class:`SampleIds`, so a data set laid out anew, or a copy of a training image under
    another name, still shows which they are: ``data["train_digests"]``).

    Fine-tuning never validates on them.

    Bundles from before ``train_ids`` was recorded give them only for segmentation
    cross-validation ensembles, whose pooled validation cases each trained the other members.

    Example:
        >>> sorted(trained_ids({"members": [{}, {}], "data": {"val_ids": ["a", "b"]}}))
        ['a', 'b']
    """
    data = meta.get("data") or {}
    digests = data.get("train_digests") or ()
    if "train_ids" in data:
        return SampleIds(data["train_ids"], digests)
    several = len(meta.get("members") or []) > 1
    return SampleIds(data.get("val_ids") or [] if several else [], digests)


def check_modality(model: str, meta: dict[str, Any], image: Any) -> None:
    """Refuse ``image`` when the bundle declares the modalities it is made for
    (``meta["modalities"]``, DICOM codes) and the image declares another (a CT slice given to
    a chest X-ray model); untagged images (PNG, NIfTI) pass.

    Raises:
        MedlabelError: naming the model's modalities and the image's.

    Example:
        >>> from medlabel.image import MedicalImage
        >>> check_modality("cxr", {"modalities": ["CR", "DX"]}, MedicalImage(np.zeros((4, 4))))
        >>> try:
        ...     check_modality("cxr", {"modalities": ["CR", "DX"]},
        ...                    MedicalImage(np.zeros((4, 4)), modality="CT"))
        ... except MedlabelError as err:
        ...     print(err.reason)
        cxr is made for CR/DX images; this one is CT
    """
    declared = tuple(str(m).upper() for m in meta.get("modalities") or ())
    modality = (image.modality or "").upper()
    if declared and modality and modality not in declared:
        raise MedlabelError(
            image.metadata.get("path"),
            f"{model} is made for {'/'.join(declared)} images; this one is {modality}",
        )
