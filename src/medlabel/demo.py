"""The demo: the annotation job on real studies available offline, and a preprocessing gallery.

:func:`run_demo_annotation` runs ``medlabel annotate`` (the main job) with the bundled models
and the classical CT recipes over the sample studies listed by :func:`demo_studies`; its
``report.html`` is what a newcomer should open first. :func:`run_demo` is the gallery of the
reading and preprocessing steps.

It uses the full-size radiographs, CT and MR slices shipped in the ``pydicom-data`` wheel
(installed with medlabel), and, when ``../shared/data`` (or ``$MEDLABEL_DATA``) is present,
a real 20-slice JPEG-2000 CT series with its TotalSegmentator labels and MRI lesion volumes.
Every input is listed in ``index.html`` with its geometry, the files written, and a preview.

Example:
    >>> import tempfile
    >>> report = run_demo(tempfile.mkdtemp(), shared=None, include_packaged=False)
    >>> report.name
    'index.html'
"""

from __future__ import annotations

import html
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.data import get_testdata_file
from tqdm import tqdm

from medlabel.errors import MedlabelError
from medlabel.image import MedicalImage
from medlabel.io import read_image, read_label, write_image
from medlabel.io.atomic import atomic_output
from medlabel.preprocess import clahe, resample_to_reference, window
from medlabel.visualize.preview import render_preview

__all__ = [
    "demo_studies",
    "find_shared_data",
    "run_demo",
    "run_demo_annotation",
    "shared_data_location",
]

log = logging.getLogger(__name__)


@dataclass
class _Case:
    name: str
    source: str
    describe: str
    run: Callable[[Path], tuple[list[str], MedicalImage]]
    outputs: list[str] = field(default_factory=list)
    geometry: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0


def shared_data_location(base: Path | None = None) -> tuple[Path, str]:
    """Where the shared data set is looked for, and why there: ``$MEDLABEL_DATA`` when set,
    else ``shared/data`` beside ``base`` (default: the working directory, i.e.
    ``../shared/data``). The folder need not exist.

    Example:
        >>> folder, why = shared_data_location(Path("/repo"))
        >>> why in ("from $MEDLABEL_DATA", "the default ../shared/data")
        True
    """
    env = os.environ.get("MEDLABEL_DATA")
    if env:
        return Path(env), "from $MEDLABEL_DATA"
    return (base or Path.cwd()).parent / "shared" / "data", "the default ../shared/data"


def find_shared_data(base: Path | None = None) -> Path | None:
    """:func:`shared_data_location`, or ``None`` when that folder does not exist."""
    candidate, _ = shared_data_location(base)
    return candidate if candidate.is_dir() else None


def _segment(
    img: MedicalImage, name: str, model: str, out: Path, window: str | None = None
) -> list[str]:
    """Mask (on the image grid) and overlay preview from a recipe or bundled model."""
    from medlabel.segment.api import open_segmenter

    seg = open_segmenter(model).segment(img)
    files = [f"{name}_{model}.nii.gz", f"{name}_{model}.png"]
    write_image(seg, out / files[0])
    render_preview(img, out / files[1], mask=seg, window=window, slices=8)
    return files


def _chest_segmenter() -> str:
    """The learned lung/heart model when this installation ships it, else the classical one."""
    from medlabel.models import bundled_models

    return "cxr-lungs" if "cxr-lungs" in bundled_models() else "cxr-lungs-classical"


def _xray(src: str, name: str) -> Callable[[Path], tuple[list[str], MedicalImage]]:
    def run(out: Path) -> tuple[list[str], MedicalImage]:
        img = read_image(src)
        write_image(img, out / f"{name}.nii.gz")
        enhanced = clahe(img)
        write_image(enhanced, out / f"{name}_clahe.png")
        render_preview(img, out / f"{name}_preview.png")
        files = [f"{name}.nii.gz", f"{name}_clahe.png", f"{name}_preview.png"]
        if name.startswith("chest"):
            files += _segment(img, name, _chest_segmenter(), out)
        return files, img

    return run


def _ct(
    src: str, name: str, seg: str | None = None, recipes: tuple[str, ...] = ()
) -> Callable[[Path], tuple[list[str], MedicalImage]]:
    def run(out: Path) -> tuple[list[str], MedicalImage]:
        img = read_image(src)
        files = [f"{name}.nii.gz", f"{name}_preview.png"]
        write_image(img, out / files[0])
        mask = None
        if seg is not None:
            # The labels are stored in another orientation (LAS): map them onto the CT grid.
            labels = read_label(seg)
            mask = resample_to_reference(labels, img, interpolation="nearest")
            write_image(mask, out / f"{name}_labels.nii.gz")
            files.append(f"{name}_labels.nii.gz")
        render_preview(img, out / files[1], mask=mask, window="abdomen" if seg else "mediastinum")
        lung = window(img, "lung")
        render_preview(lung, out / f"{name}_lung_window.png", window=(0.5, 1.0))
        files.append(f"{name}_lung_window.png")
        for recipe in recipes:
            files += _segment(img, name, recipe, out, window="abdomen")
        return files, img

    return run


