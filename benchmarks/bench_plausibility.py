"""How often the plausibility check of segmentation bundles speaks up, on right and wrong images.

Each bundled segmentation model segments every case of the data set it was made for (the
held-out test cases of its benchmark counted apart: the model never saw them) and a set of
images it was not made for (other modalities, other anatomy, whole volumes instead of crops).
A finding from :mod:`medlabel.segment.plausibility` on a right image is a false alarm; none on
a wrong image is a miss. Kermany's paediatric chest radiographs are a neighbouring domain for
``cxr-lungs`` (chest X-rays, other patients and scanners): no answer is right there, the rate
is reported for information.

Bundles trained before the check existed lack the entropy reference it needs (the largest
structure entropy on their validation cases). ``--record-reference`` computes it for the
bundled models from the validation cases each bundle names and writes it into their
``bundle.json`` (``metrics.validation.structure_entropy``, with this command), as training
now does itself.

Run: ``python benchmarks/bench_plausibility.py [--record-reference]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import description, invocation, machine, require_data, save_results
from medlabel.image import MedicalImage
from medlabel.io import read_image
from medlabel.segment.api import open_segmenter
from medlabel.segment.bundle import load_segmentation_bundle
from medlabel.segment.dataset import open_segmentation_dataset
from medlabel.segment.plausibility import entropy_summary
from seg_common import hold_out

RIGHT = {  # model -> (data folder, value=class mapping)
    "mri-hippocampus": ("msd-hippocampus", "1=anterior,2=posterior"),
    "cxr-lungs": ("jsrt-lungs-224", "150=lung_right,200=lung_left,250=heart"),
}

KERMANY = "cxr-pneumonia-224/train"  # the neighbouring domain of cxr-lungs
WRONG = {  # model -> files under ../shared/data it is not made for
    "mri-hippocampus": [
        "mri-lesions/brain1_image.nrrd",
        "mri-lesions/breast1_image.nrrd",
        "mri-lesions/prostate_phantom_subvolume.nrrd",
        "ct-abdomen/example_ct_sm.nii.gz",
        "ct-abdomen/dicom-series",
    ],
    "cxr-lungs": [
        "dicom-samples/chest-ct-slice-0.dcm",
        "dicom-samples/chest-ct-slice-1.dcm",
        "dicom-samples/693_UNCR.dcm",
        "dicom-samples/MR2_UNCR.dcm",
        "dicom-samples/US1_UNCR.dcm",
        "dicom-samples/MR-SIEMENS-DICOM-WithOverlays.dcm",
    ],
}

N_NEIGHBOUR = 100  # Kermany radiographs for cxr-lungs


def _flag(seg: Any, image: MedicalImage) -> list[str]:
    return seg.segment_checked(image)[1]


def _kind(finding: str) -> str:
    """The check behind a finding's sentence."""
    if " measures " in finding:
        return "field of view"
    if "hesitates" in finding:
        return "entropy"
    return "structure missing" if finding.startswith("no ") else "structure size"


def _grey(image: MedicalImage) -> MedicalImage:
    """A single-channel view (the ultrasound sample is RGB)."""
    if not image.channels:
        return image
    return image.with_array(image.array.mean(axis=-1).astype("float32"))


def record_reference(data: Path) -> None:
    """Write each bundled model's validation entropy reference into its ``bundle.json``."""
    for model, (folder, mapping) in RIGHT.items():
        bundle = load_segmentation_bundle(model)
        ds = open_segmentation_dataset(data / folder, mapping)
        wanted = set(bundle.meta["data"]["val_ids"])
        values = [
            bundle.predict_detailed(ds.load(i)[0])[1]["entropy"]["all"]
            for i, case in enumerate(ds.cases)
            if case.id in wanted
        ]
        if len(values) != len(wanted):
            raise SystemExit(f"{model}: {len(values)} of {len(wanted)} validation cases found")
        meta = json.loads((bundle.path / "bundle.json").read_text())
        meta["metrics"]["validation"]["structure_entropy"] = {
            **entropy_summary(values),
            "command": "python benchmarks/bench_plausibility.py --record-reference",
        }
        (bundle.path / "bundle.json").write_text(json.dumps(meta, indent=2) + "\n")
        print(f"{model}: {meta['metrics']['validation']['structure_entropy']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument(
        "--record-reference",
        action="store_true",
        help="write the bundled models' validation entropy reference into their bundle.json",
    )
    args = parser.parse_args()
    data = require_data(
        *(folder for folder, _ in RIGHT.values()),
        *(() if args.record_reference else (*(f for fs in WRONG.values() for f in fs), KERMANY)),
    )
    if args.record_reference:
        record_reference(data)
        return
    rows: dict[str, Any] = {"machine": machine(), "results": []}
    lines = [
        f"# Plausibility check of segmentation bundles, {rows['machine']['date']}",
        "",
        "Findings (field of view, structure sizes or the network's entropy far from what the "
        "model saw in training and validation; "
        "`medlabel/segment/plausibility.py`) per input set. On the right images a finding is "
        "a false alarm; on the wrong ones, no finding is a miss.",
        "",
        "| model | images | n | flagged | share flagged | findings by check |",
        "|---|---|---|---|---|---|",
    ]

    def record(model: str, what: str, findings: list[list[str]]) -> None:
        flagged = sum(1 for f in findings if f)
        kinds = Counter(_kind(f) for fs in findings for f in fs)
        common = ", ".join(f"{k} {n}" for k, n in kinds.most_common())
        rows["results"].append(
            {
                "model": model,
                "images": what,
                "n": len(findings),
                "flagged": flagged,
                "findings": findings,
            }
        )
        share = flagged / max(len(findings), 1)
        lines.append(f"| {model} | {what} | {len(findings)} | {flagged} | {share:.1%} | {common} |")
        print(lines[-1], flush=True)

    for model, (folder, mapping) in RIGHT.items():
        seg = open_segmenter(model)
        ds = hold_out(open_segmentation_dataset(data / folder, mapping), 40)
        for split, what in (
            ("test", "held-out test cases (never seen)"),
            ("train", "training and validation cases"),
        ):
            findings = []
            for i in ds.indices(split):
                image, _ = ds.load(i)
                findings.append(_flag(seg, image))
            record(model, f"{folder}: {what}", findings)
        findings = []
        for rel in WRONG[model]:
            image = _grey(read_image(data / rel))
            found = _flag(seg, image)
            print(f"  {rel}: {found}", flush=True)
            findings.append(found)
        record(model, "wrong images: " + ", ".join(Path(r).name for r in WRONG[model]), findings)
    seg = open_segmenter("cxr-lungs")
    files = sorted((data / KERMANY).glob("*/*.jpeg"))
    step = max(1, len(files) // N_NEIGHBOUR)
    findings = [_flag(seg, _grey(read_image(f))) for f in files[::step][:N_NEIGHBOUR]]
    record("cxr-lungs", "Kermany paediatric chest X-rays (neighbouring domain)", findings)
    lines += ["", f"Command: `{invocation()}`."]
    save_results("plausibility", rows, lines)


if __name__ == "__main__":
    main()
