"""nnU-Net v2 itself on ``bench_hippocampus.py``'s split, on this CPU, in a fixed time budget.

The hippocampus goal (0.90 anterior / 0.89 posterior) is nnU-Net's published test Dice, from a
GPU, 1000 epochs and a five-fold ensemble. This benchmark asks what nnU-Net's own default
pipeline reaches on the same 40 held-out cases when it gets the same CPU and the same wall-clock
budget as medlabel's bundled model. Everything is nnU-Net's default (fingerprint, plan,
``3d_fullres``, augmentation, SGD with a polynomial rate, deep supervision, mirroring at
inference, the final checkpoint) except the number of epochs: after each epoch the remaining
budget decides how many epochs the run gets, and the polynomial schedule is stretched to end
there. It trains on exactly the 148 cases medlabel trains on and watches the 20 it validates on.

nnU-Net is not a medlabel dependency (it pulls in timm and torchvision). Give it its own
environment and point ``--nnunet-python`` at it::

    python3.11 -m venv /tmp/nnu && /tmp/nnu/bin/pip install nnunetv2 torch==2.13.0
    python benchmarks/bench_nnunet_hippocampus.py --nnunet-python /tmp/nnu/bin/python \\
        --budget-minutes 95 --work /tmp/nnunet-hippocampus

This script runs in medlabel's environment: it builds the split and scores the predictions with
medlabel's own metrics (on each case's original grid); nnU-Net's steps run in the other
interpreter, through this same file's ``--stage`` entry points, which import nnU-Net only.

A finished run leaves ``nnunet_run.json`` in ``--work`` with the settings it trained with
(budget, iterations per epoch, configuration, fold, split, threads); a later call with the same
``--work`` scores that run again instead of training, but only when the settings asked for are
the same: otherwise it stops and says what differs (``--retrain`` trains again, replacing it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
DATASET = "Dataset004_Hippocampus"


# --------------------------------------------------------------------------- nnU-Net side
def _stage_train(work: Path, budget_minutes: float, iterations: int | None) -> None:
    """Train nnU-Net's default 3d_fullres fold 0 within ``budget_minutes``, then predict the
    test images. Runs in the nnU-Net environment, with nnUNet_* paths set by the caller."""
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    budget_s = budget_minutes * 60
    torch.set_num_threads(os.cpu_count() or 1)

    class BudgetTrainer(nnUNetTrainer):  # type: ignore[misc]
        """nnU-Net's trainer; the epoch count follows the wall-clock budget."""

        def run_training(self) -> None:
            self.on_train_start()
            start = time.perf_counter()
            while self.current_epoch < self.num_epochs:
                self.on_epoch_start()
                self.on_train_epoch_start()
                outputs = [
                    self.train_step(next(self.dataloader_train))
                    for _ in range(self.num_iterations_per_epoch)
                ]
                self.on_train_epoch_end(outputs)
                with torch.no_grad():
                    self.on_validation_epoch_start()
                    val = [
                        self.validation_step(next(self.dataloader_val))
                        for _ in range(self.num_val_iterations_per_epoch)
                    ]
                    self.on_validation_epoch_end(val)
                self.on_epoch_end()
                done, elapsed = self.current_epoch, time.perf_counter() - start
                per_epoch = elapsed / done
                if elapsed + per_epoch > budget_s:
                    self.num_epochs = done
                else:
                    self.num_epochs = max(done + 1, int(budget_s // per_epoch))
                self.lr_scheduler.max_steps = self.num_epochs
            self.on_train_end()

    base = Path(os.environ["nnUNet_preprocessed"]) / DATASET  # noqa: SIM112 (nnU-Net's name)
    settings = _settings(
        budget_minutes,
        iterations,
        load_json(str(base / "splits_final.json"))[0],
        os.environ.get("nnUNet_n_proc_DA", str(os.cpu_count() or 1)),  # noqa: SIM112
    )
    plans = load_json(str(base / "nnUNetPlans.json"))
    plans["continue_training"] = False  # as nnUNetv2_train sets it for a fresh run
    trainer = BudgetTrainer(
        plans=plans,
        configuration="3d_fullres",
        fold=0,
        dataset_json=load_json(str(base / "dataset.json")),
        device=torch.device("cpu"),
    )
    if iterations:  # smoke tests only; the benchmark keeps nnU-Net's 250 (and 50)
        trainer.num_iterations_per_epoch = iterations
        trainer.num_val_iterations_per_epoch = max(1, iterations // 5)
    t0 = time.perf_counter()
    trainer.run_training()
    train_s = time.perf_counter() - t0

    trainer.set_deep_supervision_enabled(False)  # as nnU-Net's own final validation does
    trainer.network.eval()
    predictor = nnUNetPredictor(device=torch.device("cpu"), allow_tqdm=True)
    predictor.manual_initialization(
        trainer.network,
        trainer.plans_manager,
        trainer.configuration_manager,
        [trainer.network.state_dict()],
        trainer.dataset_json,
        "nnUNetTrainer",
        trainer.inference_allowed_mirroring_axes,
    )
    images = sorted((work / "raw" / DATASET / "imagesTs").glob("*.nii.gz"))
    (work / "predictions").mkdir(exist_ok=True)
    t0 = time.perf_counter()
    predictor.predict_from_files_sequential(
        [[str(p)] for p in images], str(work / "predictions"), save_probabilities=False
    )
    infer_s = time.perf_counter() - t0
    (work / "nnunet_run.json").write_text(
        json.dumps(
            {
                "train_seconds": train_s,
                "epochs": trainer.current_epoch,
                "iterations_per_epoch": trainer.num_iterations_per_epoch,
                "patch_size": list(trainer.configuration_manager.patch_size),
                "batch_size": trainer.configuration_manager.batch_size,
                "seconds_per_case": infer_s / max(1, len(images)),
                "nnunetv2": _version("nnunetv2"),
                "torch": torch.__version__,
                "torch_threads": torch.get_num_threads(),
                "settings": settings,
            },
            indent=2,
        )
    )


def _settings(
    budget_minutes: float, iterations: int | None, split: dict[str, list[str]], workers: str
) -> dict[str, Any]:
    """What a cached run must have trained with to be scored again: the same on both sides
    (the training stage records it; the caller compares it with what it was asked for)."""
    return {
        "budget_minutes": float(budget_minutes),
        "iterations_per_epoch": iterations,  # None: nnU-Net's own (250)
        "configuration": "3d_fullres",
        "fold": 0,
        "train": sorted(split["train"]),
        "val": sorted(split["val"]),
        "torch_threads": os.cpu_count() or 1,
        "augmentation_workers": str(workers),
    }


def _version(name: str) -> str:
    from importlib import metadata

    return metadata.version(name)


# --------------------------------------------------------------------------- medlabel side
def _prepare(work: Path) -> dict[str, list[str]]:
    """nnU-Net's raw layout for the split of ``bench_hippocampus.py`` (symbolic links)."""
    sys.path.insert(0, str(HERE.parent))
    from common import require_data
    from medlabel.segment.dataset import open_segmentation_dataset
    from seg_common import hold_out

    data = require_data("msd-hippocampus/imagesTr", "msd-hippocampus/labelsTr")
    ds = hold_out(
        open_segmentation_dataset(data / "msd-hippocampus", "1=anterior,2=posterior"), 40
    ).with_validation_split(0.12, seed=0)
    split = {s: [c.id for c in ds.cases if c.split == s] for s in ("train", "val", "test")}
    raw = work / "raw" / DATASET
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (raw / sub).mkdir(parents=True, exist_ok=True)
    for case in ds.cases:
        images, labels = (
            ("imagesTs", "labelsTs") if case.split == "test" else ("imagesTr", "labelsTr")
        )
        for link, target in (
            (raw / images / f"{case.id}_0000.nii.gz", case.image),
            (raw / labels / f"{case.id}.nii.gz", case.label),
        ):
            if not link.exists():
                link.symlink_to(Path(str(target)).resolve())
    (raw / "dataset.json").write_text(
        json.dumps(
            {
                "channel_names": {"0": "MRI"},
                "labels": {"background": 0, "Anterior": 1, "Posterior": 2},
                "numTraining": len(split["train"]) + len(split["val"]),
                "file_ending": ".nii.gz",
            },
            indent=2,
        )
    )
    return split


def _nnunet_env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        nnUNet_raw=str(work / "raw"),
        nnUNet_preprocessed=str(work / "preprocessed"),
        nnUNet_results=str(work / "results"),
    )
    env.setdefault("nnUNet_n_proc_DA", str(os.cpu_count() or 1))
    return env


def _score(work: Path, split: dict[str, list[str]]) -> dict[str, Any]:
    from medlabel.evaluate.segmentation import case_metrics, summarize_cases
    from medlabel.io import read_image

    classes = {1: "anterior", 2: "posterior"}
    cases = {}
    for cid in split["test"]:
        pred = read_image(work / "predictions" / f"{cid}.nii.gz", is_label=True)
        truth = read_image(work / "raw" / DATASET / "labelsTs" / f"{cid}.nii.gz", is_label=True)
        cases[cid] = case_metrics(pred, truth, classes)
    return {"summary": summarize_cases(cases), "n": len(cases)}


def _write(run: dict[str, Any], scored: dict[str, Any], cached: bool) -> Path:
    sys.path.insert(0, str(HERE.parent))
    from common import invocation, machine, save_results

    info = machine()
    t = scored["summary"]
    command = invocation()
    lines = [
        f"# nnU-Net v2 on the MSD hippocampus split of bench_hippocampus.py, {info['date']}",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, torch threads {run['torch_threads']}. "
        f"nnU-Net {run['nnunetv2']} (torch {run['torch']}), default 3d_fullres plan (patch "
        f"{run['patch_size']}, batch {run['batch_size']}), fold 0 = medlabel's 148 training / "
        f"20 validation cases, {run['epochs']} epoch{'' if run['epochs'] == 1 else 's'} of "
        f"{run['iterations_per_epoch']} "
        f"iterations in {run['train_seconds'] / 60:.1f} min "
        f"(budget {run['settings']['budget_minutes']:g} min, "
        "the polynomial rate schedule stretched to the epochs that fit). Final checkpoint, "
        "mirroring at inference, as nnU-Net predicts by default. Test: the same 40 held-out "
        "cases as bench_hippocampus.py, scored by medlabel's metrics on each case's grid.",
        "",
        "| class | test Dice mean [95% CI] | test Dice worst | test HD95 (mm) |",
        "|---|---|---|---|",
    ]
    for c in t:
        ci = t[c]["dice_ci"]
        lines.append(
            f"| {c} | {t[c]['dice']['mean']:.4f} [{ci[0]:.3f}, {ci[1]:.3f}] | "
            f"{t[c]['dice']['min']:.4f} | {t[c]['hd95_mm'].get('mean', float('nan')):.2f} |"
        )
    lines += [
        "",
        "nnU-Net's published figures (0.90 / 0.89) are on the MSD test set, from 1000 GPU epochs "
        "and a five-fold ensemble; the issue's goal is to match them in under 2 CPU hours.",
        "",
        f"Inference: {run['seconds_per_case'] * 1000:.0f} ms per case (nnU-Net's sequential "
        "predictor, preprocessing and export included).",
        "",
        f"Command: `{command}`"
        + (
            " (scoring the run cached in --work, trained with the same settings)."
            if cached
            else "."
        ),
    ]
    rows = {
        "machine": info,
        "nnunet": run,
        "test": t,
        "test_n": scored["n"],
        "command": command,
        "cached_run": cached,
    }
    return save_results("hippocampus-nnunet", rows, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nnunet-python", default="python", help="interpreter with nnunetv2")
    parser.add_argument("--budget-minutes", type=float, default=95.0)
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/nnunet-hippocampus"),
        help="nnU-Net's folders; a finished run there is scored again if its settings match",
    )
    parser.add_argument(
        "--retrain",
        action="store_true",
        help="train again even when --work holds a finished run (replacing it)",
    )
    parser.add_argument("--stage", choices=["train"], help=argparse.SUPPRESS)
    parser.add_argument("--iterations-per-epoch", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = args.work.resolve()
    if args.stage == "train":
        _stage_train(work, args.budget_minutes, args.iterations_per_epoch)
        return
    split = _prepare(work)
    env = _nnunet_env(work)
    nnunet_bin = Path(args.nnunet_python).parent
    if not (work / "preprocessed" / DATASET / "nnUNetPlans.json").exists():
        subprocess.run(
            [
                str(nnunet_bin / "nnUNetv2_plan_and_preprocess"),
                "-d",
                "4",
                "-c",
                "3d_fullres",
                "-np",
                str(os.cpu_count() or 1),
            ],
            env=env,
            check=True,
        )
    splits = [{"train": split["train"], "val": split["val"]}]
    (work / "preprocessed" / DATASET / "splits_final.json").write_text(json.dumps(splits))
    wanted = _settings(
        args.budget_minutes, args.iterations_per_epoch, splits[0], env["nnUNet_n_proc_DA"]
    )
    cached = _cached_run(work / "nnunet_run.json", wanted, args.retrain)
    if cached is None:
        (work / "nnunet_run.json").unlink(missing_ok=True)
        shutil.rmtree(work / "predictions", ignore_errors=True)
        subprocess.run(
            [
                args.nnunet_python,
                str(HERE),
                "--stage",
                "train",
                "--work",
                str(work),
                "--budget-minutes",
                str(args.budget_minutes),
            ]
            + (
                ["--iterations-per-epoch", str(args.iterations_per_epoch)]
                if args.iterations_per_epoch
                else []
            ),
            env=env,
            check=True,
        )
    run = cached or json.loads((work / "nnunet_run.json").read_text())
    print(_write(run, _score(work, split), cached is not None))


def _cached_run(path: Path, wanted: dict[str, Any], retrain: bool) -> dict[str, Any] | None:
    """The finished run at ``path`` when it trained with the ``wanted`` settings (it is then
    scored again, not retrained); ``None`` when there is none or ``retrain`` asks for a new one.

    Raises:
        SystemExit: a finished run with other settings (or, from before they were recorded,
            unknown ones) is there and ``retrain`` is not set.
    """
    if not path.exists():
        return None
    if retrain:
        print(f"--retrain: replacing the finished run in {path.parent}", flush=True)
        return None
    run: dict[str, Any] = json.loads(path.read_text())
    had = run.get("settings")
    if had is None:
        raise SystemExit(
            f"{path} records no training settings (a run from before they were recorded), so "
            "it may not match this call's; pass --retrain to train again, or another --work"
        )
    differ = sorted(k for k in wanted.keys() | had.keys() if wanted.get(k) != had.get(k))
    if differ:
        shown = ", ".join(
            f"{k} {had.get(k)!r} (asked: {wanted.get(k)!r})"
            if k not in ("train", "val")
            else f"{k} cases differ"
            for k in differ
        )
        raise SystemExit(
            f"{path} holds a run trained with other settings: {shown}. Refusing to score it "
            "as this call's; pass --retrain to train again, or another --work"
        )
    print(f"scoring the finished run in {path.parent} (same settings; --retrain to train again)")
    return run


if __name__ == "__main__":
    main()
