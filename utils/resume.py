"""Resume after a dead kernel: a training loop's state, checkpointed atomically every half minute.

A notebook's training cell creates a TrainingRun with its configuration and its models, optimizers
and schedulers, starts at `run.start()` and calls `run.maybe_save(step)` after each step. Run the cell
again after the kernel died (or the Colab runtime disconnected) and it continues from the last
checkpoint of the same configuration, with the same random numbers and the same batches, so that the
result is the one an uninterrupted run gives. A changed configuration, or FRESH / $COURSE_FRESH=1,
starts from step 0.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from .runtime import ROOT, CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint

CHECKPOINT_EVERY_S = 30.0  # a disconnect loses at most this much training
RUN_FORMAT = 2  # what a checkpoint and its run folder hold; a checkpoint of another format is not resumed


def want_fresh() -> bool:
    """True when $COURSE_FRESH asks training cells to ignore their checkpoints and start at step 0."""
    return os.environ.get("COURSE_FRESH", "").strip().lower() in ("1", "true", "yes")


def _plain(config: dict) -> dict:
    """The configuration as JSON values (tuples become lists), so a saved one compares equal to a new one."""
    return json.loads(json.dumps(config, default=str))


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


class TrainingRun:
    """The resumable state of one training loop: models, optimizers, schedulers, RNG, best checkpoint, step.

    run = TrainingRun(RUN_DIR / "checkpoint.pt", CONFIG, total_steps=STEPS, models={"G": G, "D": D},
                      optimizers={"g": g_optimizer, "d": d_optimizer}, keeper=keeper, fresh=FRESH)
    for step in range(run.start(), STEPS):
        ...                       # one training step
        run.maybe_save(step + 1)  # a checkpoint every `every_s` seconds, and after the last step
    `state` carries any other values the loop needs back (a controller's k_t, a list of metrics).
    """

    def __init__(self, path, config: dict, *, total_steps: int, models: dict, optimizers: dict | None = None,
                 schedulers: dict | None = None, keeper=None, fresh: bool | None = None,
                 every_s: float | None = None):
        self.path, self.config, self.total_steps = Path(path), _plain(config), int(total_steps)
        self.models, self.optimizers, self.schedulers = models, optimizers or {}, schedulers or {}
        self.keeper, self.every_s = keeper, CHECKPOINT_EVERY_S if every_s is None else every_s
        self.fresh = want_fresh() if fresh is None else bool(fresh)
        self.state: dict = {}
        self.step = 0
        self.saves, self.save_seconds = 0, 0.0
        self._seconds_before, self._started, self._last_save = 0.0, None, None

    # ------------------------------------------------------------------ start

    def start(self) -> int:
        """Load the last checkpoint of this configuration, if any; print where training starts; return that step."""
        self.step, why = self._resume()
        if self.step:
            print(f"resumed at step {self.step:,} of {self.total_steps:,} from {_shown(self.path)}")
        else:
            print(f"training from step 0 of {self.total_steps:,} ({why})")
        self._started = self._last_save = time.perf_counter()
        return self.step

    def _resume(self) -> tuple[int, str]:
        if self.fresh:
            return 0, "FRESH is set: earlier checkpoints are ignored"
        if not self.path.is_file():
            return 0, f"no checkpoint in {_shown(self.path.parent)} yet"
        try:
            state = read_checkpoint(self.path)
        except CheckpointError:
            return 0, f"the checkpoint {_shown(self.path)} cannot be read; it will be replaced"
        if state.get("extra", {}).get("format") != RUN_FORMAT:
            return 0, (f"the checkpoint {_shown(self.path)} was written by an older version of the course, "
                       "so it starts afresh")
        old = state.get("extra", {}).get("config")
        if old != self.config:
            changed = sorted(k for k in set(old or {}) | set(self.config) if (old or {}).get(k) != self.config.get(k))
            detail = ", ".join(f"{k} {(old or {}).get(k)!r} -> {self.config.get(k)!r}" for k in changed[:4])
            return 0, f"the configuration changed since the checkpoint ({detail}), so it starts afresh"
        if set(self.schedulers) - set(state.get("extra", {}).get("schedulers") or {}):
            return 0, f"the checkpoint {_shown(self.path)} holds no state for a learning-rate schedule of this run, so it starts afresh"
        try:
            info = load_checkpoint(self.path, models=self.models, optimizers=self.optimizers, state=state)
        except CheckpointError as exc:
            return 0, f"{exc} Starting afresh instead"
        for name, scheduler in self.schedulers.items():
            scheduler.load_state_dict(info["schedulers"][name])
        torch.set_rng_state(info["rng"])
        if torch.cuda.is_available() and info.get("cuda_rng"):
            torch.cuda.set_rng_state_all(info["cuda_rng"])
        if self.keeper is not None and info.get("keeper"):
            self.keeper.best, self.keeper.best_step = info["keeper"]
        self.state = info.get("state", {})
        self._seconds_before = info.get("seconds", 0.0)
        return info["step"], "resumed"

    # ------------------------------------------------------------------ saving

    def seconds(self) -> float:
        """Wall time spent training this configuration, over every resumed session."""
        return self._seconds_before + (time.perf_counter() - self._started if self._started else 0.0)

    def save(self, step: int) -> None:
        """Write the checkpoint for `step` completed steps now (atomically: a kill mid-write keeps the last one)."""
        begin = time.perf_counter()
        keeper = [self.keeper.best, self.keeper.best_step] if self.keeper is not None else None
        save_checkpoint(self.path, step=step, models=self.models, optimizers=self.optimizers,
                        format=RUN_FORMAT, config=self.config, schedulers={k: s.state_dict() for k, s in self.schedulers.items()},
                        rng=torch.get_rng_state(),
                        cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                        keeper=keeper, state=self.state, seconds=self.seconds())
        self.step, self._last_save = step, time.perf_counter()
        self.saves += 1
        self.save_seconds += self._last_save - begin

    def maybe_save(self, step: int) -> bool:
        """Save when `every_s` seconds have passed since the last checkpoint, and after the last step."""
        if step >= self.total_steps or time.perf_counter() - self._last_save >= self.every_s:
            self.save(step)
            return True
        return False

    def summary(self) -> str:
        """One line on what checkpointing cost in this session."""
        spent = time.perf_counter() - self._started if self._started else 0.0
        share = self.save_seconds / spent if spent else 0.0
        return (f"{self.saves} checkpoint(s) written in {self.save_seconds:.1f} s, {share:.1%} of this session's "
                f"{spent:.0f} s of training (one at least every {self.every_s:.0f} s)")


__all__ = ["CHECKPOINT_EVERY_S", "TrainingRun", "want_fresh"]
