"""A real notebook killed mid-training with SIGKILL, then run again: it resumes and ends where an uninterrupted run ends.

Notebook 04 runs in a private copy of the course (as tests/test_notebooks_run.py does) with a few hundred steps
and a checkpoint every half second, executed by `jupyter nbconvert --execute` in a subprocess. The test kills the
kernel process itself once a checkpoint of a step in the middle exists, runs the notebook again, and compares
the final checkpoint, the best checkpoint, the samples and the logged steps with a run that was never killed.
"""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import torch
from conftest import course_copy

ROOT = Path(__file__).resolve().parent.parent
STEM = "04_vanilla_gan"
STEPS = 240
OVERRIDES = f"""STEPS = {STEPS}
TRACK_EVERY = 80
SHOW_EVERY = {STEPS}
import utils.resume
utils.resume.CHECKPOINT_EVERY_S = 0.3  # the cpu profile saves every 30 s; here the run lasts seconds"""


def make_copy(where: Path) -> Path:
    """A private course folder with the notebook, its overrides after the parameters cell."""
    return course_copy(where, STEM, OVERRIDES)


def execute(course: Path, **env) -> subprocess.Popen:
    """Start executing the notebook in place in a subprocess (smoke profile, offline, two threads)."""
    env = {**os.environ, "COURSE_PROFILE": "smoke", "COURSE_OFFLINE": "1", "MPLBACKEND": "agg",
           "OMP_NUM_THREADS": "2", **env}
    notebook = course / "notebooks" / f"{STEM}.ipynb"
    return subprocess.Popen([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
                             "--inplace", "--ExecutePreprocessor.timeout=300", str(notebook)],
                            cwd=course / "notebooks", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def checkpoint_step(path: Path):
    try:
        return torch.load(path, weights_only=True)["step"]
    except (FileNotFoundError, EOFError, RuntimeError):
        return None


def kill_kernel_mid_training(proc: subprocess.Popen, run_dir: Path, timeout: float = 240) -> int:
    """SIGKILL the kernel (the ipykernel child of `proc`) once a checkpoint between the first and the last step exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        step = checkpoint_step(run_dir / "checkpoint.pt")
        if step is not None and 60 <= step < STEPS - 60:
            kernels = [p for p in psutil.Process(proc.pid).children(recursive=True)
                       if "ipykernel" in " ".join(p.cmdline())]
            assert kernels, "no kernel process found"
            for kernel in kernels:
                kernel.send_signal(signal.SIGKILL)
            proc.communicate(timeout=120)
            return step
        assert proc.poll() is None, f"the notebook ended before it could be killed:\n{proc.communicate()[0]}"
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("no checkpoint in the middle of training appeared")


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    return out


def outputs(course: Path) -> str:
    nb = nbformat.read(course / "notebooks" / f"{STEM}.ipynb", as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def logged_rows(run_dir: Path) -> list[dict]:
    """scalars.csv as numbers (an empty cell is a scalar not logged at that step)."""
    with open(run_dir / "scalars.csv", newline="") as fh:
        return [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(fh)]


def test_a_killed_notebook_resumes_and_ends_with_the_uninterrupted_generator(tmp_path):
    killed = make_copy(tmp_path / "killed")
    run_dir = killed / "runs" / STEM
    step = kill_kernel_mid_training(execute(killed), run_dir)
    assert not (run_dir / "samples.pt").exists(), "the kill came after training had finished"

    finish(execute(killed))
    text = outputs(killed)
    resumed_at = int(text.split("resumed at step ")[1].split()[0].replace(",", ""))
    assert resumed_at >= step, f"resumed at {resumed_at}, but a checkpoint of step {step} existed"
    assert resumed_at < STEPS, "the second run should have trained the remaining steps"
    assert f"resumed at step {resumed_at:,} of {STEPS:,}" in text

    straight = make_copy(tmp_path / "straight")
    finish(execute(straight))
    assert "training from step 0" in outputs(straight)

    a = torch.load(straight / "runs" / STEM / "checkpoint.pt", weights_only=True)
    b = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == STEPS, "both runs reach the planned number of steps"
    for model in ("G", "D"):
        for key, value in a["models"][model].items():
            assert torch.equal(value, b["models"][model][key]), f"{model}.{key} differs after resuming"
    for name in ("g", "d"):
        steps = {int(s["step"]) for s in b["optimizers"][name]["state"].values()}
        assert steps == {STEPS}, f"optimizer {name} did not count every step: {steps}"
    best_a = torch.load(straight / "runs" / STEM / "best.pt", weights_only=True)
    best_b = torch.load(run_dir / "best.pt", weights_only=True)
    assert best_a["step"] == best_b["step"]
    assert all(torch.equal(v, best_b["models"]["G"][k]) for k, v in best_a["models"]["G"].items())
    assert torch.equal(torch.load(straight / "runs" / STEM / "samples.pt", weights_only=True),
                       torch.load(run_dir / "samples.pt", weights_only=True)), "the saved samples differ"
    rows = logged_rows(straight / "runs" / STEM)
    steps = [r["step"] for r in rows if "d_loss" in r]
    assert steps == sorted(set(steps)) and 0 < steps[0] and steps[-1] == STEPS, \
        "the losses are logged once per step logged, by steps done (1 after the first update, STEPS at the end)"
    assert logged_rows(run_dir) == rows, "the killed and resumed run logged what the uninterrupted run logged, no step twice"

    finish(execute(straight))  # a finished run, run again, only loads its last checkpoint
    assert f"resumed at step {STEPS:,} of {STEPS:,}" in outputs(straight)
    assert logged_rows(straight / "runs" / STEM) == rows, "a finished run's record is kept when it is run again"
    assert torch.equal(torch.load(straight / "runs" / STEM / "samples.pt", weights_only=True),
                       torch.load(run_dir / "samples.pt", weights_only=True))
