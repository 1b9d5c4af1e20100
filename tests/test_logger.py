"""utils.Logger: scalars by step (CSV and TensorBoard), the tutorial's call, image grids, the GIF, console status, resuming."""

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
import utils.logger
import utils.runs
from utils.runtime import CourseError

pytestmark = pytest.mark.usefixtures("no_network")


def read_events(folder):
    """Every TensorBoard event under `folder`, read from the TFRecord framing (length, crc, data, crc).

    (The tensorboard package is not installed; tensorboardX ships the Event proto, and the framing is four fields.)
    """
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


def csv_steps(path):
    return [int(float(r["step"])) for r in csv_rows(path)]


@pytest.fixture
def logger(tmp_path):
    lg = utils.Logger("04_vanilla_gan", root=tmp_path / "run")
    yield lg
    lg.close()


# ----------------------------------------------------------------------------- folders


def test_logger_makes_its_folders_under_root(tmp_path):
    with utils.Logger("05_dcgan", root=tmp_path / "r") as lg:
        assert lg.dir == tmp_path / "r" and lg.name == "05_dcgan"
        assert (lg.dir / "images").is_dir() and (lg.dir / "tensorboard").is_dir()
    assert lg.writer is None  # the context manager closed it
    assert not list((tmp_path / "r").glob(".write-test*"))


def test_default_folder_is_the_run_dir_of_the_name(tmp_path, monkeypatch):
    """The Logger, the samples and the shipped runs share one definition of where a run's files go."""
    monkeypatch.setattr(utils.runs, "RUNS_DIR", tmp_path / "runs")
    with utils.Logger("08_wgan/clipped", tensorboard=False) as lg:
        assert lg.dir == utils.run_dir("08_wgan/clipped") == tmp_path / "runs" / "08_wgan" / "clipped"
        assert lg.dir.is_dir() and lg.writer is None and not (lg.dir / "tensorboard").exists()
    with utils.Logger("08_wgan", tensorboard=False) as lg:
        lg.log(1, d_loss=0.5)
    assert utils.save_samples(torch.zeros(2, 1, 28, 28), "08_wgan").parent == lg.dir


