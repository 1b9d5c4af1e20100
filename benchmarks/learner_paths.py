"""The offline path against the full-size-data path, measured in one run on the notebooks themselves.

    python benchmarks/learner_paths.py                     # 03, 04 and 05 in the cpu profile, both paths
    python benchmarks/learner_paths.py 04_vanilla_gan      # one notebook
    python benchmarks/learner_paths.py --store             # also keep the offline runs as the stored outputs

Each notebook runs top to bottom twice, in the cpu profile, one after the other:
  offline:   the course as cloned, no network, the shipped 5,000-digit subset (3,500 train, 500 val, 1,000 test);
  full size: the same code with a stand-in for a completed download in data/MNIST/raw/, where torchvision
             leaves the files: 60,000 training and 10,000 test digits, made from the shipped digits by small
             turns, scalings and shears, re-centred as MNIST is (make_full_size_standin), so no network is needed.
The offline run executes in the course folder itself (with --store its outputs are written back into
notebooks/, so they are the stored outputs); the full-size run executes in a private copy of the course.
It reports the wall time of each run, the ratio full-size / offline (the cpu-profile budget counts steps, so
the ratio should stay near 1, and at most 1.2), and the course metrics of each run's final samples.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ("03_autoencoders", "04_vanilla_gan", "05_dcgan")
TRAIN_COPIES, TEST_COPIES = 15, 10  # 15 x 4,000 = 60,000 training digits, 10 x 1,000 = 10,000 test digits
REPORT = re.compile(r"Frechet distance ([\d.]+) \(real-vs-real floor ([\d.]+), ratio ([\d.]+)x\) · coverage (\d+)/10")


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def distorted_copies(x: np.ndarray, copies: int, seed: int) -> np.ndarray:
    """`copies` versions of each digit: the first as it is, the others turned (up to 10 degrees), scaled (up to 8%)
    and sheared a little, then re-centred by their centre of mass as MNIST's digits are. New handwriting, in effect,
    rather than the same digits moved about (a shifted copy is a digit MNIST never holds: its centre is off)."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    src = torch.from_numpy(x).float().unsqueeze(1) / 255                     # (N, 1, 28, 28)
    out = [x]
    for _ in range(copies - 1):
        n = len(src)
        angle = (torch.rand(n, generator=g) * 2 - 1) * np.radians(10)
        scale = 1 + (torch.rand(n, generator=g) * 2 - 1) * 0.08
        shear = (torch.rand(n, generator=g) * 2 - 1) * 0.15
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle) / scale, (shear - torch.sin(angle)) / scale
        theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle) / scale, torch.cos(angle) / scale
        warped = F.grid_sample(src, F.affine_grid(theta, src.shape, align_corners=False), align_corners=False)
        warped = (warped.squeeze(1) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
        mass = warped.astype(np.float64) + 1e-9
        rows = (mass.sum(2) * np.arange(28)).sum(1) / mass.sum((1, 2))       # centre of mass, row
        cols = (mass.sum(1) * np.arange(28)).sum(1) / mass.sum((1, 2))       # centre of mass, column
        for i, (r, c) in enumerate(zip(np.rint(13.5 - rows).astype(int), np.rint(13.5 - cols).astype(int), strict=True)):
            warped[i] = np.roll(warped[i], (r, c), axis=(0, 1))
        out.append(warped)
    return np.concatenate(out)


def make_full_size_standin(raw: Path) -> Path:
    """Write 60,000 train and 10,000 test MNIST-like digits as the four gzipped IDX files of a download into `raw`."""
    sys.path.insert(0, str(ROOT))
    from utils.data import FILES, _subset

    raw.mkdir(parents=True, exist_ok=True)
    for split, copies, seed in (("train", TRAIN_COPIES, 1), ("test", TEST_COPIES, 2)):
        x, y = _subset(split)                                             # the shipped real digits of that split
        images, labels = distorted_copies(x, copies, seed), np.tile(y, copies)
        for name, array in zip(FILES[split], (images, labels), strict=True):
            (raw / f"{name}.gz").write_bytes(gzip.compress(_idx(array), compresslevel=1, mtime=0))
    return raw


def course_copy(where: Path, full_size: bool) -> Path:
    """A private course folder: utils/ and notebooks/ copied, the shipped data linked, optionally the stand-in."""
    course = where / "course"
    shutil.copytree(ROOT / "utils", course / "utils", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "notebooks", course / "notebooks")
    shutil.copy(ROOT / "requirements.txt", course)
    (course / "data").mkdir()
    for item in ("mnist_5k.npz", "classifiers", "pretrained"):
        (course / "data" / item).symlink_to(ROOT / "data" / item)
    if full_size:
        make_full_size_standin(course / "data" / "MNIST" / "raw")
    return course


def execute(course: Path, stem: str, store: bool = False, profile: str = "cpu") -> tuple[float, str]:
    """Run notebooks/<stem>.ipynb from scratch inside `course`; return (seconds, its text output)."""
    import nbformat
    from nbclient import NotebookClient

    path = course / "notebooks" / f"{stem}.ipynb"
    nb = nbformat.read(path, as_version=4)
    shutil.rmtree(course / "runs" / stem, ignore_errors=True)  # no checkpoint to resume: a run from step 0
    saved = dict(os.environ)
    os.environ.update({"COURSE_PROFILE": profile, "COURSE_OFFLINE": "1"})  # figures inline, as a learner sees them
    try:
        start = time.perf_counter()
        NotebookClient(nb, timeout=3600, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        seconds = time.perf_counter() - start
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if store:
        nbformat.write(nb, path)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    return seconds, text


def metrics_of(text: str) -> str:
    """The last course-metrics line a notebook printed, shortened."""
    found = REPORT.findall(text)
    if not found:
        return "no metrics printed"
    fd, floor, ratio, coverage = found[-1]
    return f"{ratio}x the floor ({fd} / {floor}), {coverage}/10 classes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", default=list(NOTEBOOKS))
    parser.add_argument("--store", action="store_true", help="write the offline runs' outputs into notebooks/")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        full = course_copy(Path(tmp), full_size=True)
        for stem in args.notebooks:
            offline_s, offline_text = execute(ROOT, stem, store=args.store)
            full_s, full_text = execute(full, stem)
            source = re.search(r"mnist: ([\d,]+) train images from (\S+)", full_text)
            rows.append((stem, offline_s, full_s, metrics_of(offline_text), metrics_of(full_text),
                         source.group(1) if source else "?"))
            print(f"{stem}: offline {offline_s:.0f} s, full size {full_s:.0f} s ({full_s / offline_s:.2f}x)", flush=True)
    print("\n| notebook | offline (3,500 train digits) | full size (stand-in, 59,500 train digits) | ratio | "
          "metrics offline | metrics full size |")
    print("|---|---|---|---|---|---|")
    for stem, off, full_s, m_off, m_full, n in rows:
        print(f"| {stem} | {off / 60:.1f} min | {full_s / 60:.1f} min ({n} train) | {full_s / off:.2f}x | {m_off} | {m_full} |")


if __name__ == "__main__":
    main()