def _mr(
    src: str, name: str, label: str | None = None
) -> Callable[[Path], tuple[list[str], MedicalImage]]:
    def run(out: Path) -> tuple[list[str], MedicalImage]:
        img = read_image(src)
        mask = read_label(label, reference=img) if label else None
        write_image(img, out / f"{name}.nii.gz")
        render_preview(img, out / f"{name}_preview.png", mask=mask, slices=8)
        return [f"{name}.nii.gz", f"{name}_preview.png"], img

    return run


def _cases(shared: Path | None, include_packaged: bool) -> list[_Case]:
    cases: list[_Case] = []
    if include_packaged:
        packaged = [
            ("RG1_UNCR.dcm", "chest_cr", "chest radiograph (CR, MONOCHROME1, 1955x1841)", _xray),
            ("RG3_J2KR.dcm", "cr_j2k", "radiograph, JPEG-2000 lossless", _xray),
            ("693_J2KR.dcm", "ct_slice_j2k", "CT slice, JPEG-2000 lossless", _ct),
            ("MR2_UNCR.dcm", "mr_oblique", "oblique MR slice, float rescale", _mr),
        ]
        for file, name, text, maker in packaged:
            try:
                path = get_testdata_file(file, download=False)
            except Exception:  # pydicom-data lookups raise various errors when it is absent
                path = None
            if path:
                cases.append(_Case(name, f"pydicom-data: {file}", text, maker(str(path), name)))
    if shared is not None:
        series = shared / "ct-abdomen" / "dicom-series"
        if series.is_dir():
            seg = shared / "ct-abdomen" / "dicom-series-seg.nii.gz"
            cases.append(
                _Case(
                    "ct_series",
                    str(series),
                    "20-slice CT series (JPEG-2000) with TotalSegmentator labels",
                    _ct(
                        str(series),
                        "ct_series",
                        str(seg) if seg.is_file() else None,
                        recipes=("ct-body", "ct-bone"),
                    ),
                )
            )
        small = shared / "ct-abdomen" / "example_ct_sm.nii.gz"
        if small.is_file():
            cases.append(
                _Case(
                    "ct_abdomen",
                    str(small),
                    "abdominal CT (3 mm) with lung bases: classical lung and bone recipes",
                    _ct(str(small), "ct_abdomen", recipes=("ct-lungs", "ct-bone")),
                )
            )
        brain = shared / "mri-lesions" / "brain1_image.nrrd"
        if brain.is_file():
            cases.append(
                _Case(
                    "brain_mri",
                    str(brain),
                    "brain MRI with tumour label (NRRD)",
                    _mr(str(brain), "brain_mri", str(shared / "mri-lesions" / "brain1_label.nrrd")),
                )
            )
    return cases


def _default_classifier() -> Any:
    """The bundled chest X-ray classifier, when this installation ships it."""
    from medlabel.models import bundled_models

    if "cxr-pneumonia" not in bundled_models():
        return None
    from medlabel.classify.bundle import load_bundle

    return load_bundle("cxr-pneumonia")


def _geometry(img: MedicalImage) -> dict[str, Any]:
    geo = img.geometry()
    return {k: geo[k] for k in ("size", "spacing", "modality", "dtype", "min", "max")}


