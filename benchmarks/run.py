"""Run every benchmark; each writes its results (with machine and date) to benchmarks/results/."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_io
import bench_recipes
import bench_training_step

if __name__ == "__main__":
    bench_io.main()
    bench_recipes.main()
    bench_training_step.main()
