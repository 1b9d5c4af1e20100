"""Kill a training run with SIGKILL at several points and resume it; stop a run whose loss turns NaN."""

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).with_name("tiny_train.py")
EPOCHS, BATCHES_PER_EPOCH = 5, 4


def start(run_dir, *flags):
    env = {**os.environ, "COURSE_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(SCRIPT), str(run_dir), str(EPOCHS), *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def kill_after(proc, *markers, timeout=120):
    """SIGKILL `proc` as soon as it has printed the lines `markers` in turn; return everything it printed."""
    lines, waiting = [], list(markers)
    for line in proc.stdout:
        lines.append(line)
        if line.strip() == waiting[0]:
            waiting.pop(0)
        if not waiting:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout)
            return "".join(lines)
    proc.wait(timeout)
    raise AssertionError(f"never printed {waiting!r}:\n{''.join(lines)}")


def finish(proc, timeout=120):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def checkpoint(run_dir):
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)  # raises if corrupt
    return state


def logged_steps(run_dir):
    with open(run_dir / "scalars.csv", newline="") as fh:
        return [int(float(r["step"])) for r in csv.DictReader(fh)]


def test_killed_runs_resume_without_loss_or_repeats(tmp_path):
    run = tmp_path / "killed"

    # 1. killed in the middle of epoch 1 (after epoch 0's checkpoint)
    kill_after(start(run), "EPOCH_DONE 0")
    assert checkpoint(run)["step"] == 0

    # 2. resumed, then killed in the middle of writing epoch 2's checkpoint
    out = kill_after(start(run, "--slow-save"), "SAVING 2", "HALF_WRITTEN")
    assert "RESUMED 1" in out
    assert checkpoint(run)["step"] == 1, "the checkpoint being written when killed must not replace the last good one"
    assert list(run.glob(".checkpoint.pt.*.tmp")), "the kill landed during a write (a partial temporary file exists)"

    # 3. resumed again, to the end
    out = finish(start(run))
    assert "RESUMED 2" in out
    final = checkpoint(run)
    assert final["step"] == EPOCHS - 1
    assert not list(run.glob("*.tmp")) and not list(run.glob(".*.tmp")), "stale temporary files are cleaned up"

    # every step logged exactly once, in order, none repeated after a resume
    steps = logged_steps(run)
    assert steps == list(range(EPOCHS * BATCHES_PER_EPOCH))

    # the optimizer state continued: Adam counted every step of every epoch
    for name in ("g_optimizer", "d_optimizer"):
        adam_steps = {int(s["step"]) for s in final["optimizers"][name]["state"].values()}
        assert adam_steps == {EPOCHS * BATCHES_PER_EPOCH}, f"{name} restarted its state: {adam_steps}"

    # and the result is exactly that of a run that was never interrupted
    finish(start(tmp_path / "straight"))
    straight = checkpoint(tmp_path / "straight")
    for model in ("generator", "discriminator"):
        for key, value in straight["models"][model].items():
            assert torch.equal(value, final["models"][model][key]), f"{model}.{key} differs after resuming"


def test_nan_guard_stops_within_one_step_and_keeps_the_last_checkpoint(tmp_path):
    run = tmp_path / "nan"
    proc = start(run, "--poison-at", "9")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    message = out.strip().splitlines()[-1]
    assert "NonFiniteLossError" in message and "d_loss became nan at step 9" in message, out
    assert "09_gan_pitfalls" in message
    assert logged_steps(run) == list(range(9)), "nothing was logged from the NaN step on"
    assert checkpoint(run)["step"] == 1, "the checkpoint of the last good epoch is kept"
