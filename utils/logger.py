"""The training Logger: console status, TensorBoard event files, PNG grids, a CSV of scalars.

It grew from the one the "GANs from scratch" tutorial introduced (kept as `tutorial_log`), counted in
training steps rather than epochs and batches, with what that version got wrong fixed: channels-last images
are moved with a permute (not a transpose that swaps height and width), tensors on any device are accepted,
and the scalar table is written atomically whenever its columns change.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms import functional as TF

from . import images as _images
from .runs import run_dir
from .runtime import CourseError, atomic_write


def _png_step(path: Path) -> int | None:
    """The step in a grid's file name images/step_SSSSSSS.png (None for any other name)."""
    stem = path.stem
    return int(stem[5:]) if stem.startswith("step_") and stem[5:].isdigit() else None


def _to_float(value) -> float:
    if torch.is_tensor(value):
        if value.numel() != 1:
            value = value.detach().float().mean()
        return float(value.detach().cpu())
    return float(value)


class Logger:
    """Logger(name) writes a training run's record under runs/<name>/ (run_dir; or `root`):

    - scalars.csv and TensorBoard event files: one row per log(step, d_loss=..., g_loss=..., ...);
    - images/step_SSSSSSS.png: the grids given to log_images(images, step), also kept for save_gif()
      and utils.animate (`grids`, with their steps in `grid_steps`).
    Steps are counted as steps done (1 after the first update). `resume_step`, the steps done when the
    checkpoint was written (what TrainingRun.start() returns), drops rows and grids logged after it, so a
    resumed run does not repeat steps; TensorBoard is told the same with purge_step. Without it, a run starts afresh.
    """

    def __init__(self, name: str, root: str | os.PathLike | None = None, resume_step: int | None = None,
                 tensorboard: bool = True):
        self.name = name
        self.dir = Path(root) if root else run_dir(name)
        try:
            (self.dir / "images").mkdir(parents=True, exist_ok=True)
            probe = self.dir / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise CourseError(
                f"Cannot write the run folder {self.dir} ({exc.strerror}). Pass Logger(..., root=...) "
                "a folder you can write to."
            ) from None
        self.csv_path = self.dir / "scalars.csv"
        self.history: list[dict] = []
        self._csv_fields: list[str] = []
        keep = resume_step if resume_step else -1  # None or 0 steps done: a fresh run keeps nothing of an old one
        if self.csv_path.exists():
            with open(self.csv_path, newline="") as fh:
                # a cell is empty where a scalar was not logged at that step (a column that began later)
                rows = [{k: int(float(v)) if k == "step" else float(v) for k, v in r.items() if v not in ("", None)}
                        for r in csv.DictReader(fh)]
            self.history = [r for r in rows if r.get("step", math.inf) <= keep]
            self._rewrite_csv()
        # the grids of this run for the animation: a resumed run takes back those it saved before the kernel died
        self.grids: list[torch.Tensor] = []
        self.grid_steps: list[int] = []
        for png in sorted((self.dir / "images").glob("*.png")):
            step = _png_step(png)
            if step is None or step > keep:
                png.unlink()  # a fresh run (or steps after the resume point): not part of this run's animation
            else:
                with Image.open(png) as im:
                    self.grids.append(TF.to_tensor(im.convert("RGB")))
                self.grid_steps.append(step)
        if not resume_step:  # a fresh run: the old run's event files must not mix with its curves in TensorBoard
            for old in (self.dir / "tensorboard").glob("events.out.tfevents.*"):
                old.unlink()
        self.writer = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self.writer = SummaryWriter(logdir=str(self.dir / "tensorboard"),
                                        purge_step=resume_step + 1 if resume_step else None)

    # ------------------------------------------------------------------ scalars

    def log(self, step: int, **scalars) -> dict:
        """Record named scalars (d_loss=..., g_loss=..., any others) at training step `step`."""
        if not scalars:
            raise CourseError("Logger.log(step, **scalars) needs at least one named scalar, e.g. log(step, d_loss=d_loss).")
        row = {"step": int(step), **{k: _to_float(v) for k, v in scalars.items()}}
        self.history.append(row)
        if self.writer is not None:
            for key in scalars:
                self.writer.add_scalar(key, row[key], row["step"])
        if set(row) <= set(self._csv_fields):  # columns already in the table: append (a scalar not logged now stays empty)
            with open(self.csv_path, "a", newline="") as fh:
                csv.DictWriter(fh, fieldnames=self._csv_fields, restval="").writerow(row)
        else:  # a new file, or new columns: write the whole table again
            self._rewrite_csv()
        return row

    def tutorial_log(self, d_error, g_error, epoch: int, n_batch: int, num_batches: int) -> dict:
        """The "GANs from scratch" tutorial's call, kept for readers of it: log(step, d_loss=d_error, g_loss=g_error)
        at step epoch * num_batches + n_batch."""
        return self.log(epoch * num_batches + n_batch, d_loss=d_error, g_loss=g_error)

    def _rewrite_csv(self) -> None:
        fields = list(dict.fromkeys(k for r in self.history for k in r)) or ["step"]

        def write(tmp):
            with open(tmp, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=fields, restval="")
                w.writeheader()
                w.writerows(self.history)

        atomic_write(self.csv_path, write)
        self._csv_fields = fields

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one logged scalar, for plotting."""
        rows = [r for r in self.history if key in r and r[key] != ""]
        return [int(r["step"]) for r in rows], [float(r[key]) for r in rows]

    # ------------------------------------------------------------------ images

    def log_images(self, images, step: int, nrow: int | None = None, value_range=(-1, 1)) -> Path:
        """Save a grid of `images` as PNG and to TensorBoard at `step`; keep it for the animation."""
        x = _images.as_nchw(images, "Logger.log_images")
        grid = _images.make_grid(x, nrow, value_range)
        step = int(step)
        if self.writer is not None:
            self.writer.add_image("samples", grid, step)
        if step in self.grid_steps:  # logged again after a resume: the same frame, not a second one
            self.grids[self.grid_steps.index(step)] = grid
        else:
            self.grids.append(grid)
            self.grid_steps.append(step)
        return _images.save_grid(x, self.dir / "images" / f"step_{step:07d}.png", nrow, value_range)

    def save_gif(self, path: str | os.PathLike | None = None, duration_ms: int = 300) -> Path:
        """An animated GIF of every grid logged so far (the fixed noise over training)."""
        return _images.save_gif(self.grids, path or self.dir / "training.gif", duration_ms)

    # ------------------------------------------------------------------ console

    def display_status(self, step: int, total_steps: int, **scalars) -> str:
        """Print one line: the step and the named scalars (the losses, D's mean outputs, ...)."""
        line = " · ".join([f"step {int(step):,}/{int(total_steps):,}"] + [f"{k} {_to_float(v):.4g}" for k, v in scalars.items()])
        print(line)
        return line

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


__all__ = ["Logger", "atomic_write"]
