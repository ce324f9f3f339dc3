"""Run the quick benchmarks (I/O, classical recipes, training step); each writes its results
(with machine, date and command) to benchmarks/results/.

Run: ``make bench`` (or ``python benchmarks/run.py [--quick]``; ``--quick`` runs each with its
smallest options, a check that they work rather than figures to keep, and still writes the
day's results files).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_io
import bench_recipes
import bench_training_step
from common import description

#: the smallest options of each benchmark, for ``--quick``
QUICK = {
    "io": ["--repeat", "1"],
    "recipes": ["--repeat", "1", "--cxr-cases", "10"],
    "training_step": ["--steps", "1", "--warmup", "1", "--limit", "2"],
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument(
        "--quick",
        action="store_true",
        help="each benchmark with its smallest options: "
        + "; ".join(f"{k} {' '.join(v)}" for k, v in QUICK.items()),
    )
    args = parser.parse_args(argv)
    quick = QUICK if args.quick else {k: [] for k in QUICK}
    bench_io.main(quick["io"])
    bench_recipes.main(quick["recipes"])
    bench_training_step.main(quick["training_step"])


if __name__ == "__main__":
    main()
