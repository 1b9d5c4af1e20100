"""utils.Logger: scalars (CSV and TensorBoard), image grids, the GIF, console status, checkpoints, resuming."""

from __future__ import annotations

import csv
import struct

import numpy as np
import pytest
import torch
from conftest import one_message
from PIL import Image
from tensorboardX.proto import event_pb2

import utils
from utils.runtime import CourseError

pytestmark = pytest.mark.usefixtures("no_network")


def read_events(folder):
    """Every TensorBoard event under `folder`, read from the TFRecord framing (length, crc, data, crc)."""
    events = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            events.append(event_pb2.Event.FromString(data[pos + 12:pos + 12 + length]))
            pos += 12 + length + 4
    return events


def scalars(folder):
    """{tag: [(step, value), ...]} of the scalar summaries in the event files under `folder`."""
    out = {}
    for ev in read_events(folder):
        for v in ev.summary.value:
            if v.HasField("simple_value"):
                out.setdefault(v.tag, []).append((ev.step, v.simple_value))
    return out


def csv_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def logger(tmp_path):
    lg = utils.Logger("vanilla", "mnist", root=tmp_path / "run")
    yield lg
    lg.close()


# ----------------------------------------------------------------------------- folders


def test_logger_makes_its_folders_under_root(tmp_path):
    with utils.Logger("dcgan", "mnist", root=tmp_path / "r") as lg:
        assert lg.dir == tmp_path / "r"
        assert (lg.dir / "images").is_dir() and (lg.dir / "tensorboard").is_dir()
    assert lg.writer is None  # the context manager closed it
    assert not list((tmp_path / "r").glob(".write-test*"))


def test_default_folder_is_runs_model_data(tmp_path, monkeypatch):
    monkeypatch.setattr("utils.logger.ROOT", tmp_path)
    with utils.Logger("dcgan", "celeba", tensorboard=False) as lg:
        assert lg.dir == tmp_path / "runs" / "dcgan" / "celeba" and lg.dir.is_dir()
        assert lg.writer is None and not (lg.dir / "tensorboard").exists()


