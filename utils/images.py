"""Image plumbing: grids, inline display, PNG files and the animated GIF of training."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from torchvision.utils import make_grid as _tv_make_grid

from .runtime import CourseError, atomic_write


def as_nchw(images, name: str = "images") -> torch.Tensor:
    """Images as a float CPU tensor N x C x H x W with C in {1, 3}.

    Accepts N x C x H x W, N x H x W x C (channels last, moved with permute, never a transpose
    that would swap height and width), N x H x W, or N x D flat images with D a square (784 -> 28x28).
    """
    x = images.detach() if torch.is_tensor(images) else torch.as_tensor(np.asarray(images))
    x = x.float().cpu()
    if x.ndim == 2:
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1]:
            raise CourseError(f"{name}: flat images of {x.shape[1]} values are not square; reshape to N x C x H x W.")
        x = x.view(-1, 1, side, side)
    elif x.ndim == 3:
        x = x.unsqueeze(1)
    elif x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
        x = x.permute(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise CourseError(
            f"{name}: expected images shaped N x C x H x W with 1 or 3 channels, got {tuple(x.shape)}. "
            "Reshape them (for MNIST: images.view(-1, 1, 28, 28))."
        )
    return x


def make_grid(images, nrow: int | None = None, value_range=(-1, 1), padding: int = 2) -> torch.Tensor:
    """A 3 x H x W grid in [0, 1] of images in `value_range` (default [-1, 1], a Tanh output)."""
    x = as_nchw(images)
    nrow = nrow or max(1, math.isqrt(len(x) - 1) + 1)
    lo, hi = value_range
    x = ((x - lo) / (hi - lo)).clamp_(0, 1)
    return _tv_make_grid(x, nrow=nrow, padding=padding, pad_value=1.0)


def to_uint8(grid: torch.Tensor) -> np.ndarray:
    """A 3 x H x W grid in [0, 1] as an H x W x 3 uint8 array."""
    return (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def show_images(images, nrow: int | None = None, title: str | None = None, value_range=(-1, 1), size: float = 4.0):
    """Show a grid of images inline (matplotlib) and return the figure."""
    import matplotlib.pyplot as plt

    grid = make_grid(images, nrow, value_range)
    fig, ax = plt.subplots(figsize=(size, size * grid.shape[1] / grid.shape[2]))
    ax.imshow(to_uint8(grid), interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title)
    plt.show()
    return fig


def save_grid(images, path: str | os.PathLike, nrow: int | None = None, value_range=(-1, 1)) -> Path:
    """Save a grid of images as a PNG file (atomically) and return its path."""
    from PIL import Image

    grid = make_grid(images, nrow, value_range)
    return atomic_write(path, lambda tmp: Image.fromarray(to_uint8(grid)).save(tmp, format="PNG"))


def save_gif(grids, path: str | os.PathLike, duration_ms: int = 300) -> Path:
    """Save an animated GIF from a list of grids (3 x H x W in [0, 1], e.g. from make_grid)."""
    from PIL import Image

    if not grids:
        raise CourseError("save_gif needs at least one grid; log images during training first.")
    frames = [Image.fromarray(to_uint8(g)) for g in grids]
    return atomic_write(
        path,
        lambda tmp: frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                                   duration=duration_ms, loop=0),
    )


def animate(grids, interval_ms: int = 400, max_frames: int = 20, size: float = 3.5, labels=None):
    """The grids logged during training as an inline animation with play controls (JavaScript in the page).

    Shown by a cell like any figure; at most `max_frames` grids, evenly spaced, keep the notebook small.
    `labels` (one string per grid, e.g. the step) titles each frame.
    """
    import matplotlib.pyplot as plt
    from IPython.display import HTML
    from matplotlib import animation

    if not len(grids):
        raise CourseError("animate needs at least one grid; log images during training first.")
    n = min(max_frames, len(grids))
    keep = sorted({round(i * (len(grids) - 1) / max(1, n - 1)) for i in range(n)})  # the first, the last, evenly between
    frames = [to_uint8(grids[i]) for i in keep]
    height, width = frames[0].shape[:2]
    dpi = max(40, 1.6 * max(height, width) / size)  # about 1.6 screen pixels per image pixel: sharp and small
    fig, ax = plt.subplots(figsize=(size, size * height / width + 0.3), dpi=dpi)
    ax.axis("off")
    shown = ax.imshow(frames[0])
    title = ax.set_title(labels[keep[0]] if labels else "", fontsize=9)
    fig.tight_layout()

    def draw(k):
        shown.set_data(frames[k])
        title.set_text(labels[keep[k]] if labels else "")
        return shown, title

    movie = animation.FuncAnimation(fig, draw, frames=len(frames), interval=interval_ms, blit=False)
    html = HTML(movie.to_jshtml(default_mode="once"))
    plt.close(fig)
    return html
