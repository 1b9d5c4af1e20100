"""utils.images: NCHW conversion, grids, uint8, inline display, PNG and GIF files."""

from __future__ import annotations

import base64
import io
import re

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from conftest import files_in
from PIL import Image

import utils
from utils import images
from utils.runtime import CourseError

pytestmark = pytest.mark.usefixtures("no_network")


def _ramp(n, c, h, w):
    """Images whose every value is distinct, so a swapped axis shows."""
    return torch.arange(n * c * h * w, dtype=torch.float32).view(n, c, h, w)


# ----------------------------------------------------------------------------- as_nchw


def test_as_nchw_keeps_nchw():
    x = _ramp(2, 3, 5, 7)
    got = images.as_nchw(x)
    assert got.shape == (2, 3, 5, 7) and torch.equal(got, x)


def test_as_nchw_moves_channels_last_with_a_permute_keeping_height_and_width():
    nchw = _ramp(4, 3, 20, 30)
    nhwc = nchw.permute(0, 2, 3, 1).contiguous()  # 4 x 20 x 30 x 3
    got = images.as_nchw(nhwc)
    assert got.shape == (4, 3, 20, 30)  # a transpose would give 30 x 20
    assert torch.equal(got, nchw)
    grey = images.as_nchw(_ramp(2, 1, 20, 30).permute(0, 2, 3, 1))
    assert grey.shape == (2, 1, 20, 30)


def test_as_nchw_adds_the_channel_of_grey_and_flat_images():
    assert images.as_nchw(torch.zeros(5, 28, 28)).shape == (5, 1, 28, 28)
    flat = _ramp(3, 1, 28, 28).view(3, 784)
    got = images.as_nchw(flat)
    assert got.shape == (3, 1, 28, 28) and torch.equal(got[:, 0], flat.view(3, 28, 28))


def test_as_nchw_accepts_numpy_ints_and_tensors_that_need_grad():
    got = images.as_nchw(np.zeros((2, 1, 4, 4), dtype=np.uint8))
    assert got.dtype == torch.float32 and got.device.type == "cpu"
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    got = images.as_nchw(x)
    assert not got.requires_grad and torch.equal(got, x.detach())


@pytest.mark.parametrize("shape", [(2, 2, 28, 28), (4, 783), (2, 5, 6, 7, 3), (10,)])
def test_as_nchw_refuses_other_shapes_with_what_to_do(shape):
    with pytest.raises(CourseError) as err:
        images.as_nchw(torch.zeros(shape), "my samples")
    message = str(err.value)
    assert message.startswith("my samples:")
    assert ("1 or 3 channels" in message and str(shape) in message) or "not square" in message
    assert "reshape" in message.lower()


# ----------------------------------------------------------------------------- make_grid and to_uint8


def test_make_grid_size_range_and_padding():
    x = torch.linspace(-1, 1, 16 * 28 * 28).view(16, 1, 28, 28)
    grid = utils.make_grid(x)
    assert grid.shape == (3, 4 * 28 + 5 * 2, 4 * 28 + 5 * 2)  # 4 x 4 for 16 images, 2-pixel padding
    assert grid.min() >= 0 and grid.max() <= 1
    assert torch.equal(grid[:, :2], torch.ones(3, 2, grid.shape[2]))  # white padding
    # values map from [-1, 1] to [0, 1]; grey becomes three equal channels
    assert torch.allclose(grid[:, 2:30, 2:30], ((x[0] + 1) / 2).expand(3, 28, 28))
    wide = utils.make_grid(x, nrow=8, padding=0)
    assert wide.shape == (3, 2 * 28, 8 * 28)


@pytest.mark.parametrize(("n", "rows", "cols"), [(1, 1, 1), (2, 1, 2), (9, 3, 3), (10, 3, 4), (64, 8, 8)])
def test_make_grid_default_is_nearly_square(n, rows, cols):
    grid = utils.make_grid(torch.zeros(n, 1, 8, 8), padding=0)
    assert grid.shape == (3, rows * 8, cols * 8)