def test_unwritable_run_folder_says_what_to_do(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("a file where the folder should be")  # fails even as root
    with pytest.raises(CourseError) as err:
        utils.Logger("vanilla", "mnist", root=blocker / "vanilla")
    message = one_message(err.value)
    assert "Cannot write the run folder" in message and str(blocker / "vanilla") in message
    assert "Pass Logger(..., root=...) a folder you can write to" in message
    assert blocker.read_text() == "a file where the folder should be"


# ----------------------------------------------------------------------------- scalars


def test_log_writes_csv_rows_and_tensorboard_scalars(logger):
    num_batches = 10
    for epoch in range(2):
        for n in range(0, num_batches, 5):
            row = logger.log(0.1 * n + epoch, 1.0, epoch, n, num_batches, d_real=0.9, d_fake=0.1)
            assert row["step"] == epoch * num_batches + n
    rows = csv_rows(logger.csv_path)
    assert [r["step"] for r in rows] == ["0", "5", "10", "15"]
    assert list(rows[0]) == ["step", "epoch", "d_error", "g_error", "d_real", "d_fake"]
    assert float(rows[1]["d_error"]) == pytest.approx(0.5) and float(rows[3]["d_error"]) == pytest.approx(1.5)
    logger.close()
    tags = scalars(logger.dir / "tensorboard")
    assert set(tags) == {"vanilla/d_error", "vanilla/g_error", "vanilla/d_real", "vanilla/d_fake"}
    assert [s for s, _ in tags["vanilla/d_error"]] == [0, 5, 10, 15]
    assert [round(v, 5) for _, v in tags["vanilla/d_error"]] == [0.0, 0.5, 1.0, 1.5]
    assert all(v == pytest.approx(0.9) for _, v in tags["vanilla/d_real"])


def test_log_takes_floats_numbers_and_tensors_without_cuda(logger):
    x = torch.tensor(3.0, requires_grad=True)
    loss = x * 2  # part of a graph
    row = logger.log(loss, np.float32(0.25), 0, 1, 4, d_real=torch.tensor([0.2, 0.4]), lr=1e-3, n=np.int64(7))
    assert row == {"step": 1, "epoch": 0, "d_error": 6.0, "g_error": 0.25,
                   "d_real": pytest.approx(0.3), "lr": 1e-3, "n": 7.0}  # a batch of D outputs becomes its mean
    assert all(type(v) in (int, float) for v in row.values())
    assert x.grad is None


def test_series_returns_steps_and_values_for_plotting(logger):
    for step in range(5):
        logger.log(step * 1.0, -step, 0, step, 5)
    logger.log(0.0, 0.0, 1, 0, 5, d_real=0.7)  # a scalar that starts late
    assert logger.series("d_error") == ([0, 1, 2, 3, 4, 5], [0.0, 1.0, 2.0, 3.0, 4.0, 0.0])
    assert logger.series("g_error")[1][:5] == [0.0, -1.0, -2.0, -3.0, -4.0]
    assert logger.series("d_real") == ([5], [0.7])
    assert logger.series("nothing") == ([], [])
    rows = csv_rows(logger.csv_path)
    assert len(rows) == 6 and rows[0]["d_real"] == "" and rows[5]["d_real"] == "0.7"


def test_event_file_grows_with_every_flush(logger):
    logger.log(1.0, 1.0, 0, 0, 10)
    logger.writer.flush()
    (event_file,) = (logger.dir / "tensorboard").glob("events.out.tfevents.*")
    size = event_file.stat().st_size
    logger.log(1.0, 1.0, 0, 1, 10)
    logger.close()
    assert event_file.stat().st_size > size > 0


# ----------------------------------------------------------------------------- resuming


def _log_steps(lg, steps, **extra):
    for s in steps:
        lg.log(float(s), 0.0, s // 10, s % 10, 10, **extra)


def test_resume_step_drops_later_rows(tmp_path):
    root = tmp_path / "run"
    with utils.Logger("m", "d", root=root) as lg:
        _log_steps(lg, range(0, 30, 3))  # 0, 3, ..., 27
    with utils.Logger("m", "d", root=root, resume_step=12) as lg:
        assert [int(float(r["step"])) for r in csv_rows(lg.csv_path)] == [0, 3, 6, 9, 12]
        assert lg.series("d_error")[0] == [0, 3, 6, 9, 12]
        _log_steps(lg, [13, 14])  # the resumed run continues after the checkpoint's step
        assert lg.writer.purge_step == 13  # TensorBoard forgets the dropped steps too
    steps = [int(float(r["step"])) for r in csv_rows(root / "scalars.csv")]
    assert steps == [0, 3, 6, 9, 12, 13, 14]  # no step twice


def test_a_new_run_without_resume_step_starts_a_fresh_table(tmp_path):
    root = tmp_path / "run"
    with utils.Logger("m", "d", root=root) as lg:
        _log_steps(lg, range(5))
    with utils.Logger("m", "d", root=root) as lg:
        assert lg.history == [] and csv_rows(lg.csv_path) == []
        _log_steps(lg, [0])
    assert len(csv_rows(root / "scalars.csv")) == 1


def test_resume_with_a_scalar_that_started_late(tmp_path):
    root = tmp_path / "run"
    with utils.Logger("m", "d", root=root) as lg:
        _log_steps(lg, range(3))
        _log_steps(lg, range(3, 6), d_real=0.5)  # the CSV has empty d_real cells for steps 0-2
    with utils.Logger("m", "d", root=root, resume_step=4) as lg:
        assert lg.series("d_real") == ([3, 4], [0.5, 0.5])
        assert lg.series("d_error")[0] == [0, 1, 2, 3, 4]


# ----------------------------------------------------------------------------- images


def test_log_images_saves_a_png_grid_and_keeps_it(logger):
    x = torch.rand(16, 1, 28, 28, requires_grad=True) * 2 - 1
    path = logger.log_images(x, 16, 2, 300, 600)
    assert path == logger.dir / "images" / "epoch_002_batch_00300.png"
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (4 * 28 + 5 * 2, 4 * 28 + 5 * 2)
        assert np.array_equal(np.asarray(im), utils.images.to_uint8(utils.make_grid(x.detach())))
    assert len(logger.grids) == 1 and logger.grids[0].shape == (3, 122, 122)
    logger.close()
    image_events = [v for ev in read_events(logger.dir / "tensorboard") for v in ev.summary.value
                    if v.tag == "vanilla/samples"]
    assert len(image_events) == 1 and image_events[0].image.width == 122


def test_log_images_takes_the_first_num_images_and_nrow(logger):
    x = torch.zeros(64, 784)  # flat MNIST vectors, as the vanilla GAN makes them
    with Image.open(logger.log_images(x, 6, 0, 0, 10, nrow=3)) as im:
        assert im.size == (3 * 28 + 4 * 2, 2 * 28 + 3 * 2)


def test_log_images_permutes_channels_last_keeping_height_and_width(logger):
    nchw = torch.rand(4, 3, 20, 30) * 2 - 1
    path = logger.log_images(nchw.permute(0, 2, 3, 1).numpy(), 4, 0, 1, 10)  # N x H x W x C numpy
    with Image.open(path) as im:
        assert im.size == (2 * 30 + 3 * 2, 2 * 20 + 3 * 2)  # (W, H): 20 rows and 30 columns per image
        assert np.array_equal(np.asarray(im), utils.images.to_uint8(utils.make_grid(nchw)))


@pytest.mark.parametrize(("shape", "words"), [
    ((16, 2, 28, 28), ["(16, 2, 28, 28)", "1 or 3 channels", "Reshape them"]),      # two channels
    ((16, 28, 28, 4), ["(16, 28, 28, 4)", "1 or 3 channels", "Reshape them"]),      # RGBA, channels last
    ((16, 5, 1, 28, 28), ["(16, 5, 1, 28, 28)", "N x C x H x W", "Reshape them"]),  # one axis too many
    ((16, 99), ["99 values are not square", "reshape to N x C x H x W"]),            # flat, not a square
])
def test_log_images_with_a_wrong_shape_says_what_to_do(logger, shape, words):
    with pytest.raises(CourseError) as err:
        logger.log_images(torch.zeros(shape), 16, 0, 0, 10)
    message = one_message(err.value)
    assert message.startswith("Logger.log_images:") and message.count("\n") == 0
    assert all(w in message for w in words), message
    assert list((logger.dir / "images").iterdir()) == [] and logger.grids == []


def test_save_gif_animates_every_logged_grid(logger, tmp_path):
    for epoch in range(3):
        logger.log_images(torch.full((4, 1, 8, 8), epoch - 1.0), 4, epoch, 0, 1)
    path = logger.save_gif()
    assert path == logger.dir / "training.gif"
    with Image.open(path) as im:
        assert im.n_frames == 3 and im.size == (2 * 8 + 3 * 2, 2 * 8 + 3 * 2)
    other = logger.save_gif(tmp_path / "elsewhere.gif", duration_ms=50)
    with Image.open(other) as im:
        assert im.n_frames == 3 and im.info["duration"] == 50


def test_save_gif_before_any_image_says_what_to_do(logger):
    with pytest.raises(CourseError, match="log images during training first"):
        logger.save_gif()
    assert not (logger.dir / "training.gif").exists()


# ----------------------------------------------------------------------------- console


def test_display_status_prints_one_line(logger, capsys):
    line = logger.display_status(0, 5, 30, 600, torch.tensor(1.23456), 0.5, torch.full((8, 1), 0.75), 0.25)
    assert capsys.readouterr().out == line + "\n"
    assert line == "epoch 1/5 · batch 30/600 · d_loss 1.2346 · g_loss 0.5000 · D(x) 0.750 · D(G(z)) 0.250"


# ----------------------------------------------------------------------------- checkpoints


def _nets(seed):
    torch.manual_seed(seed)
    G, D = torch.nn.Linear(3, 4), torch.nn.Linear(4, 1)
    return G, D, torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999)), torch.optim.Adam(D.parameters())


