"""The annotation job on Ray Data: the same work, spread over actors on one machine or a cluster.

The driver discovers the items and owns the journal, exactly as the local engine does. The
items become a Ray dataset; ``map_batches`` sends batches to ``workers`` actors, each of
which loads the models once and runs the same code as the local engine
(:class:`medlabel.annotate.runner.Runner`): read, check the journal for work already done,
infer, write the mask files. The rows stream back to the driver, which journals them as
they arrive, so resuming, the manifest and the report are identical to a local run.

On a cluster the input and the output folder must be on storage every node sees at the same
path (NFS, a mounted bucket), and bundles given by path must be there too (bundled models
and recipes ship with medlabel on every node). Start the job on the head node with
``--engine ray --ray-address auto``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from medlabel.annotate.items import Item
from medlabel.annotate.manifest import Journal
from medlabel.errors import MedlabelError

__all__ = ["run_ray"]


class _Worker:
    """A Ray actor: holds the models and processes batches of items."""

    def __init__(
        self,
        out: str,
        specs: list[tuple[str, bool]],
        formats: tuple[str, ...],
        tta: bool,
        precision: str = "auto",
    ) -> None:
        from medlabel.annotate.models import open_model
        from medlabel.annotate.runner import Runner

        models = [
            open_model(name, explicit=explicit, precision=precision) for name, explicit in specs
        ]
        self.runner = Runner(Path(out), models, formats, tta)
        self.journal = Journal(out)  # a snapshot: what earlier runs finished

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        from medlabel.annotate.runner import is_2d, load_item

        runner = self.runner
        runner.timing = {}
        items = [Item.from_dict(json.loads(s)) for s in batch["item"]]
        loaded = [load_item(i, self.journal, runner.models, runner.formats) for i in items]
        out: list[str] = []
        fresh = [x for x in loaded if not x.resumed]
        flat = [x for x in fresh if is_2d(x.image)]
        rows = runner.process(flat) if flat else []
        for x in fresh:
            if not is_2d(x.image):
                rows += runner.process([x])
        out += [json.dumps({"row": r}, default=str) for r in rows]
        out += [
            json.dumps(
                {
                    "resumed": x.item.id,
                    "files": x.item.files,
                    "hash": x.hash,
                    "models": [m.id for m in runner.models],
                }
            )
            for x in loaded
            if x.resumed
        ]
        timing = {"read": sum(x.seconds for x in loaded), **runner.timing}
        out.append(json.dumps({"timing": timing, "items": len(loaded)}))
        return {"record": out}


def run_ray(
    items: list[Item],
    journal: Journal,
    specs: list[tuple[str, bool]],
    formats: tuple[str, ...],
    tta: bool,
    batch_size: int,
    workers: int,
    address: str | None,
    bar: Any,
    summary: Any,
    precision: str = "auto",
) -> dict[str, float]:
    """Process ``items`` on Ray; journal rows as they arrive; return the summed timings.

    ``precision`` is that of segmentation bundles (``auto`` is decided on each worker's CPU).

    Raises:
        MedlabelError: Ray is not installed.
    """
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - ray is a declared dependency
        raise MedlabelError(None, "the Ray engine needs ray: pip install 'ray[data]'") from exc
    started = not ray.is_initialized()
    if started:
        if address is None:
            # Ray runs workers at nice 15 by default, which starves them beside any other busy
            # process; in a local Ray started for this job the workers are the job.
            os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(
            address=address,
            num_cpus=None if address else max(1, workers),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    timing: dict[str, float] = {}
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.verbose_progress = False
        records = [{"item": json.dumps(i.to_dict())} for i in items]
        if not records:
            return timing
        # at least one block per worker, so a small archive keeps every actor busy; a
        # finished block's rows reach the journal at once, so smaller blocks resume sooner
        blocks = min(len(records), max(workers, -(-len(records) // batch_size)))
        source = ray.data.from_items(records, override_num_blocks=blocks)
        ds = source.map_batches(
            _Worker,
            fn_constructor_args=(str(journal.out), specs, formats, tta, precision),
            batch_size=-(-len(records) // blocks),  # one batch per block: never merged
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=max(1, workers)),
            num_cpus=1,
        )
        for record in ds.iter_rows():
            data = json.loads(record["record"])
            if "row" in data:
                journal.append(data["row"])
            elif "resumed" in data:
                summary.resumed += 1
                journal.relocate(data["resumed"], data["files"], data["hash"], data["models"])
            else:
                for key, value in data["timing"].items():
                    timing[key] = timing.get(key, 0.0) + float(value)
                bar.update(int(data["items"]))
    finally:
        if started:
            ray.shutdown()
    return timing
