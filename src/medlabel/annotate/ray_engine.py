"""The annotation job on Ray Data: the same work, spread over actors on one machine or a cluster.

The driver discovers the items and owns the journal, exactly as the local engine does. The
items become a Ray dataset of small blocks (at most :data:`BLOCK_ITEMS` items, and at least one
block per worker); ``map_batches`` sends each block to one of ``workers`` actors, each of which
loads the models once and runs the same code as the local engine
(:class:`medlabel.annotate.runner.Runner`): read, check the journal for work already done,
infer, write the mask files. A finished block's rows stream back to the driver, which
journals them as they arrive, so resuming, the manifest and the report are identical to a
local run, and an interrupted run loses at most the blocks in progress.

A local Ray (no address) listens on 127.0.0.1 only: its node address is the loopback one, so
the GCS, the raylet, the workers, the driver and the runtime-env agent bind to it (Ray's own
default on macOS and Windows, set by ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``); a local Ray
that would listen elsewhere is refused.

On a cluster the input and the output folder must be on storage every node sees at the same
path (NFS, a mounted bucket), and bundles given by path must be there too (bundled models
and recipes ship with medlabel on every node). Start the job on the head node with
``--engine ray --ray-address auto``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from medlabel.annotate.items import Item
from medlabel.annotate.manifest import Journal
from medlabel.errors import MedlabelError

__all__ = ["BLOCK_ITEMS", "block_items", "check_address", "run_ray"]


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


BLOCK_ITEMS = 4
"""Most items in one Ray block: a finished block's rows reach the journal and the progress bar
at once, so an interrupted run loses at most this many items per worker. Models are loaded
once per actor, not per block, so small blocks cost little (see the README's measurement)."""

CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a TCP connection to ``--ray-address`` before giving up on it."""

# The node address of a local Ray is the loopback one when Ray thinks it runs on macOS or
# Windows; every Ray server binds to the node address, so then to 127.0.0.1 only.
_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"

# Ray's lines that tell a medlabel user nothing: the banner "Token authentication is enabled"
# (it stays enabled; a connection never warns of it being disabled), "Progress bars disabled"
# (medlabel draws its own) and the dataset's start and finish lines (warnings and errors of
# the executor still show).
_QUIET_LOGGERS = {
    "ray._private.authentication.authentication_token_setup": logging.ERROR,
    "ray.data._internal.progress": logging.ERROR,
    "ray.data._internal.execution.streaming_executor": logging.WARNING,
}


def block_items(items: int, batch_size: int, workers: int) -> int:
    """Items per Ray block: at most ``batch_size`` and :data:`BLOCK_ITEMS`, and small enough
    that every worker gets a block.

    Example:
        >>> block_items(25, 16, 2), block_items(3, 16, 2), block_items(100, 2, 8)
        (4, 2, 2)
    """
    return max(1, min(batch_size, BLOCK_ITEMS, -(-items // max(1, workers))))


def _is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine's loopback interface."""
    if host.lower() == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool(ip.is_loopback or (mapped is not None and mapped.is_loopback))


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``host:port``, ``[v6]:port`` or ``ray://host:port``; else ``None``."""
    rest = address.strip().removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


def check_address(address: str) -> None:
    """Refuse a Ray address that is malformed or where nothing accepts a connection, at once.

    Ray itself retries such an address for minutes. ``auto`` is left to Ray (it finds the
    cluster started on this machine). A loopback host is also tried at this machine's own
    address, which Ray puts in its place.

    Raises:
        MedlabelError: ``address`` is not ``host:port``, ``ray://host:port`` or ``auto``, or
            no connection to it opens within :data:`CONNECT_TIMEOUT` seconds.
    """
    if address.strip() == "auto":
        return
    parsed = _host_port(address)
    if parsed is None:
        raise MedlabelError(
            None,
            f"the Ray address {address!r} is not host:port, ray://host:port or auto "
            "(the head node's address, such as 10.0.0.5:6379)",
        )
    host, port = parsed
    hosts = [host]
    if _is_loopback(host):
        import ray

        hosts.append(ray.util.get_node_ip_address())
    why = ""
    for h in hosts:
        try:
            with socket.create_connection((h, port), timeout=CONNECT_TIMEOUT):
                return
        except OSError as err:
            why = err.strerror or str(err) or type(err).__name__
    raise MedlabelError(
        None, f"cannot reach a Ray cluster at {address}: {why}; is its head node running?"
    )


@contextlib.contextmanager
def _settings(env: dict[str, str], loggers: dict[str, int]) -> Iterator[None]:
    """Set environment variables and logger levels for the duration; then restore them."""
    saved_env = {k: os.environ.get(k) for k in env}
    saved_levels = {name: logging.getLogger(name).level for name in loggers}
    os.environ.update(env)
    for name, level in loggers.items():
        logging.getLogger(name).setLevel(level)
    try:
        yield
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def _loopback_node() -> Iterator[None]:
    """A local Ray started inside takes 127.0.0.1 as its node address.

    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` does it in a process that imports Ray afterwards
    (and in Ray's own processes); where Ray is already imported, the constant it was read
    into is set too, for the duration.
    """
    from ray._private import ray_constants

    saved = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    with _settings({_LOOPBACK_ENV: "0"}, {}):
        if saved is not None:
            ray_constants.ENABLE_RAY_CLUSTER = False
        try:
            yield
        finally:
            if saved is not None:
                ray_constants.ENABLE_RAY_CLUSTER = saved


def _init(ray: Any, address: str | None, workers: int) -> None:
    """Start a local Ray on 127.0.0.1 (``address`` ``None``) or connect to ``address``.

    Raises:
        MedlabelError: the cluster cannot be reached, Ray does not start, or a local Ray
            would listen on an address other than the loopback one.
    """
    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": False,
    }
    if address is not None:
        check_address(address)
        # Ray retries an address that accepts connections but answers nothing for minutes
        # (20 tries); one try is enough for a running cluster
        env = {"RAY_gcs_server_port_wait_time_s": "1"}
        env = {k: v for k, v in env.items() if k not in os.environ}
        try:
            with _settings(env, {}):
                ray.init(address=address, **options)
        except Exception as exc:
            ray.shutdown()  # whatever the failed start left
            raise MedlabelError(
                None, f"cannot connect to the Ray cluster at {address}: {exc}"
            ) from exc
        return
    # Ray runs workers at nice 15 by default, which starves them beside any other busy
    # process; in a local Ray started for this job the workers are the job.
    niceness = "RAY_worker_niceness"
    env = {niceness: os.environ.get(niceness, "0")}
    try:
        with _loopback_node(), _settings(env, {}):
            # "local": a new Ray on this machine, even where RAY_ADDRESS names a cluster
            ray.init(address="local", num_cpus=workers, **options)
    except Exception as exc:
        ray.shutdown()
        raise MedlabelError(None, f"cannot start a local Ray: {exc}") from exc
    node = ray.util.get_node_ip_address()
    if not _is_loopback(node):
        ray.shutdown()
        raise MedlabelError(
            None,
            f"the local Ray would listen on {node}, not only on 127.0.0.1; use --engine "
            "local, or start Ray yourself and give its address (--ray-address)",
        )


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

    Items go to the actors in blocks of :func:`block_items`; each finished block's rows are
    journaled (and counted on ``bar``) at once. ``precision`` is that of segmentation bundles
    (``auto`` is decided on each worker's CPU).

    Raises:
        MedlabelError: Ray is not installed, ``batch_size`` or ``workers`` is below 1, the
            cluster at ``address`` cannot be reached, or a local Ray cannot be confined to
            127.0.0.1.
    """
    for name, value in (("batch size", batch_size), ("workers", workers)):
        if value < 1:
            raise MedlabelError(None, f"the {name} must be at least 1, not {value}")
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - ray is a declared dependency
        raise MedlabelError(None, "the Ray engine needs ray: pip install 'ray[data]'") from exc
    started = not ray.is_initialized()
    timing: dict[str, float] = {}
    with _settings({}, _QUIET_LOGGERS):
        if started:
            _init(ray, address, workers)
        try:
            ctx = ray.data.DataContext.get_current()
            ctx.enable_progress_bars = False
            ctx.verbose_progress = False
            records = [{"item": json.dumps(i.to_dict())} for i in items]
            if not records:
                return timing
            size = block_items(len(records), batch_size, workers)
            source = ray.data.from_items(records, override_num_blocks=-(-len(records) // size))
            ds = source.map_batches(
                _Worker,
                fn_constructor_args=(str(journal.out), specs, formats, tta, precision),
                batch_size=None,  # a block is one batch: blocks are never merged
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=workers),
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
