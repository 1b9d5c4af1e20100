"""The training Logger: console status, TensorBoard event files, PNG grids, a CSV of scalars, checkpoints.

Its API is the one the "GANs from scratch" tutorial introduced, with what that version got wrong
fixed: channels-last images are moved with a permute (not a transpose that swaps height and width),
tensors on any device are accepted, checkpoints hold the optimizers and the step, are written
atomically, and only when asked (once an epoch), not on every batch.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms import functional as TF

from . import images as _images
from .runtime import ROOT, CourseError, atomic_write


def _to_float(value) -> float:
    if torch.is_tensor(value):
        if value.numel() != 1:
            value = value.detach().float().mean()
        return float(value.detach().cpu())
    return float(value)


class Logger:
    """Logger(model_name, data_name) writes under runs/<model_name>/<data_name>/ (or `root`).

    - scalars.csv and TensorBoard event files: one row per log() call, keyed by the global step
      epoch * num_batches + n_batch;
    - images/epoch_EEE_batch_BBBBB.png: the grids given to log_images(), also kept for save_gif();
    - checkpoint.pt: the latest save_models(), written atomically.
    `resume_step` (from a checkpoint) drops logged rows after that step, so a resumed run does
    not repeat steps; TensorBoard is told the same with purge_step.
    """

    def __init__(self, model_name: str, data_name: str, root: str | os.PathLike | None = None,
                 resume_step: int | None = None, tensorboard: bool = True):
        self.model_name, self.data_name = model_name, data_name
        self.dir = Path(root) if root else ROOT / "runs" / model_name / data_name
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
        if self.csv_path.exists():
            with open(self.csv_path, newline="") as fh:
                # a cell is empty where a scalar was not logged at that step (a column that began later)
                rows = [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(fh)]
            keep = resume_step if resume_step is not None else -1
            self.history = [r for r in rows if r["step"] <= keep]
            self._rewrite_csv()
        # the grids of this run for the GIF: a resumed run takes back those it saved before the kernel died
        self.grids: list[torch.Tensor] = []
        self._grid_paths: list[Path] = []
        for png in sorted((self.dir / "images").glob("*.png")):
            if resume_step is None or resume_step < 0:
                png.unlink()  # a fresh run: the old run's grids must not join its animation
            else:
                with Image.open(png) as im:
                    self.grids.append(TF.to_tensor(im.convert("RGB")))
                self._grid_paths.append(png)
        self.writer = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self.writer = SummaryWriter(logdir=str(self.dir / "tensorboard"),
                                        purge_step=None if resume_step is None else resume_step + 1)

    # ------------------------------------------------------------------ scalars

    @staticmethod
    def step(epoch: int, n_batch: int, num_batches: int) -> int:
        return epoch * num_batches + n_batch

    def log(self, d_error, g_error, epoch: int, n_batch: int, num_batches: int, **scalars) -> dict:
        """Record the D and G losses (and any other named scalars) at this step."""
        row = {"step": self.step(epoch, n_batch, num_batches), "epoch": epoch,
               "d_error": _to_float(d_error), "g_error": _to_float(g_error)}
        row.update({k: _to_float(v) for k, v in scalars.items()})
        self.history.append(row)
        if self.writer is not None:
            for key, value in row.items():
                if key not in ("step", "epoch"):
                    self.writer.add_scalar(f"{self.model_name}/{key}", value, row["step"])
        if self._csv_fields == list(row):
            with open(self.csv_path, "a", newline="") as fh:
                csv.DictWriter(fh, fieldnames=self._csv_fields).writerow(row)
        else:  # a new file, or new columns: write the whole table again
            self._rewrite_csv()
        return row

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

    def log_images(self, images, num_images: int, epoch: int, n_batch: int, num_batches: int,
                   nrow: int | None = None, value_range=(-1, 1)) -> Path:
        """Save a grid of the first `num_images` images as PNG and to TensorBoard; keep it for the GIF."""
        x = _images.as_nchw(images, "Logger.log_images")[:num_images]
        grid = _images.make_grid(x, nrow, value_range)
        step = self.step(epoch, n_batch, num_batches)
        if self.writer is not None:
            self.writer.add_image(f"{self.model_name}/samples", grid, step)
        path = self.dir / "images" / f"epoch_{epoch:03d}_batch_{n_batch:05d}.png"
        if path in self._grid_paths:  # logged again after a resume: the same frame, not a second one
            self.grids[self._grid_paths.index(path)] = grid
        else:
            self.grids.append(grid)
            self._grid_paths.append(path)
        return _images.save_grid(x, path, nrow, value_range)

    def save_gif(self, path: str | os.PathLike | None = None, duration_ms: int = 300) -> Path:
        """An animated GIF of every grid logged so far (the fixed noise over training)."""
        return _images.save_gif(self.grids, path or self.dir / "training.gif", duration_ms)

    # ------------------------------------------------------------------ console

    def display_status(self, epoch: int, num_epochs: int, n_batch: int, num_batches: int,
                       d_error, g_error, d_pred_real, d_pred_fake) -> str:
        """Print one line: where training is, the two losses and D's mean output on real and fake."""
        line = (f"epoch {epoch + 1}/{num_epochs} · batch {n_batch}/{num_batches} · "
                f"d_loss {_to_float(d_error):.4f} · g_loss {_to_float(g_error):.4f} · "
                f"D(x) {_to_float(d_pred_real):.3f} · D(G(z)) {_to_float(d_pred_fake):.3f}")
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
