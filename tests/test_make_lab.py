"""`make lab` starts JupyterLab, as root too (Docker workshop images and Colab-like hosts run as root).

JupyterLab refuses root unless given --allow-root; the Makefile passes it only when `id -u` is 0. The test runs the
real target with a free port and no browser, waits until the server answers HTTP, then stops it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from conftest import free_port, stop_group

ROOT = Path(__file__).resolve().parent.parent



def test_make_lab_passes_allow_root_only_to_root():
    dry = subprocess.run(["make", "-n", "lab"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    line = next(line for line in dry.splitlines() if "jupyter lab" in line)
    assert ("--allow-root" in line) == (os.geteuid() == 0), line


def test_make_lab_starts_and_answers_http(tmp_path):
    port = free_port()
    env = os.environ | {
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_DATA_DIR": str(tmp_path / "data"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
    }
    args = f"--no-browser --ip=127.0.0.1 --port={port} --port-retries=0 --IdentityProvider.token=test"
    lab = subprocess.Popen(["make", "-s", "lab", f"LAB_ARGS={args}"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, answer = time.monotonic() + 120, None
        while time.monotonic() < deadline and lab.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token=test", timeout=5) as response:
                    answer = (response.status, response.read(4000).decode("utf-8", "replace"))
                    break
            except OSError:
                time.sleep(0.5)
        if answer is None:
            os.killpg(lab.pid, signal.SIGKILL)
            output = lab.communicate(timeout=10)[0].decode("utf-8", "replace")
            raise AssertionError(f"make lab did not answer on port {port} (exit {lab.returncode}):\n{output[-3000:]}")
        assert answer[0] == 200 and "JupyterLab" in answer[1], answer
    finally:
        stop_group(lab)
