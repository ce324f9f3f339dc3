"""JSRT lungs and heart: the self-configuring 2D U-Net on cases it never saw.

The 198 JSRT cases in ``../shared/data/jsrt-lungs-224`` are split once (seed 0): 40 cases are
held out as a test set that neither training nor model selection touches; of the other 158,
20 % are the validation cases that pick the best weights and the post-processing. The test
figures are computed on each case's original grid through the bundle's own inference path
(ONNX Runtime), exactly what ``medlabel segment`` does.

Reference points (from the issue): a plain tutorial-style MONAI UNet (15 min of CPU) reached
lungs 0.979 / heart 0.946 on kept-back cases, worst heart 0.90; published U-Nets reach lung
Dice 0.97-0.98 and heart 0.93-0.95.

Run: ``python benchmarks/bench_jsrt.py [--budget-minutes 30] [--folds N] [--save BUNDLE]``. The
bundled ``cxr-lungs`` came from ``--budget-minutes 10 --folds 5`` (``make bench-segment``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import description, require_data
from medlabel.segment.dataset import open_segmentation_dataset
from seg_common import (
    add_training_args,
    command_line,
    hold_out,
    results_stem,
    train_and_test,
    training_config,
    write_table,
)

LABELS = "150=lung_right,200=lung_left,250=heart"
LICENCE = (
    "JSRT database and SCR masks (van Ginneken et al., Medical Image Analysis 2006): free for "
    "non-commercial research use only. This model inherits that restriction."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    add_training_args(parser, budget=30.0)
    args = parser.parse_args()
    data = require_data("jsrt-lungs-224/images", "jsrt-lungs-224/masks")
    ds = hold_out(
        open_segmentation_dataset(data / "jsrt-lungs-224", LABELS),
        40,
        train_fraction=args.train_fraction,
    )
    cfg = training_config(args)
    command = command_line("bench_jsrt.py", args)
    rows = train_and_test(
        ds,
        cfg,
        name="cxr-lungs",
        licence=LICENCE,
        command=command,
        save=args.save,
        folds=args.folds,
        modalities=("CR", "DX"),
        intended_use="Research use: lung fields and heart on frontal (PA) chest radiographs, as "
        "pre-annotation to be reviewed by a person. Not a medical device. Trained on JSRT "
        "(Japanese adults, digitised film); other populations, AP views and devices are untested.",
    )
    t = rows["test"]
    lungs = np.mean([t["lung_right"]["dice"]["mean"], t["lung_left"]["dice"]["mean"]])
    write_table(
        rows,
        results_stem("jsrt", args),
        "JSRT lungs and heart (2D)",
        [
            f"Lungs (mean of both sides): {lungs:.4f}. Goal: lungs >= 0.982, heart >= 0.955. "
            "Plain MONAI UNet, 15 min CPU (from the issue): lungs 0.979, heart 0.946, worst heart "
            "0.90. Published U-Nets: lungs 0.97-0.98, heart 0.93-0.95.",
        ],
    )


if __name__ == "__main__":
    main()
