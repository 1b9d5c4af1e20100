"""Notebook 05's smoke run on an image folder: its peak memory must not grow with the number of images.

The run is made twice, on 2,000 and on 20,000 CelebA-sized JPEG files (COURSE_IMAGE_FOLDER), each in a private
copy of the course as tests/test_notebooks_run.py makes one. The peak is that of the whole process tree of the
kernel (the kernel and its DataLoader workers): the sum of their resident memory, sampled every 50 ms. Decoding
the whole folder into memory would cost 20,000 x 3 x 64 x 64 x 4 bytes = 983 MB on the larger folder.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from pathlib import Path

import nbformat
import psutil
import pytest
import torch
from conftest import course_copy
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "05_dcgan.ipynb"
SIZES = (2_000, 20_000)
MAX_GROWTH_MB = 150


def loader_speed():
    spec = importlib.util.spec_from_file_location("loader_speed", ROOT / "benchmarks" / "loader_speed.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["loader_speed"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def celeba_like(tmp_path_factory) -> dict[int, Path]:
    """CelebA-sized (178x218) JPEG folders of 2,000 and 20,000 files: 50 pictures, their bytes written in turn."""
    root = tmp_path_factory.mktemp("celeba_like")
    make_folder = loader_speed().make_folder
    return {n: make_folder(root / f"{n}", n) for n in SIZES}


class TreePeak:
    """The peak, in bytes, of the summed resident memory of this process's descendants, sampled every `every` s."""

    def __init__(self, every: float = 0.05):
        self.every, self.peak, self.samples = every, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        me = psutil.Process()
        while not self._stop.wait(self.every):
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:  # a worker that has just exited
                    pass
            self.peak, self.samples = max(self.peak, total), self.samples + 1

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def run_smoke(where: Path, image_folder: Path) -> tuple[Path, int]:
    """Run notebook 05 in the smoke profile on `image_folder` in a copy of the course; (the copy, peak bytes)."""
    course = course_copy(where, NOTEBOOK.stem)
    nb = nbformat.read(course / "notebooks" / NOTEBOOK.name, as_version=4)
    saved = dict(os.environ)
    # a fixed malloc threshold keeps glibc's own heap growth (about +-45 MB from run to run) out of the comparison
    os.environ.update({"COURSE_PROFILE": "smoke", "COURSE_OFFLINE": "1", "MPLBACKEND": "agg",
                       "COURSE_IMAGE_FOLDER": str(image_folder), "MALLOC_MMAP_THRESHOLD_": "131072"})
    try:
        with TreePeak() as peak:
            NotebookClient(nb, timeout=300, kernel_name="python3",
                           resources={"metadata": {"path": str(course / "notebooks")}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert peak.samples > 10, "the memory sampler hardly ran"
    return course, peak.peak


@pytest.mark.skipif(not NOTEBOOK.exists(), reason="notebook 05 is not in this checkout")
def test_peak_memory_of_the_image_folder_run_does_not_grow_with_the_folder(celeba_like, tmp_path):
    peaks = {}
    for n, folder in celeba_like.items():
        course, peaks[n] = run_smoke(tmp_path / f"run_{n}", folder)
        samples = torch.load(course / "runs" / "05_dcgan" / "samples.pt", weights_only=True)
        assert samples.shape[1:] == (3, 64, 64), (
            f"with COURSE_IMAGE_FOLDER set, notebook 05's smoke run trained on {tuple(samples.shape[1:])} images, "
            "not on the 64x64 RGB images of the folder: this test measures nothing until it does"
        )
    mb = {n: peak / 2**20 for n, peak in peaks.items()}
    print("peak memory of the kernel and its workers: "
          + ", ".join(f"{n:,} images {m:,.0f} MB" for n, m in mb.items()))
    small, large = SIZES
    assert mb[large] - mb[small] <= MAX_GROWTH_MB, (
        f"the peak grew by {mb[large] - mb[small]:.0f} MB from {small:,} to {large:,} images "
        f"({mb[small]:.0f} -> {mb[large]:.0f} MB); at most {MAX_GROWTH_MB} MB is allowed"
    )
