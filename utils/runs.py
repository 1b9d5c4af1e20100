"""Where a run's files go, and the files a finished run leaves: samples, the best checkpoint, shipped generators.

runs/<name>/ holds one notebook's run on this machine (the Logger's scalars, grids and TensorBoard files,
checkpoint.pt, best.pt, samples.pt, info.json); data/pretrained/<name>/ holds what the course ships from
its own cpu-profile run (generator.pt, samples.pt, info.json).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from .data import DATA_DIR, check_name
from .metrics import check_samples
from .runtime import ROOT, CourseError, atomic_write, load_checkpoint, save_checkpoint

RUNS_DIR = ROOT / "runs"
PRETRAINED_DIR = DATA_DIR / "pretrained"
EVAL_SEED = 1234   # the noise every GAN notebook measures its final samples on
N_SAMPLES = 1000   # how many: the course metrics are reported on 1,000 samples


def run_dir(name: str, root: str | os.PathLike | None = None) -> Path:
    """The folder of run `name` (a notebook's stem, or stem/part for a notebook with several runs)."""
    return Path(root or RUNS_DIR) / name


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def eval_noise(*shape: int, device=None, uniform: bool = False) -> torch.Tensor:
    """The fixed evaluation noise: N_SAMPLES x shape drawn from EVAL_SEED, standard normal (or uniform in [-1, 1])."""
    g = torch.Generator().manual_seed(EVAL_SEED)
    z = torch.rand(N_SAMPLES, *shape, generator=g) * 2 - 1 if uniform else torch.randn(N_SAMPLES, *shape, generator=g)
    return z.to(device) if device is not None else z


class BestKeeper:
    """Keep the best checkpoint by a metric (lower is better), not only the last.

    keeper = BestKeeper(run_dir("04_vanilla_gan") / "best.pt"); keeper.update(fd, step, G=G) saves when fd improves.
    """

    def __init__(self, path, lower_is_better: bool = True):
        self.path, self.sign = Path(path), 1 if lower_is_better else -1
        self.best, self.best_step = math.inf, None

    def update(self, score: float, step: int, **models) -> bool:
        if not math.isfinite(score) or self.sign * score >= self.sign * self.best and self.best_step is not None:
            return False
        self.best, self.best_step = score, step
        save_checkpoint(self.path, step=step, models=models, score=score)
        return True

    def restore(self, **models) -> dict:
        return load_checkpoint(self.path, models=models)


def save_samples(samples, name: str, root=None, labels=None, info: dict | None = None) -> Path:
    """Save samples (N x C x H x W floats in [-1, 1]) to runs/<name>/samples.pt atomically.

    With `labels` (conditional models) the file holds {'samples': ..., 'labels': ...}. `info` (for example
    {'dataset': ..., 'train_seconds': ..., 'steps': ..., 'profile': ...}) goes beside it as info.json.
    """
    samples = check_samples(samples)
    if samples.min() < -1.0001 or samples.max() > 1.0001:
        raise CourseError(f"Samples must lie in [-1, 1] (got [{samples.min():.3f}, {samples.max():.3f}]); end G with Tanh.")
    folder = run_dir(name, root)
    obj = samples if labels is None else {"samples": samples, "labels": torch.as_tensor(labels).long().cpu()}
    path = atomic_write(folder / "samples.pt", lambda tmp: torch.save(obj, tmp))
    if info is not None:
        atomic_write(folder / "info.json", lambda tmp: Path(tmp).write_text(json.dumps(info, indent=2) + "\n"))
    return path


def load_samples(name: str, root=None) -> tuple[object, dict, str]:
    """(samples, info, source) saved by save_samples for notebook `name`.

    Looks in runs/<name>/ first, then falls back to what the course ships in data/pretrained/
    (the samples of the shipped generator, made by that notebook's cpu-profile run).
    """
    for folder, source in ((run_dir(name, root), "this machine's run"),
                           (PRETRAINED_DIR / name, "the shipped cpu-profile run")):
        path = folder / "samples.pt"
        if path.is_file():
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise CourseError(f"{_shown(path)} is corrupt ({type(exc).__name__}); run notebooks/{name}.ipynb again.") from None
            info_path = folder / "info.json"
            info = json.loads(info_path.read_text()) if info_path.is_file() else {}
            obj = {k: v.float() if v.is_floating_point() else v for k, v in obj.items()} if isinstance(obj, dict) else obj.float()
            return obj, info, source
    raise CourseError(f"No samples for {name}: run notebooks/{name}.ipynb first (it saves runs/{name}/samples.pt).")


def ship_run(name: str, root=None) -> Path:
    """Copy a finished run's best generator, samples (as float16) and info into data/pretrained/<name>/.

    Maintainers call this after the cpu-profile run whose outputs are committed.
    """
    src, dst = run_dir(name, root), PRETRAINED_DIR / name
    for needed in ("best.pt", "samples.pt"):
        if not (src / needed).is_file():
            raise CourseError(f"runs/{name}/{needed} is missing: run notebooks/{name}.ipynb in the cpu profile first.")
    data = (src / "best.pt").read_bytes()
    atomic_write(dst / "generator.pt", lambda tmp: Path(tmp).write_bytes(data))
    obj = torch.load(src / "samples.pt", map_location="cpu", weights_only=True)
    obj = {k: v.half() if v.is_floating_point() else v for k, v in obj.items()} if isinstance(obj, dict) else obj.half()
    atomic_write(dst / "samples.pt", lambda tmp: torch.save(obj, tmp))
    if (src / "info.json").is_file():
        text = (src / "info.json").read_text()
        atomic_write(dst / "info.json", lambda tmp: Path(tmp).write_text(text))
    return dst


def pretrained_path(name: str) -> Path:
    """Where the generator shipped for notebook `name` lies (data/pretrained/<name>/generator.pt)."""
    return PRETRAINED_DIR / name / "generator.pt"


def load_pretrained(name: str, dataset: str, device=None, **models) -> dict:
    """Load the generator (and any other models) shipped for notebook `name` into `models`; return its info.

    The one dataset check of the course: a generator trained on another dataset than the notebook's
    DATASET is refused with a CourseError that says what to do, never loaded silently.
    The info holds the run's info.json (profile, steps, train_seconds, metrics) and the checkpoint's step and score.
    """
    check_name(dataset)
    path = pretrained_path(name)
    info_path = path.parent / "info.json"
    if not path.is_file():
        raise CourseError(f"No shipped generator for {name} ({_shown(path)} is missing). Set PRETRAINED = False to "
                          f"train, or restore it with `git checkout -- {_shown(path.parent)}`.")
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    trained_on = info.get("dataset", "mnist")
    if trained_on != dataset:
        raise CourseError(f"The shipped generator of {name} was trained on {trained_on}, not {dataset}. "
                          f"Set PRETRAINED = False to train on {dataset}, or set DATASET = '{trained_on}'.")
    loaded = load_checkpoint(path, models=models, map_location=device)
    info.update(step=loaded["step"], score=loaded.get("score"))
    return info


__all__ = ["BestKeeper", "EVAL_SEED", "N_SAMPLES", "PRETRAINED_DIR", "RUNS_DIR", "eval_noise", "load_pretrained",
           "load_samples", "pretrained_path", "run_dir", "save_samples", "ship_run"]
