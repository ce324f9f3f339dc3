"""Write the file digests of the bundled models' training images into their ``bundle.json``.

Bundles record the ids of the samples they trained on, so that fine-tuning never validates
on them and evaluation notices them; since 2026-12-08 training also records each training
file's digest (``data["train_digests"]``, :func:`medlabel.models.files.file_digest`), so a
copy under another name or folder (a review export, a re-organised archive) is recognised
too. This script adds the digests to the three bundled models, which were trained before:
it opens each model's training data in ``../shared/data`` as training did, finds the file
of every recorded training id, and refuses to write unless every one is found.

Run: ``python benchmarks/record_train_digests.py [--check]`` (``--check`` only compares).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import require_data
from medlabel.data.sources import open_dataset
from medlabel.models.files import file_digest, trained_ids
from medlabel.segment.dataset import open_segmentation_dataset

COMMAND = "python benchmarks/record_train_digests.py"
MODELS = Path(__file__).resolve().parents[1] / "src" / "medlabel" / "models"

DATA = {  # model -> (data folder, value=class mapping for segmentation, None for classifiers)
    "cxr-pneumonia": ("cxr-pneumonia-224/train", None),
    "cxr-lungs": ("jsrt-lungs-224", "150=lung_right,200=lung_left,250=heart"),
    "mri-hippocampus": ("msd-hippocampus", "1=anterior,2=posterior"),
}


def training_files(model: str, meta: dict[str, Any], data: Path) -> list[Path]:
    """The file of each sample ``meta`` records as trained on.

    Raises:
        SystemExit: a recorded sample has no file in ``data``.
    """
    folder, mapping = DATA[model]
    wanted = trained_ids(meta)
    if mapping is None:
        ds = open_dataset(data / folder)
        assert ds.files is not None
        found = {sample: ds.files[i] for i, sample in enumerate(ds.ids) if sample in wanted}
    else:
        cases = open_segmentation_dataset(data / folder, mapping).cases
        found = {c.id: c.image for c in cases if c.id in wanted}
    missing = sorted(set(wanted) - set(found))
    if missing or len(found) != len(wanted):
        raise SystemExit(f"{model}: {len(missing)} training samples not found, e.g. {missing[:3]}")
    return [found[sample] for sample in sorted(found)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args()
    data = require_data(*(folder for folder, _ in DATA.values()))
    for model in DATA:
        path = MODELS / model / "bundle.json"
        meta = json.loads(path.read_text())
        digests = [file_digest(f) for f in training_files(model, meta, data)]
        assert all(digests), f"{model}: a training file could not be read"
        known = meta["data"].get("train_digests")
        if args.check:
            same = set(known or []) == {d for d in digests if d}
            print(f"{model}: {len(digests)} training files; recorded digests match: {same}")
            continue
        meta["data"]["train_digests"] = sorted({d for d in digests if d})
        meta["data"]["train_digests_command"] = COMMAND
        path.write_text(json.dumps(meta, indent=2) + "\n")
        print(f"{model}: recorded {len(meta['data']['train_digests'])} training file digests")


if __name__ == "__main__":
    main()
