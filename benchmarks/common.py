"""Shared helpers for benchmarks: timing, machine facts, result files."""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from medlabel.demo import find_shared_data, shared_data_location

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path | None:
    """``$MEDLABEL_DATA`` when set, else ``../shared/data`` beside the repository."""
    return find_shared_data(REPO)


def require_data(*parts: str) -> Path:
    """The shared data folder, once it and each of ``parts`` (paths inside it: folders, which
    must not be empty, or files) exist.

    Raises:
        SystemExit: with a non-zero status and a message naming the folder looked in (and
            whether ``$MEDLABEL_DATA`` chose it) and what is missing, so that a benchmark run
            without its data fails instead of passing having run nothing.
    """
    root, origin = shared_data_location(REPO)
    hint = "set MEDLABEL_DATA or place the shared data at ../shared/data beside the repository"
    if not root.is_dir():
        raise SystemExit(f"benchmark data not found: {root} ({origin}) is not a folder; {hint}")
    missing = [
        f"{part} (absent)" if not path.exists() else f"{part} (an empty folder)"
        for part, path in ((part, root / part) for part in parts)
        if not path.exists() or (path.is_dir() and not any(path.iterdir()))
    ]
    if missing:
        raise SystemExit(f"benchmark data missing in {root} ({origin}): " + ", ".join(missing))
    return root


def invocation() -> str:
    """The command this process was started with, as ``python benchmarks/<script> <args>``
    (``OMP_NUM_THREADS=N`` in front when that limit is set: budgeted runs depend on it), for
    the results files."""
    script = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "?"
    return (
        thread_prefix(os.environ.get("OMP_NUM_THREADS"))
        + f"python benchmarks/{script}"
        + "".join(f" {shlex.quote(a)}" for a in sys.argv[1:])
    )


def description(doc: str | None) -> str:
    """The first paragraph of a script's docstring on one line, for its ``--help``."""
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def plural(n: int, noun: str) -> str:
    """``"1 epoch"``, ``"3 epochs"``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


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


def _replacing(*paths: Path) -> None:
    """Say so when results files of the same name (an earlier run the same day) are replaced."""
    there = [str(path) for path in paths if path.exists()]
    if there:
        print(f"note: replacing {' and '.join(there)} (an earlier run the same day)", flush=True)


def save_results(stem: str, rows: dict[str, Any], lines: list[str]) -> Path:
    """Write ``results/<stem>-<date>.json`` (``rows``, dated by ``rows["machine"]``) and the
    markdown ``lines`` as ``.md``; print and return the ``.md`` path.

    ``rows`` gets the command that was run (:func:`invocation`) under ``command`` unless the
    caller gave one; a note is printed when an earlier file of the same name is replaced.
    """
    stamp = rows["machine"]["date"][:10]
    rows.setdefault("command", invocation())
    RESULTS.mkdir(parents=True, exist_ok=True)
    js, md = RESULTS / f"{stem}-{stamp}.json", RESULTS / f"{stem}-{stamp}.md"
    _replacing(js, md)
    js.write_text(json.dumps(rows, indent=2, default=str))
    md.write_text("\n".join(lines) + "\n")
    print(f"results: {md}")
    return md


def write_results(
    name: str, rows: list[dict[str, Any]], notes: str = "", command: str | None = None
) -> Path:
    """Write ``results/<name>-<date>.json`` and ``.md`` (a table with ratios, and the command
    that was run: ``command``, else :func:`invocation`); return the .md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    info = machine()
    stamp = info["date"][:10]
    command = command or invocation()
    js, md = RESULTS / f"{name}-{stamp}.json", RESULTS / f"{name}-{stamp}.md"
    _replacing(js, md)
    js.write_text(json.dumps({"machine": info, "results": rows, "command": command}, indent=2))
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
    lines += ["", f"Command: `{command}`."]
    md.write_text("\n".join(lines) + "\n")
    return md