def test_unwritable_run_folder_says_what_to_do(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("a file where the folder should be")  # fails even as root
    with pytest.raises(CourseError) as err:
        utils.Logger("04_vanilla_gan", root=blocker / "04_vanilla_gan")
    message = one_message(err.value)
    assert "Cannot write the run folder" in message and str(blocker / "04_vanilla_gan") in message
    assert "Pass Logger(..., root=...) a folder you can write to" in message
    assert blocker.read_text() == "a file where the folder should be"


# ----------------------------------------------------------------------------- scalars


def test_log_writes_csv_rows_and_tensorboard_scalars_at_the_given_steps(logger):
    for step in (1, 6, 11, 16):
        row = logger.log(step, d_loss=0.1 * step, g_loss=1.0, d_real=0.9, d_fake=0.1)
        assert row["step"] == step
    rows = csv_rows(logger.csv_path)
    assert [r["step"] for r in rows] == ["1", "6", "11", "16"]
    assert list(rows[0]) == ["step", "d_loss", "g_loss", "d_real", "d_fake"]  # the names given, in their order
    assert float(rows[1]["d_loss"]) == pytest.approx(0.6) and float(rows[3]["d_loss"]) == pytest.approx(1.6)
    logger.close()
    tags = scalars(logger.dir / "tensorboard")
    assert set(tags) == {"d_loss", "g_loss", "d_real", "d_fake"}  # no run-name prefix: TensorBoard groups runs
    assert [s for s, _ in tags["d_loss"]] == [1, 6, 11, 16]
    assert [round(v, 5) for _, v in tags["d_loss"]] == [0.1, 0.6, 1.1, 1.6]
    assert all(v == pytest.approx(0.9) for _, v in tags["d_real"])


def test_log_takes_floats_numbers_and_tensors_without_cuda(logger):
    x = torch.tensor(3.0, requires_grad=True)
    loss = x * 2  # part of a graph
    row = logger.log(np.int64(4), d_loss=loss, g_loss=np.float32(0.25), d_real=torch.tensor([0.2, 0.4]),
                     lr=1e-3, n=np.int64(7), w=torch.tensor(1.5, dtype=torch.bfloat16))
    assert row == {"step": 4, "d_loss": 6.0, "g_loss": 0.25, "d_real": pytest.approx(0.3), "lr": 1e-3,
                   "n": 7.0, "w": 1.5}  # a batch of D outputs becomes its mean
    assert type(row["step"]) is int and all(type(v) is float for k, v in row.items() if k != "step")
    assert x.grad is None


def test_log_without_scalars_says_what_to_do(logger):
    with pytest.raises(CourseError) as err:
        logger.log(3)
    message = one_message(err.value)
    assert "needs at least one named scalar" in message and "log(step, d_loss=d_loss)" in message
    assert logger.history == [] and not logger.csv_path.exists()


def test_series_returns_steps_and_values_for_plotting(logger):
    for step in range(1, 6):
        logger.log(step, d_loss=step * 1.0, g_loss=-step)
    logger.log(6, d_loss=0.0, g_loss=0.0, d_real=0.7)  # a scalar that starts late
    logger.log(6, fd=12.5)  # a metric logged on its own at the same step
    assert logger.series("d_loss") == ([1, 2, 3, 4, 5, 6], [1.0, 2.0, 3.0, 4.0, 5.0, 0.0])
    assert logger.series("g_loss")[1][:5] == [-1.0, -2.0, -3.0, -4.0, -5.0]
    assert logger.series("d_real") == ([6], [0.7])
    assert logger.series("fd") == ([6], [12.5])
    assert logger.series("nothing") == ([], [])
    rows = csv_rows(logger.csv_path)
    assert len(rows) == 7 and rows[0]["d_real"] == "" and rows[5]["d_real"] == "0.7" and rows[6]["fd"] == "12.5"
    assert rows[6]["d_loss"] == ""  # the metric row leaves the losses empty, it does not repeat or zero them


def test_the_csv_table_reads_back_as_the_history(tmp_path):
    """What a resumed Logger reads is what the first one logged, empty cells included."""
    with utils.Logger("m", root=tmp_path, tensorboard=False) as lg:
        for step in range(1, 4):
            lg.log(step, d_loss=step / 3, g_loss=2.0)
        lg.log(3, fd=40.25)
        lg.log(4, d_loss=0.5, g_loss=1.5, d_real=0.75)
        written = [dict(r) for r in lg.history]
    with utils.Logger("m", root=tmp_path, resume_step=4, tensorboard=False) as lg:
        assert lg.history == written


def test_a_metric_logged_every_few_steps_does_not_rewrite_the_table_each_step(tmp_path, monkeypatch):
    """log() costs the same at step 5,000 as at step 5: rows are appended, the table is rewritten only when a
    new column appears. A notebook that logs the losses each step and a metric every TRACK_EVERY steps has rows
    with different columns; rewriting the whole table for each of them makes a run's logging quadratic."""
    rewrites = []
    real = utils.logger.atomic_write
    monkeypatch.setattr(utils.logger, "atomic_write", lambda path, write: rewrites.append(path) or real(path, write))
    with utils.Logger("m", root=tmp_path, tensorboard=False) as lg:
        for step in range(1, 201):
            lg.log(step, d_loss=0.5, g_loss=0.7)
            if step % 10 == 0:
                lg.log(step, fd=3.0)
    assert len(rewrites) <= 3, f"{len(rewrites)} rewrites of scalars.csv for 220 rows with 2 column sets"
    assert len(csv_rows(tmp_path / "scalars.csv")) == 220


def test_tutorial_log_is_the_tutorials_call_on_the_step_api(logger):
    """The seed tutorial's log(d_error, g_error, epoch, n_batch, num_batches), kept for notebook 04's retelling."""
    row = logger.tutorial_log(torch.tensor(1.25), 0.5, 2, 7, 600)
    assert row == {"step": 2 * 600 + 7, "d_loss": 1.25, "g_loss": 0.5}
    logger.tutorial_log(1.0, 1.0, 0, 0, 600)
    assert logger.series("d_loss") == ([1207, 0], [1.25, 1.0])
    assert list(csv_rows(logger.csv_path)[0]) == ["step", "d_loss", "g_loss"]  # the columns every notebook plots


def test_event_file_grows_with_every_flush(logger):
    logger.log(1, d_loss=1.0)
    logger.writer.flush()
    (event_file,) = (logger.dir / "tensorboard").glob("events.out.tfevents.*")
    size = event_file.stat().st_size
    logger.log(2, d_loss=1.0)
    logger.close()
    assert event_file.stat().st_size > size > 0


def test_close_flushes_and_can_be_called_twice(tmp_path):
    lg = utils.Logger("m", root=tmp_path)
    lg.log(1, g_loss=2.0)
    lg.close()
    lg.close()
    assert lg.writer is None
    assert scalars(tmp_path / "tensorboard") == {"g_loss": [(1, 2.0)]}


# ----------------------------------------------------------------------------- resuming


def _log_steps(lg, steps, **extra):
    for s in steps:
        lg.log(s, d_loss=float(s), g_loss=0.0, **extra)


def test_resume_step_keeps_rows_up_to_it_and_drops_later_ones(tmp_path):
    root = tmp_path / "run"
    with utils.Logger("m", root=root) as lg:
        _log_steps(lg, range(3, 31, 3))  # 3, 6, ..., 30
    with utils.Logger("m", root=root, resume_step=12) as lg:  # the checkpoint was written after 12 steps
        assert csv_steps(lg.csv_path) == [3, 6, 9, 12]
        assert lg.series("d_loss") == ([3, 6, 9, 12], [3.0, 6.0, 9.0, 12.0])
        _log_steps(lg, [13, 14])  # the resumed run continues after the checkpoint's step
        assert lg.writer.purge_step == 13  # TensorBoard forgets the dropped steps too
    assert csv_steps(root / "scalars.csv") == [3, 6, 9, 12, 13, 14]  # no step twice
    purges = [ev for ev in read_events(root / "tensorboard") if ev.HasField("session_log")]
    assert [(ev.session_log.status, ev.step) for ev in purges] == [(event_pb2.SessionLog.START, 13)], \
        "the resumed event file tells TensorBoard to drop the first session's steps after 12"


def test_resume_keeps_exactly_the_first_sessions_rows_of_a_steps_done_loop(tmp_path):
    """The notebook loop: `for step in range(start, STEPS)`, log at done = step + 1, Logger(resume_step=start)."""
    def session(start, stop, root):
        with utils.Logger("m", root=root, resume_step=start, tensorboard=False) as lg:
            for step in range(start, stop):
                lg.log(step + 1, d_loss=step / 10)
        return lg

    session(0, 7, tmp_path / "killed")        # killed after 7 steps, the checkpoint of 5 steps done survived
    resumed = session(5, 12, tmp_path / "killed")
    straight = session(0, 12, tmp_path / "straight")
    assert resumed.history == straight.history and [r["step"] for r in resumed.history] == list(range(1, 13))
    def table(root):
        return [{k: float(v) for k, v in r.items()} for r in csv_rows(root / "scalars.csv")]

    assert table(tmp_path / "killed") == table(tmp_path / "straight")


def test_a_new_run_without_resume_step_starts_a_fresh_table(tmp_path):
    root = tmp_path / "run"
    with utils.Logger("m", root=root) as lg:
        _log_steps(lg, range(1, 6))
    with utils.Logger("m", root=root) as lg:
        assert lg.history == [] and csv_rows(lg.csv_path) == []
        assert lg.writer.purge_step is None
        _log_steps(lg, [1])
    assert csv_steps(root / "scalars.csv") == [1]


def test_resume_with_a_scalar_that_started_late(tmp_path):
    root = tmp_path / "run"
    with utils.Logger("m", root=root) as lg:
        _log_steps(lg, range(1, 4))
        _log_steps(lg, range(4, 7), d_real=0.5)  # the CSV has empty d_real cells for steps 1-3
    with utils.Logger("m", root=root, resume_step=5) as lg:
        assert lg.series("d_real") == ([4, 5], [0.5, 0.5])
        assert lg.series("d_loss")[0] == [1, 2, 3, 4, 5]
        assert list(csv_rows(lg.csv_path)[0]) == ["step", "d_loss", "g_loss", "d_real"]


# ----------------------------------------------------------------------------- images


def test_log_images_saves_a_png_grid_named_by_step_and_keeps_it(logger):
    x = torch.rand(16, 1, 28, 28, requires_grad=True) * 2 - 1
    path = logger.log_images(x, 1500)
    assert path == logger.dir / "images" / "step_0001500.png"
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (4 * 28 + 5 * 2, 4 * 28 + 5 * 2)
        assert np.array_equal(np.asarray(im), utils.images.to_uint8(utils.make_grid(x.detach())))
    assert len(logger.grids) == 1 and logger.grids[0].shape == (3, 122, 122) and logger.grid_steps == [1500]
    logger.close()
    image_events = [(ev.step, v) for ev in read_events(logger.dir / "tensorboard") for v in ev.summary.value
                    if v.tag == "samples"]
    assert len(image_events) == 1 and image_events[0][0] == 1500 and image_events[0][1].image.width == 122


def test_grids_and_grid_steps_follow_the_logged_steps_for_the_animation(logger):
    for step in (0, 250, 500, 1000):
        logger.log_images(torch.full((4, 1, 8, 8), step / 500 - 1), step)
    assert logger.grid_steps == [0, 250, 500, 1000] and len(logger.grids) == 4
    names = sorted(p.name for p in (logger.dir / "images").iterdir())
    assert names == ["step_0000000.png", "step_0000250.png", "step_0000500.png", "step_0001000.png"]
    means = [g.mean().item() for g in logger.grids]
    assert means == sorted(means), "each grid is the one of its step, in order"


def test_log_images_uses_every_image_given_and_nrow(logger):
    x = torch.zeros(6, 784)  # flat MNIST vectors, as the vanilla GAN makes them
    with Image.open(logger.log_images(x, 3, nrow=3)) as im:
        assert im.size == (3 * 28 + 4 * 2, 2 * 28 + 3 * 2)  # 6 images: 3 columns, 2 rows


def test_log_images_permutes_channels_last_keeping_height_and_width(logger):
    nchw = torch.rand(4, 3, 20, 30) * 2 - 1
    path = logger.log_images(nchw.permute(0, 2, 3, 1).numpy(), 1)  # N x H x W x C numpy
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
        logger.log_images(torch.zeros(shape), 10)
    message = one_message(err.value)
    assert message.startswith("Logger.log_images:") and message.count("\n") == 0
    assert all(w in message for w in words), message
    assert list((logger.dir / "images").iterdir()) == [] and logger.grids == [] and logger.grid_steps == []


def test_save_gif_animates_every_logged_grid(logger, tmp_path):
    for step in range(3):
        logger.log_images(torch.full((4, 1, 8, 8), step - 1.0), step * 100)
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


def test_a_resumed_run_keeps_grids_up_to_its_step_and_a_fresh_one_drops_them(tmp_path):
    root = tmp_path / "run"
    frame = {s: torch.full((4, 1, 8, 8), s / 40 - 1) for s in (0, 20, 40, 60)}
    with utils.Logger("m", root=root, tensorboard=False) as lg:
        for s in (0, 20, 40, 60):
            lg.log_images(frame[s], s)
    (root / "images" / "epoch_000_batch_00000.png").write_bytes((root / "images" / "step_0000000.png").read_bytes())
    with utils.Logger("m", root=root, resume_step=40, tensorboard=False) as lg:
        assert lg.grid_steps == [0, 20, 40], "the grids saved before the kernel died come back, later ones do not"
        for grid, s in zip(lg.grids, lg.grid_steps, strict=True):
            assert np.array_equal(utils.images.to_uint8(grid), utils.images.to_uint8(utils.make_grid(frame[s])))
        assert sorted(p.name for p in (root / "images").iterdir()) == \
            ["step_0000000.png", "step_0000020.png", "step_0000040.png"], "later and old-style files are deleted"
        lg.log_images(torch.ones(4, 1, 8, 8), 40)  # the step of the checkpoint logged again after the resume
        assert lg.grid_steps == [0, 20, 40], "a frame logged again replaces its earlier copy"
        assert lg.grids[-1].min() == 1.0
        lg.log_images(frame[60], 60)
        with Image.open(lg.save_gif()) as im:
            assert im.n_frames == 4
    with utils.Logger("m", root=root, tensorboard=False) as lg:
        assert lg.grids == [] and lg.grid_steps == [], "a fresh run starts a new animation"
        assert not list((root / "images").glob("*.png")), "and deletes the old run's grids"


def test_resume_keeps_only_rows_and_grids_of_steps_done_before_the_checkpoint(tmp_path):
    root = tmp_path / "run"
    with utils.Logger("m", root=root, tensorboard=False) as lg:
        for s in range(1, 9):
            lg.log(s, d_loss=float(s))
            if s % 2 == 0:
                lg.log_images(torch.zeros(1, 1, 4, 4), s)
    with utils.Logger("m", root=root, resume_step=5, tensorboard=False) as lg:
        assert [r["step"] for r in lg.history] == [1, 2, 3, 4, 5] and lg.grid_steps == [2, 4]


# ----------------------------------------------------------------------------- console


def test_display_status_prints_the_step_and_the_named_scalars(logger, capsys):
    line = logger.display_status(500, 2000, d_loss=torch.tensor(1.23456), g_loss=0.5,
                                 d_real=torch.full((8, 1), 0.75), d_fake=np.float32(0.25))
    assert capsys.readouterr().out == line + "\n"
    assert line == "step 500/2,000 · d_loss 1.235 · g_loss 0.5 · d_real 0.75 · d_fake 0.25"
    assert logger.display_status(12345, 120000) == "step 12,345/120,000"
    assert logger.history == [], "showing the status logs nothing"
