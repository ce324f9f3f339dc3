"""Shared helpers for benchmarks: timing, machine facts, result files."""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from medlabel.demo import find_shared_data

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path | None:
    """``$MEDLABEL_DATA`` when set, else ``../shared/data`` beside the repository."""
    return find_shared_data(REPO)


def timeit(func: Callable[[], Any], repeat: int = 5, warmup: int = 1) -> dict[str, float]:
    """Median and min wall time (seconds) of ``func`` over ``repeat`` runs after warm-up."""
    for _ in range(warmup):
        func()
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "runs": repeat}


def machine() -> dict[str, Any]:
    """Facts that make a timing comparable: CPU, cores, Python and library versions."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("medlabel", "numpy", "SimpleITK", "pydicom", "nibabel", "monai", "torch"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch_threads": _torch_threads(),
        "versions": versions,
    }


def threads_clause(info: dict[str, Any]) -> str:
    """``", training on N of them"`` when a run used fewer torch threads than the machine has
    cores (``info`` as from :func:`machine`), else ``""``."""
    threads = info.get("torch_threads")
    return f", training on {threads} of them" if threads and threads < info["cores"] else ""


def thread_prefix(threads: str | None) -> str:
    """``"OMP_NUM_THREADS=N "`` for a recorded command when the limit was set, else ``""``."""
    return f"OMP_NUM_THREADS={threads} " if threads else ""


def _torch_threads() -> int | None:
    """Threads torch computes with (``OMP_NUM_THREADS`` or ``set_num_threads`` lower it)."""
    try:
        import torch
    except ImportError:
        return None
    return int(torch.get_num_threads())


def save_results(stem: str, rows: dict[str, Any], lines: list[str]) -> Path:
    """Write ``results/<stem>-<date>.json`` (``rows``, dated by ``rows["machine"]``) and the
    markdown ``lines`` as ``.md``; print and return the ``.md`` path."""
    stamp = rows["machine"]["date"][:10]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}-{stamp}.json").write_text(json.dumps(rows, indent=2))
    md = RESULTS / f"{stem}-{stamp}.md"
    md.write_text("\n".join(lines) + "\n")
    print(f"results: {md}")
    return md


def write_results(name: str, rows: list[dict[str, Any]], notes: str = "") -> Path:
    """Write ``results/<name>-<date>.json`` and ``.md`` (a table with ratios); return the .md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    info = machine()
    stamp = info["date"][:10]
    (RESULTS / f"{name}-{stamp}.json").write_text(
        json.dumps({"machine": info, "results": rows}, indent=2)
    )
    lines = [
        f"# {name} benchmark, {info['date']}",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v),
        "",
        "| task | tool | median (s) | min (s) | ratio vs medlabel |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = row.get("ratio")
        lines.append(
            f"| {row['task']} | {row['tool']} | {row['median_s']:.4f} | {row['min_s']:.4f} | "
            f"{'' if ratio is None else f'{ratio:.2f}x'} |"
        )
    if notes:
        lines += ["", notes]
    md = RESULTS / f"{name}-{stamp}.md"
    md.write_text("\n".join(lines) + "\n")
    return md
