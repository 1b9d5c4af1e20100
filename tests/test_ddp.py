"""scaling/train_ddp.py on the CPU: torchrun with 2 processes (gloo) against 1, batch norm, a kill and a resume, and
which rank writes files. Each run is a few smoke-profile steps of notebook 05's DCGAN or notebook 08's WGAN-GP."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scaling" / "train_ddp.py"
TRAPS = ROOT / "scaling" / "ddp_traps.py"
TORCHRUN = Path(sys.executable).with_name("torchrun")


def launch(nproc: int, *args, script: Path = SCRIPT) -> list[str]:
    """The torchrun command line for `nproc` processes on this machine."""
    runner = [str(TORCHRUN)] if TORCHRUN.is_file() else [sys.executable, "-m", "torch.distributed.run"]
    return [*runner, "--standalone", f"--nproc_per_node={nproc}", str(script), *map(str, args)]


ENV = {**os.environ, "COURSE_OFFLINE": "1", "COURSE_PROFILE": "smoke", "PYTHONDONTWRITEBYTECODE": "1",
       "OMP_NUM_THREADS": "1", "MPLBACKEND": "agg"}


def torchrun(nproc: int, *args, timeout: float = 180, script: Path = SCRIPT) -> str:
    done = subprocess.run(launch(nproc, *args, script=script), cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=timeout)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    return out


def weights(folder: Path) -> dict:
    return torch.load(folder / "checkpoint.pt", map_location="cpu", weights_only=True)


def test_two_processes_with_half_batches_take_the_steps_of_one_with_the_whole_batch(tmp_path):
    # Batch norm normalises each process's share of the batch with that share's statistics, so 2 x B/2 and
    # 1 x B differ by design wherever it sits (SyncBatchNorm fixes that on GPUs only). Notebook 08's critic has
    # none; --no-batchnorm takes it out of its generator too. float64 leaves only rounding between the two.
    common = ("--model", "wgan-gp", "--steps", 3, "--batch", 32, "--no-batchnorm", "--float64", "--grid-every", 0,
              "--n-samples", 64, "--threads", 1)
    one = torchrun(1, *common, "--out", tmp_path / "one")
    two = torchrun(2, *common, "--out", tmp_path / "two")
    assert "global batch 32 = 1 × 32" in one and "global batch 32 = 2 × 16" in two
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert a["step"] == b["step"] == 3
    for name in ("G", "D"):
        for key, value in a["models"][name].items():
            assert value.dtype == torch.float64
            assert torch.allclose(value, b["models"][name][key], rtol=0, atol=1e-10), \
                f"{name}.{key}: 2 processes end {(value - b['models'][name][key]).abs().max():.3g} away from 1"
    moments = [s["exp_avg"] for s in a["optimizers"]["g"]["state"].values()]
    assert moments and all(m.abs().sum() > 0 for m in moments), "G took no step: the comparison proves nothing"
    rows = [list(csv.DictReader(open(tmp_path / f / "scalars.csv"))) for f in ("one", "two")]
    assert len(rows[0]) == len(rows[1]) == 3
    for r1, r2 in zip(*rows):  # the logged losses are the means over the global batch either way
        assert all(abs(float(r1[k]) - float(r2[k])) < 1e-9 for k in ("d_loss", "g_loss", "penalty"))


def _writes(out: str, rank: int) -> list[str]:
    return re.findall(rf"^\[rank {rank} writes\] (.*)$", out, re.M)


def test_the_batch_norm_dcgan_trains_on_two_processes_and_only_rank_0_writes(tmp_path):
    run = tmp_path / "run"
    out = torchrun(2, "--model", "dcgan", "--steps", 4, "--grid-every", 2, "--n-samples", 64, "--report-writes",
                   "--out", run)
    assert "inplace operation" not in out and "finished 4 steps" in out
    assert "notebook 05's DCGAN" in out and "batch norm removed" not in out
    rank0, rank1 = _writes(out, 0), _writes(out, 1)
    assert any(p.endswith("checkpoint.pt") for p in rank0) and any(p.endswith("scalars.csv") for p in rank0), \
        "rank 0 reports none of its writes: the check below would prove nothing"
    # importing matplotlib (the notebooks' setup cell) makes sure its cache folders exist, on every rank
    elsewhere = [p for p in rank1 if "matplotlib" not in p]
    assert not elsewhere, f"rank 1 wrote {elsewhere}"
    files = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())
    assert {"checkpoint.pt", "scalars.csv", "samples.pt", "info.json", "images/step_0000002.png"} <= set(files), files
    samples = torch.load(run / "samples.pt", weights_only=True)
    assert samples.shape == (64, 1, 32, 32) and samples.abs().max() <= 1


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds torchrun's workers through /proc")
def test_killed_processes_resume_from_the_checkpoint_to_the_uninterrupted_result(tmp_path):
    steps = 150
    args = ("--model", "dcgan", "--steps", steps, "--grid-every", 0, "--print-every", 50, "--n-samples", 64,
            "--checkpoint-every", 0)
    run = tmp_path / "killed"
    proc = subprocess.Popen(launch(2, *args, "--out", run), cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            workers = _children(proc.pid)  # torchrun starts each worker in a session of its own
            if (run / "checkpoint.pt").is_file() and weights(run)["step"] >= 10:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed:\n" + proc.stdout.read()[-2000:]
        assert len(workers) == 2, f"expected 2 worker processes under torchrun, found {workers}"
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.stdout.close()
    time.sleep(0.5)
    assert not any(Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
                   for pid in workers), "a worker survived SIGKILL"
    saved = weights(run)["step"]
    assert 10 <= saved < steps, f"killed at step {saved} of {steps}"

    out = torchrun(2, *args, "--out", run)
    assert f"resumed at step {saved:,} of {steps:,}" in out, out[-2000:]
    assert f"finished {steps} steps" in out
    logged = [int(r["step"]) for r in csv.DictReader(open(run / "scalars.csv"))]
    assert logged == list(range(1, steps + 1)), "each step is logged once, with none lost or repeated"

    torchrun(2, *args, "--out", tmp_path / "whole")  # the same run, never killed
    resumed, whole = weights(run), weights(tmp_path / "whole")
    for name in ("G", "D"):
        for key, value in whole["models"][name].items():
            assert torch.equal(value, resumed["models"][name][key]), f"{name}.{key} differs after the resume"


def test_the_traps_script_springs_each_trap_and_its_fix(tmp_path):
    out = torchrun(2, script=TRAPS)
    assert "Expected to have finished reduction in the prior iteration" in out
    assert "modified by an inplace operation" in out
    apart = [float(x) for x in re.findall(r"critics differ by (\S+)$", out, re.M)]
    assert len(apart) == 2 and apart[0] > 1e-4 and apart[1] == 0, f"gradients taken by hand, then by backward: {apart}"
    assert "share 16 of their 16 images" in out and "share 0 images" in out


def test_an_image_folder_is_sharded_and_trains_the_rgb_model(tmp_path):
    from PIL import Image

    folder = tmp_path / "faces"
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(12):
        pixels = (torch.rand(70, 60, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{i:02d}.{'png' if i % 2 else 'jpg'}")
    out = torchrun(2, "--model", "dcgan", "--image-folder", folder, "--g-channels", 8, 4, 4, 2, "--steps", 3,
                   "--batch", 4, "--workers", 0, "--grid-every", 0, "--n-samples", 8, "--out", tmp_path / "run")
    assert "64x64x3" in out and "12 images" in out and "global batch 4 = 2 × 2" in out
    first = re.search(r"rank 0 \[([\d, ]+)\] · rank 1 \[([\d, ]+)\]", out)
    assert first and not set(first[1].split(", ")) & set(first[2].split(", ")), "the ranks' shards overlap"
    assert torch.load(tmp_path / "run" / "samples.pt", weights_only=True).shape == (8, 3, 64, 64)


def test_a_nan_stops_every_rank_at_the_same_step(tmp_path):
    # an infinite learning rate turns the first update into inf and the next losses into NaN
    done = subprocess.run(launch(2, "--model", "dcgan", "--steps", 4, "--lr", "inf", "--out", tmp_path / "run"),
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=180)
    out = done.stdout + done.stderr
    assert done.returncode != 0
    stops = re.findall(r"^\[rank(\d)\]: .*NonFiniteLossError: (\w+) became nan at step (\d+)", out, re.M)
    assert sorted(r for r, *_ in stops) == ["0", "1"] and len({s[1:] for s in stops}) == 1, stops