def _step(model, opt):
    opt.zero_grad()
    model(torch.ones(2, model.in_features)).sum().backward()
    opt.step()


def test_close_flushes_and_can_be_called_twice(tmp_path):
    lg = utils.Logger("m", "d", root=tmp_path)
    lg.log(1.0, 2.0, 0, 0, 1)
    lg.close()
    lg.close()
    assert lg.writer is None
    assert "m/g_error" in scalars(tmp_path / "tensorboard")


def test_a_resumed_run_takes_back_its_grids_and_a_fresh_one_drops_them(tmp_path):
    root = tmp_path / "run"
    with utils.Logger("m", "d", root=root, tensorboard=False) as lg:
        for step in range(3):
            lg.log_images(torch.full((4, 1, 8, 8), step - 1.0), 4, 0, step, 10)
    with utils.Logger("m", "d", root=root, resume_step=1, tensorboard=False) as lg:
        assert len(lg.grids) == 3, "the grids saved before the kernel died come back for the GIF"
        first = utils.images.to_uint8(utils.make_grid(torch.full((4, 1, 8, 8), -1.0)))
        assert np.array_equal(utils.images.to_uint8(lg.grids[0]), first), "the first grid is read back as saved"
        lg.log_images(torch.full((4, 1, 8, 8), 1.0), 4, 0, 2, 10)  # step 2 logged again after the resume
        assert len(lg.grids) == 3, "a frame logged again replaces its earlier copy"
        with Image.open(lg.save_gif()) as im:
            assert im.n_frames == 3
    with utils.Logger("m", "d", root=root, tensorboard=False) as lg:
        assert lg.grids == [] and not list((root / "images").glob("*.png")), "a fresh run starts a new animation"