def test_make_grid_value_range_clamps_and_does_not_touch_the_input():
    x = torch.tensor([[[[-3.0, 0.0], [0.5, 9.0]]]])
    kept = x.clone()
    grid = utils.make_grid(x, value_range=(0, 1), padding=0)
    assert grid[0].tolist() == [[0.0, 0.0], [0.5, 1.0]]
    assert torch.equal(x, kept)


def test_to_uint8():
    grid = torch.tensor([0.0, 0.5, 1.0, 0.25]).view(1, 2, 2).expand(3, 2, 2)
    got = images.to_uint8(grid)
    assert got.dtype == np.uint8 and got.shape == (2, 2, 3)
    assert got[..., 0].tolist() == [[0, 128], [255, 64]]


# ----------------------------------------------------------------------------- show_images, save_grid, save_gif


def test_show_images_draws_the_grid_and_returns_the_figure():
    x = torch.rand(6, 3, 10, 12) * 2 - 1
    fig = utils.show_images(x, nrow=3, title="samples")
    try:
        ax = fig.axes[0]
        shown = ax.images[0].get_array()
        assert np.array_equal(np.asarray(shown), images.to_uint8(utils.make_grid(x, nrow=3)))
        assert ax.get_title() == "samples" and not ax.axison
    finally:
        plt.close(fig)


def test_save_grid_writes_a_png_of_the_grid(tmp_path):
    x = torch.rand(5, 3, 20, 30) * 2 - 1
    path = utils.save_grid(x, tmp_path / "grids" / "g.png", nrow=5)
    assert path == tmp_path / "grids" / "g.png" and files_in(tmp_path / "grids") == ["g.png"]
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "RGB" and im.size == (5 * 30 + 6 * 2, 20 + 2 * 2)  # (W, H)
        assert np.array_equal(np.asarray(im), images.to_uint8(utils.make_grid(x, nrow=5)))


def test_save_gif_writes_every_frame(tmp_path):
    grids = [utils.make_grid(torch.full((4, 1, 8, 8), v)) for v in (-1.0, 0.0, 1.0)]
    path = utils.save_gif(grids, tmp_path / "t.gif", duration_ms=120)
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == 3 and im.size == (grids[0].shape[2], grids[0].shape[1])
        assert im.info["duration"] == 120 and im.info["loop"] == 0
        firsts = []
        for i in range(3):
            im.seek(i)
            firsts.append(np.asarray(im.convert("L"))[5, 5])  # inside the first image
    assert firsts == [0, 128, 255]  # black, grey, white: the frames in order


def test_save_gif_without_grids_says_what_to_do(tmp_path):
    with pytest.raises(CourseError, match="at least one grid; log images during training first"):
        utils.save_gif([], tmp_path / "t.gif")
    assert files_in(tmp_path) == []


def test_animate_shows_evenly_spaced_frames_with_their_labels_and_the_last_grid():
    grids = [torch.full((3, 20, 20), i / 29) for i in range(30)]  # 30 grids, each one grey level
    html = utils.animate(grids, max_frames=6, labels=[f"step {i * 100}" for i in range(30)]).data
    assert html.count("data:image/png;base64") == 6, "at most max_frames frames are embedded"
    few = utils.animate(grids[:3]).data
    assert few.count("data:image/png;base64") == 3, "fewer grids than max_frames: every grid is a frame"
    assert "anim" in html.lower() and "<img" in html, "an inline animation with play controls"


def test_animate_keeps_the_first_and_the_last_grid():
    grids = [torch.zeros(3, 16, 16)] + [torch.full((3, 16, 16), 0.5)] * 10 + [torch.ones(3, 16, 16)]
    html = utils.animate(grids, max_frames=4).data
    frames = re.findall(r'data:image/png;base64,([^"]+)"', html)  # base64 lines end with a backslash
    centre = [Image.open(io.BytesIO(base64.b64decode(f.replace("\\\n", "")))).convert("L") for f in frames]
    middle = [im.getpixel((im.width // 2, im.height // 2)) for im in centre]
    assert middle[0] < 30 and middle[-1] > 225, f"the first frame is the first grid, the last the last: {middle}"


def test_animate_refuses_an_empty_list():
    with pytest.raises(CourseError, match="at least one grid"):
        utils.animate([])
