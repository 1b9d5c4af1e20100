"""Plumbing around a training loop, never the loop itself: sampling, the learning-rate decay, loss curves, CPU speed.

The models, the losses and the update steps stay in the notebooks that teach them.
"""

from __future__ import annotations

import contextlib
import functools
import platform

import numpy as np
import torch

from .runtime import CourseError


@torch.no_grad()
def sample(G: torch.nn.Module, z: torch.Tensor, labels: torch.Tensor | None = None, batch: int = 500) -> torch.Tensor:
    """G(z) (or G(z, labels) for a conditional G) in evaluation mode, in batches, as float32 on the CPU.

    Evaluation mode makes batch norm use its running statistics, so a sample does not depend on the
    other samples drawn with it; G goes back to the mode it was in.
    """
    if labels is not None and len(labels) != len(z):
        raise CourseError(f"sample: {len(z)} noise vectors but {len(labels)} labels; give one label per vector.")
    was_training = G.training
    G.eval()
    try:
        parts = [G(z[i:i + batch]) if labels is None else G(z[i:i + batch], labels[i:i + batch])
                 for i in range(0, len(z), batch)]
    finally:
        G.train(was_training)
    return torch.cat(parts).float().cpu()


def linear_decay(total_steps: int, decay_from: float | None):
    """The learning-rate factor of the course's GANs, for LambdaLR: 1 for the first `decay_from` share of
    `total_steps`, then falling linearly to 0 at the last step. decay_from None (or 1) keeps it at 1."""
    start = total_steps * decay_from if decay_from is not None else float(total_steps)
    length = total_steps - start

    def factor(step: int) -> float:
        if step < start or length <= 0:
            return 1.0
        return max(0.0, (total_steps - step) / length)

    return factor


def lr_decay(optimizer: torch.optim.Optimizer, total_steps: int, decay_from: float | None) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR scheduler with linear_decay; call its step() once per training step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, linear_decay(total_steps, decay_from))


def smooth(values, k: int = 25) -> np.ndarray:
    """Moving average over k values, to see the trend through the noise of single batches (len - k + 1 values)."""
    v = np.asarray(values, dtype=float)
    k = max(1, min(k, len(v)))
    return np.convolve(v, np.ones(k) / k, mode="valid")


def plot_curves(logger, keys=("d_loss", "g_loss"), k: int = 25, ax=None, title: str = "losses (moving average)",
                labels: dict | None = None):
    """Draw the logged scalars `keys` of a Logger, each as a moving average over k steps; return the axes."""
    import matplotlib.pyplot as plt

    series = {key: logger.series(key) for key in keys}
    for key, (_, values) in series.items():
        if not values:
            raise CourseError(f"The Logger has no scalar {key!r}; it logged {sorted({c for r in logger.history for c in r} - {'step'})}.")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for key, (steps, values) in series.items():
        s = smooth(values, k)
        ax.plot(steps[len(steps) - len(s):], s, label=(labels or {}).get(key, key))
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.legend()
    return ax


@functools.cache
def bf16_units() -> bool:
    """True when this CPU multiplies bfloat16 in hardware (AMX or AVX-512 BF16); without them bf16 is emulated and slow."""
    if platform.system() != "Linux":
        return False
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def autocast(device: torch.device, enabled: bool = True):
    """Mixed precision where it pays: bfloat16 on a CPU with bf16 units or a GPU that has them, else plain float32.

    with utils.autocast(device): losses = ...   # the forward passes; backward and the optimizer step stay outside
    """
    device = torch.device(device)
    if enabled and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if enabled and device.type == "cpu" and bf16_units():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


__all__ = ["autocast", "bf16_units", "linear_decay", "lr_decay", "plot_curves", "sample", "smooth"]
