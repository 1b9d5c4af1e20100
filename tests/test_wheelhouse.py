"""`make wheelhouse` then `make setup-offline`: a room with no Wi-Fi installs the course from a folder of wheels.

The real targets run on a subset of requirements.txt (the whole set is gigabytes of torch): the wheels are
downloaded from the registry into a temporary wheelhouse, then a fresh virtualenv is installed from it with the
network cut off (a network namespace of its own where the machine allows one, pip's index switched off always)
and with no pip configuration of this machine's. A requirement missing from the wheelhouse must then fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUBSET = ("tqdm", "tensorboardX")  # small wheels, one with dependencies of its own (numpy, protobuf, packaging)


def _pins() -> dict[str, str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return {line.split("==")[0].lower(): line.split("==")[1] for line in lines if "==" in line and not line.startswith("#")}


def _offline_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    dead = "http://127.0.0.1:9"  # nothing listens there: any attempt to reach a registry fails at once
    return env | {"PIP_CONFIG_FILE": os.devnull, "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "http_proxy": dead,
                  "https_proxy": dead, "PIP_NO_CACHE_DIR": "1", "HOME": str(tmp_path)}


def _without_network() -> list[str]:
    """A prefix that runs a command in a network namespace with no interfaces, where the machine allows it."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []


def test_make_wheelhouse_downloads_every_requirement():
    dry = subprocess.run(["make", "-n", "wheelhouse"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "pip download" in dry and "-r requirements.txt" in dry and "--only-binary=:all:" in dry, dry


def test_attendees_install_from_the_wheelhouse_with_no_network(tmp_path):
    pins = _pins()
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("".join(f"{name}=={pins[name.lower()]}\n" for name in SUBSET))
    wheelhouse = tmp_path / "wheelhouse"
    down = subprocess.run(["make", "-s", "wheelhouse", f"WHEELHOUSE={wheelhouse}", f"REQS={reqs}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert down.returncode == 0, down.stdout + down.stderr
    wheels = sorted(p.name for p in wheelhouse.iterdir())
    assert wheels and all(name.endswith(".whl") for name in wheels), wheels

    venv = tmp_path / "attendee"
    offline = _without_network()
    setup = subprocess.run(offline + ["make", "-s", "setup-offline", f"VENV={venv}", f"WHEELHOUSE={wheelhouse}",
                                      f"REQS={reqs}"], cwd=ROOT, env=_offline_env(tmp_path),
                           capture_output=True, text=True, timeout=600)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    check = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import importlib.metadata as m; print(m.version('tqdm'), m.version('tensorboardX'))"],
                           capture_output=True, text=True, check=True)
    assert check.stdout.split() == [pins["tqdm"], pins["tensorboardx"]]
    assert (venv / ".installed").exists(), "make lab starts afterwards without going online"

    reqs.write_text(reqs.read_text() + f"scipy=={_dev_pin('scipy')}\n")  # not in the wheelhouse
    missing = subprocess.run(offline + ["make", "-s", "setup-offline", f"VENV={venv}", f"WHEELHOUSE={wheelhouse}",
                                        f"REQS={reqs}"], cwd=ROOT, env=_offline_env(tmp_path),
                             capture_output=True, text=True, timeout=600)
    assert missing.returncode != 0 and "scipy" in (missing.stdout + missing.stderr), "nothing comes from elsewhere"


def _dev_pin(name: str) -> str:
    for line in (ROOT / "requirements-dev.txt").read_text().splitlines():
        if line.lower().startswith(f"{name}=="):
            return line.split("==")[1]
    pytest.fail(f"{name} is not pinned in requirements-dev.txt")
