"""TensorBoard opens as the README says: `.venv/bin/tensorboard --logdir runs` shows what the course's Logger wrote.

A tensorboardX event file like the notebooks' is written to a temporary runs/ folder; TensorBoard is started on a
free loopback port and must list the run and serve its scalar, step by step.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from conftest import free_port, stop_group
from tensorboardX import SummaryWriter

ROOT = Path(__file__).resolve().parent.parent
TENSORBOARD = Path(sys.executable).parent / "tensorboard"



def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_the_readme_names_the_installed_tensorboard():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert ".venv/bin/tensorboard --logdir runs" in readme
    assert "not a course dependency" not in readme, "tensorboard is in requirements.txt"
    assert any(line.startswith("tensorboard==") for line in (ROOT / "requirements.txt").read_text().splitlines())
    assert TENSORBOARD.is_file(), f"{TENSORBOARD} is installed by requirements.txt"


def test_tensorboard_serves_a_runs_folder(tmp_path):
    runs = tmp_path / "runs"
    with SummaryWriter(str(runs / "04_vanilla_gan")) as writer:
        for step in range(5):
            writer.add_scalar("loss/d_loss", 1.0 / (step + 1), step)
    port = free_port()
    board = subprocess.Popen([str(TENSORBOARD), "--logdir", str(runs), "--host", "127.0.0.1", "--port", str(port),
                              "--reload_interval", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
    try:
        deadline, points = time.monotonic() + 90, None
        query = urllib.parse.urlencode({"run": "04_vanilla_gan", "tag": "loss/d_loss"})
        while time.monotonic() < deadline and board.poll() is None:
            try:
                if "04_vanilla_gan" in _get(f"http://127.0.0.1:{port}/data/runs"):
                    points = _get(f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?{query}")
                    if len(points) == 5:
                        break
            except OSError:
                pass
            time.sleep(0.5)
        if board.poll() is not None:
            raise AssertionError("tensorboard exited:\n" + board.communicate()[0].decode("utf-8", "replace")[-3000:])
        assert points and [p[1] for p in points] == list(range(5)), f"the scalar's steps: {points}"
        assert abs(points[-1][2] - 0.2) < 1e-6
    finally:
        stop_group(board)
