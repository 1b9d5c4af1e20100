"""Image-folder loading speed: FolderBatches' images per second at 64x64 on CelebA-sized JPEG files.

    python benchmarks/loader_speed.py            # 4,000 files of 178x218, JPEG quality 95 (as CelebA)
    python benchmarks/loader_speed.py --quick    # 1,000 files, one epoch per measurement

The files (smooth photo-like pictures: gradients, blurred shapes and a little sensor noise) are made once in a
temporary folder and reused. Each row times `FolderBatches(...).endless()` over two epochs after a warm-up
(worker start and the first batches): JPEG draft mode with 0, 1 and 2 workers (and one per core, where there are
more), and the full decode with 2 for comparison. The CPU time per image (all processes) shows the cost of a
decode even when other programs share the cores and the images per second drop.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from utils.imagefolder import FolderBatches, ImageFolder, default_workers  # noqa: E402

CELEBA_N, CELEBA_SIZE = 202_599, (178, 218)  # CelebA's aligned-and-cropped faces: count, width x height


def photo_like(rng: np.random.Generator, size=CELEBA_SIZE) -> Image.Image:
    """A smooth picture with a photo's statistics: a colour gradient, a few blurred ellipses, sensor noise."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    c0, c1, d = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3), rng.uniform(-1, 1, 2)
    t = np.clip(0.5 + d[0] * (x - 0.5) + d[1] * (y - 0.5), 0, 1)[..., None]
    im = Image.fromarray((c0 + (c1 - c0) * t).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    for _ in range(rng.integers(3, 7)):
        cx, cy, rx, ry = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(10, w / 2), rng.uniform(10, h / 2)
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    pixels = np.asarray(im.filter(ImageFilter.GaussianBlur(rng.uniform(1.5, 4)))).astype(np.float32)
    pixels += rng.normal(0, 3, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def make_folder(folder: str | os.PathLike, n: int, distinct: int = 50, seed: int = 0) -> Path:
    """`n` CelebA-like JPEG files 000001.jpg ... in `folder`: `distinct` pictures encoded once (quality 95), their
    bytes written in turn. A folder already holding the same set is reused."""
    folder = Path(folder)
    done = folder / f".complete-{n}-{distinct}-{seed}"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    encoded = []
    for _ in range(distinct):
        buf = io.BytesIO()
        photo_like(rng).save(buf, "JPEG", quality=95)
        encoded.append(buf.getvalue())
    for i in range(n):
        (folder / f"{i + 1:06d}.jpg").write_bytes(encoded[i % distinct])
    done.touch()
    return folder


def cpu_seconds() -> float:
    """CPU time used so far by this process and its DataLoader workers."""
    me = psutil.Process()
    return sum(sum(p.cpu_times()[:2]) for p in [me, *me.children()])


def images_per_second(folder: Path, workers: int, draft: bool, batch: int, epochs: float) -> tuple[float, float]:
    """Images per second and CPU milliseconds per image (all processes) of FolderBatches.endless()."""
    batches = FolderBatches(folder, size=64, batch_size=batch, workers=workers, draft=draft)
    it = batches.endless()
    for _ in range(max(2, 2 * workers)):  # warm-up: workers started, their first batches decoded
        next(it)
    steps = max(1, round(epochs * len(batches)))
    start, cpu = time.perf_counter(), cpu_seconds()
    for _ in range(steps):
        next(it)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    batches.close()
    return steps * batch / seconds, 1000 * cpu / (steps * batch)


def draft_difference(folder: Path, k: int = 50) -> tuple[float, int]:
    """Mean and largest absolute difference (0-255 levels) between draft and full decodes of k images."""
    fast, full = ImageFolder(folder, 64), ImageFolder(folder, 64, draft=False)
    diffs = [np.abs(fast.decode(i).astype(int) - full.decode(i).astype(int)) for i in range(k)]
    return float(np.mean(diffs)), int(np.max(diffs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1,000 files, one epoch per measurement")
    parser.add_argument("-n", type=int, default=None, help="number of files (default 4,000; --quick 1,000)")
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    n, epochs = args.n or (1_000 if args.quick else 4_000), 1 if args.quick else 2
    folder = make_folder(Path(tempfile.gettempdir()) / f"amazing_gans_celeba_like_{n}", n)
    cores = default_workers()
    print(f"{n:,} JPEG files of {CELEBA_SIZE[0]}x{CELEBA_SIZE[1]} (quality 95) in {folder}; {cores} cores; "
          f"batch {args.batch}, {epochs} epoch(s) per row after a warm-up\n")
    rows = [(w, True) for w in sorted({0, 1, 2, cores})] + [(2, False)]  # every core, where there are more
    rates = {}
    print("| decode | workers | images/s | vs. 0 workers | CPU ms per image |\n|---|---|---|---|---|")
    for workers, draft in rows:
        rates[workers, draft], cpu_ms = images_per_second(folder, workers, draft, args.batch, epochs)
        print(f"| {'JPEG draft' if draft else 'full size'} | {workers} | {rates[workers, draft]:,.0f} | "
              f"{rates[workers, draft] / rates[0, True]:.2f}x | {cpu_ms:.2f} |")
    mean, largest = draft_difference(folder)
    print(f"\nDraft against full decode at workers 2: {rates[2, True] / rates[2, False]:.2f}x the speed; pixels "
          f"differ by {mean:.2f} levels of 255 on average (at most {largest}) over 50 images.")
    best = max(rate for (_, draft), rate in rates.items() if draft)
    print(f"One CelebA epoch ({CELEBA_N:,} images) at {best:,.0f} images/s: {CELEBA_N / best / 60:.1f} min")


if __name__ == "__main__":
    main()