def run_demo(
    out_dir: str | os.PathLike[str],
    *,
    shared: Path | str | None = "auto",
    include_packaged: bool = True,
) -> Path:
    """Run the demo into ``out_dir`` and return the path of its ``index.html``.

    Args:
        out_dir: output folder (created).
        shared: folder of the shared data set; ``"auto"`` finds it, ``None`` skips it.
        include_packaged: use the sample files of the pydicom-data wheel.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shared_dir = find_shared_data() if shared == "auto" else (Path(shared) if shared else None)
    cases = _cases(shared_dir, include_packaged)
    classifier = _default_classifier()
    for case in tqdm(cases, desc="demo", unit="study", disable=None):
        start = time.perf_counter()
        try:
            case.outputs, image = case.run(out)
            case.geometry = _geometry(image)
            # the chest X-ray model answers only for chest radiographs (its intended use)
            if case.name.startswith("chest") and classifier is not None:
                probs = classifier.predict_images([image])[0]
                label = classifier.class_names[int(classifier.decide(probs[None])[0])]
                case.geometry[f"{classifier.name} (research only)"] = {
                    "label": label,
                    **{
                        f"p_{c}": round(float(p), 4)
                        for c, p in zip(classifier.class_names, probs, strict=True)
                    },
                }
        except MedlabelError as err:
            case.error = str(err)
        case.seconds = time.perf_counter() - start
    return _write_index(out, cases, shared_dir)


def demo_studies(shared: Path | None, include_packaged: bool = True) -> list[Path]:
    """Sample studies for the annotation demo: the radiographs, CT and MR files of the
    pydicom-data wheel, and when the shared data is present a CT series, an abdominal CT,
    a few chest radiographs (JSRT, Kermany), a brain MRI and hippocampus crops."""
    paths: list[Path] = []
    if include_packaged:
        for name in ("RG1_UNCR.dcm", "RG3_J2KR.dcm", "CT_small.dcm", "MR2_UNCR.dcm"):
            try:
                found = get_testdata_file(name, download=False)
            except Exception:  # pydicom-data lookups raise various errors when it is absent
                found = None
            if found:
                paths.append(Path(found))
    if shared is not None:
        paths += [
            shared / "ct-abdomen" / "dicom-series",
            shared / "ct-abdomen" / "example_ct_sm.nii.gz",
            shared / "mri-lesions" / "brain1_image.nrrd",
        ]
        paths += sorted((shared / "jsrt-lungs-224" / "images").glob("*.png"))[:4]
        for label in ("NORMAL", "PNEUMONIA"):
            paths += sorted((shared / "cxr-pneumonia-224" / "train" / label).glob("*.jpeg"))[:3]
        paths += sorted((shared / "msd-hippocampus" / "imagesTr").glob("*.nii.gz"))[:2]
    return [p for p in paths if p.exists()]


def run_demo_annotation(
    out_dir: str | os.PathLike[str],
    *,
    shared: Path | str | None = "auto",
    include_packaged: bool = True,
    progress: bool = True,
) -> Any:
    """Run the annotation job on :func:`demo_studies` into ``out_dir/annotation``.

    The studies are given to the job as a CSV list, so nothing is copied. Returns the job's
    :class:`~medlabel.annotate.job.JobSummary`.
    """
    from medlabel.annotate.job import annotate

    out = Path(out_dir)
    shared_dir = find_shared_data() if shared == "auto" else (Path(shared) if shared else None)
    listing = out / "demo-studies.csv"
    with atomic_output(listing) as tmp:
        tmp.write_text(
            "path\n"
            + "".join(f"{p.resolve()}\n" for p in demo_studies(shared_dir, include_packaged))
        )
    return annotate(
        listing, out / "annotation", formats=("nifti", "png", "dicom-seg"), progress=progress
    )


def _write_index(out: Path, cases: list[_Case], shared: Path | None) -> Path:
    rows = []
    for c in cases:
        previews = "".join(
            f'<a href="{html.escape(f)}"><img src="{html.escape(f)}" height="220"></a>'
            for f in c.outputs
            if f.endswith(".png")
        )
        files = ", ".join(f'<a href="{html.escape(f)}">{html.escape(f)}</a>' for f in c.outputs)
        status = f'<span class="err">{html.escape(c.error)}</span>' if c.error else "ok"
        rows.append(
            f"<tr><td><b>{html.escape(c.name)}</b><br>{html.escape(c.describe)}<br>"
            f"<small>{html.escape(c.source)}</small></td>"
            f"<td><pre>{html.escape(json.dumps(c.geometry, indent=1))}</pre></td>"
            f"<td>{status}<br>{c.seconds:.2f} s<br>{files}</td><td>{previews}</td></tr>"
        )
    note = (
        f"Shared data: {html.escape(str(shared))}"
        if shared
        else "Shared data not found (set MEDLABEL_DATA or place it at ../shared/data)."
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>medlabel demo</title>
<style>body{{font-family:sans-serif;margin:1.5em}}td{{vertical-align:top;padding:6px;
border-bottom:1px solid #ccc}}pre{{font-size:11px}}.err{{color:#b00}}</style></head><body>
<h1>medlabel demo</h1><p><b>Automatic annotation</b>: see
<a href="annotation/report.html">annotation/report.html</a>.</p>
<h2>Reading and preprocessing gallery</h2><p>Real studies read with exact geometry, written as
NIfTI and shown as previews (radiological convention: patient right on the left). {note}</p>
<table><tr><th>study</th><th>geometry</th><th>outputs</th><th>previews</th></tr>
{"".join(rows)}</table></body></html>"""
    index = out / "index.html"
    with atomic_output(index) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return index
