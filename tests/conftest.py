"""Shared fixtures for the unit tests of utils/: a loopback-only network, a local HTTP mirror, IDX files.

The unit tests never reach the network: modules that use `no_network` can only open connections to
127.0.0.1, and the download tests serve their files from a server they start themselves.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.server
import os
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path

import matplotlib
import nbformat
import numpy as np
import pytest

from utils.data import FILES  # split -> (images file, labels file), the names the course reads

matplotlib.use("agg")  # show_images in a test must not open a window

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture
def no_network(monkeypatch):
    """Refuse every connection (and name lookup) except to this machine's loopback address."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and str(host) not in LOOPBACK:
            raise socket.gaierror(f"unit tests may not look up {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:
            raise ConnectionRefusedError(f"unit tests may not connect to {address[0]}")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture
def offline(monkeypatch):
    """COURSE_OFFLINE=1: the default data root is read, never downloaded into (tests never write data/)."""
    monkeypatch.setenv("COURSE_OFFLINE", "1")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@contextlib.contextmanager
def served(folder: Path):
    """The URL of a static HTTP server on 127.0.0.1 (a free port) serving `folder`, as `python -m http.server`
    would; stopped afterwards."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        assert not thread.is_alive(), "the test HTTP server did not stop"


@pytest.fixture
def http_mirror(tmp_path):
    """(folder, url): a static HTTP server on 127.0.0.1 (a free port) serving `folder`; stopped afterwards."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    with served(folder) as url:
        yield folder, url


@pytest.fixture
def dead_url():
    """A loopback URL nobody listens on (a port that was free a moment ago): connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ----------------------------------------------------------------------------- IDX files


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: 0, 0, 0x08 (unsigned bytes), ndim, big-endian sizes, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write `array` as an IDX file, gzipped when `path` ends in .gz."""
    data = idx_bytes(array)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    return path


def make_idx_dataset(folder: Path, n_train: int = 30, n_test: int = 20, seed: int = 0) -> dict:
    """The four gzipped IDX files of a tiny random MNIST-like set in `folder`; returns the arrays by split."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(folder / (FILES[split][0] + ".gz"), images)
        write_idx(folder / (FILES[split][1] + ".gz"), labels)
        arrays[split] = (images, labels)
    return arrays


def files_in(folder: Path) -> list[str]:
    """Every file under `folder` (hidden ones too), relative, sorted: to show nothing is left behind."""
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file())


def one_message(exc: BaseException) -> str:
    """The exception's message, after checking it is shown alone: no chained traceback from deep inside a library."""
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__), (
        f"{type(exc).__name__} is chained to {exc.__cause__ or exc.__context__!r}: the learner sees two tracebacks"
    )
    message = str(exc)
    assert message.strip() and "Traceback" not in message
    return message


# ----------------------------------------------------------------------------- a private copy of the course

ROOT = Path(__file__).resolve().parent.parent


def course_copy(where: Path, stem: str, overrides: str = "") -> Path:
    """<where>/course with utils/ copied, data/ linked and notebooks/<stem>.ipynb; returns the course folder.

    A test runs a notebook there so that it never shares a runs/ folder with nbval's run of the same notebook in
    another worker. `overrides` is code run right after the cell tagged `parameters`, as papermill injects it.
    Several notebooks may be copied into the same course.
    """
    course = where / "course"
    if not course.exists():
        shutil.copytree(ROOT / "utils", course / "utils", ignore=shutil.ignore_patterns("__pycache__"))
        (course / "data").symlink_to(ROOT / "data", target_is_directory=True)
        (course / "notebooks").mkdir()
    nb = nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
    if overrides:
        at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", []))
        nb.cells.insert(at + 1, nbformat.v4.new_code_cell(overrides))
    nbformat.write(nb, course / "notebooks" / f"{stem}.ipynb")
    return course


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(proc: subprocess.Popen) -> None:
    """Stop a server started with start_new_session=True and everything it started: SIGTERM, then SIGKILL."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
