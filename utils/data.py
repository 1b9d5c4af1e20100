"""Data plumbing: MNIST and Fashion-MNIST as tensors with train, validation and test splits, in-memory batches.

Every loader returns float images in [-1, 1] (N x C x H x W) so that a generator ending in Tanh
and the real data live on the same scale.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .runtime import ROOT, CourseError, atomic_write

DATA_DIR = ROOT / "data"
OFFLINE_SUBSET = DATA_DIR / "mnist_5k.npz"  # 5,000 real MNIST digits, 500 per class (see data/README.md)
SUBSET_TEST_PER_CLASS = 100  # the last 100 digits of each class are the held-out split
SUBSET_SEED = 0  # the file is stored digit by digit; each split is shuffled once with this seed as it is read
VAL_SIZE = 500  # training images set aside (never trained on) to choose the best checkpoint
VAL_SEED = 0    # which ones: a fixed random draw, the same on every machine
SPLITS = ("train", "val", "test")  # val is carved out of the source's training split; test is its held-out split
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}

# name -> (torchvision class name, where a system package may hold the files)
DATASETS = {
    "mnist": ("MNIST", []),
    "fashion-mnist": ("FashionMNIST", [Path("/usr/share/datasets/fashion-mnist")]),
}
CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": ["T-shirt", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}
FILES = {  # split -> (images file, labels file), as torchvision and the original site name them
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_announced: set[tuple[str, str]] = set()
_cache: dict[tuple, tuple[np.ndarray, np.ndarray, str]] = {}


class DatasetError(CourseError):
    pass


class DownloadError(DatasetError):
    pass


# ----------------------------------------------------------------------------- downloading


def offline() -> bool:
    """True when $COURSE_OFFLINE asks the course not to try the network."""
    return os.environ.get("COURSE_OFFLINE", "").strip().lower() in ("1", "true", "yes")


def download(url: str, dest: str | os.PathLike, md5: str | None = None, timeout: float = 10.0) -> Path:
    """Download `url` to `dest` atomically, checking its MD5 when given. Raises DownloadError."""
    dest = Path(dest)

    def fetch(tmp):
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
            size = resp.headers.get("Content-Length")
            shown = f"{int(size) / 1e6:.1f} MB" if size and size.isdigit() else "size unknown"
            print(f"downloading {url} ({shown}) to {_shown(dest)}", flush=True)
            shutil.copyfileobj(resp, out, length=1 << 20)
        if md5 is not None:
            got = hashlib.md5(Path(tmp).read_bytes()).hexdigest()
            if got != md5:
                raise DownloadError(f"{url} arrived damaged (MD5 {got}, expected {md5}). Try again later.")

    try:
        return atomic_write(dest, fetch)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(f"Could not download {url} ({reason}).") from None


def _torchvision_sources(name: str):
    """Mirrors and (file, md5) pairs from torchvision, so the URLs stay those torchvision keeps."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, DATASETS[name][0])
    return list(cls.mirrors), list(cls.resources)


def download_dataset(name: str, root: str | os.PathLike | None = None, mirrors=None, resources=None) -> Path:
    """Download the four IDX files of `name` into <root>/<TorchvisionName>/raw (torchvision's layout).

    `mirrors` and `resources` default to torchvision's; each file is tried on each mirror in turn.
    """
    check_name(name)
    raw = Path(root or DATA_DIR) / DATASETS[name][0] / "raw"
    tv_mirrors, tv_resources = _torchvision_sources(name) if (mirrors is None or resources is None) else ([], [])
    mirrors = mirrors if mirrors is not None else tv_mirrors
    resources = resources if resources is not None else tv_resources
    for filename, md5 in resources:
        target = raw / filename
        if target.exists():
            continue
        errors = []
        for mirror in mirrors:
            try:
                download(mirror.rstrip("/") + "/" + filename, target, md5)
                break
            except DownloadError as exc:
                errors.append(str(exc))
        else:
            tried = " ".join(errors) or f"No mirror given for {filename}."
            raise DownloadError(f"{tried} Check the network connection and run again, or put {filename} in {raw}.")
    return raw


# ----------------------------------------------------------------------------- reading


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped or not) as a uint8 array, checking its header against its size."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError, zlib.error) as exc:  # a damaged deflate stream raises zlib.error
        raise DatasetError(_damaged(path, f"it cannot be decompressed: {exc}")) from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08 or not 1 <= data[3] <= 3:
        raise DatasetError(_damaged(path, "it does not start with an IDX header for unsigned bytes"))
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    start = 4 + 4 * ndim
    if len(data) - start != int(np.prod(shape)):
        raise DatasetError(_damaged(path, f"the header promises shape {shape} but the size does not match"))
    return np.frombuffer(data, dtype=np.uint8, offset=start).reshape(shape)


def _damaged(path: Path, why: str) -> str:
    return f"Data file {path} is corrupt or truncated ({why}). Delete it and run again to fetch it afresh."


def _find_files(folder: Path, split: str):
    """The (images, labels) files of `split` in `folder`, gzipped or not; None if absent."""
    found = []
    for stem in FILES[split]:
        for candidate in (folder / stem, folder / (stem + ".gz")):
            if candidate.is_file():
                found.append(candidate)
                break
        else:
            return None
    return found


def _read_pair(files, name: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = (read_idx(f) for f in files)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DatasetError(
            f"{name}: {files[0]} and {files[1]} do not match (shapes {images.shape}, {labels.shape}). "
            "Delete both and run again to fetch them afresh."
        )
    return images, labels


def _subset(split: str) -> tuple[np.ndarray, np.ndarray]:
    if not OFFLINE_SUBSET.is_file():
        raise DatasetError(
            f"The offline MNIST subset {OFFLINE_SUBSET.relative_to(ROOT)} is missing. "
            "Restore it with `git checkout -- data/mnist_5k.npz`, or go online once to download MNIST."
        )
    with np.load(OFFLINE_SUBSET) as z:
        x, y = z["images"], z["labels"]
    test = np.zeros(len(y), dtype=bool)
    for digit in range(10):
        test[np.flatnonzero(y == digit)[-SUBSET_TEST_PER_CLASS:]] = True
    keep = np.flatnonzero(test if split == "test" else ~test)
    keep = keep[np.random.default_rng(SUBSET_SEED).permutation(len(keep))]  # so that images[:n] mixes all ten digits
    return x[keep], y[keep]


def _shown(path: Path) -> str:
    """A path as a learner should see it: relative to the course folder when inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def check_name(name: str) -> None:
    if name not in DATASETS:
        raise DatasetError(f"Unknown dataset {name!r}. Choose one of: {', '.join(DATASETS)}.")


def _load_uint8(name: str, split: str, root: Path, allow_download: bool):
    """Find the data: files in root, a system package, a download, then (MNIST) the shipped subset."""
    tv_name, system_dirs = DATASETS[name]
    raw = root / tv_name / "raw"
    files = _find_files(raw, split)
    if files:
        return (*_read_pair(files, name), _shown(raw))
    for folder in system_dirs:
        files = _find_files(folder, split)
        if files:
            return (*_read_pair(files, name), f"{folder} (system package)")
    reason = "offline mode ($COURSE_OFFLINE)"
    if allow_download and not offline():
        try:
            download_dataset(name, root)
            return (*_read_pair(_find_files(raw, split), name), "downloaded through torchvision's mirrors")
        except DownloadError:
            reason = "no network: the download from torchvision's mirrors failed"
    if name == "mnist":
        x, y = _subset(split)
        return x, y, f"the shipped offline subset data/mnist_5k.npz ({reason})"
    hint = " or install Debian's dataset-fashion-mnist package" if name == "fashion-mnist" else ""
    raise DatasetError(
        f"{name} is not on this machine and could not be downloaded ({reason}). Go online and run "
        f"again{hint}, or put the four IDX files in {_shown(raw)}."
    )


def val_mask(n: int) -> np.ndarray:
    """Which of a source's n training images form the validation split: VAL_SIZE (at most an eighth) drawn with VAL_SEED."""
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(VAL_SEED).permutation(n)[:min(VAL_SIZE, n // 8)]] = True
    return mask


def load_dataset(name: str = "mnist", split: str = "train", size: int = 28,
                 root: str | os.PathLike | None = None, download: bool = True):
    """Images (float N x 1 x size x size in [-1, 1]) and labels (int64 N) of MNIST or Fashion-MNIST.

    Sources, in order: IDX files under `root` (default data/), a system package, a download into
    `root`, and for MNIST the shipped 5,000-digit subset. One line says which source was used.
    Splits: `train` (what models learn from), `val` (VAL_SIZE training images set aside to choose the
    best checkpoint) and `test` (held out, for the reported metrics); the three never overlap.
    `size` 32 pads the 28x28 digits with background, as the EBGAN and BEGAN notebooks use.
    """
    check_name(name)
    if split not in SPLITS:
        raise DatasetError(f"Unknown split {split!r}. Use 'train', 'val' or 'test'.")
    if size not in (28, 32):
        raise DatasetError(f"size must be 28 or 32 for {name}, not {size}.")
    root = Path(root) if root else DATA_DIR
    key = (name, split, str(root))
    if key not in _cache:
        if split == "test":
            _cache[key] = _load_uint8(name, "test", root, download)
        else:  # one read of the source's training files gives both the train and the val split
            x, y, source = _load_uint8(name, "train", root, download)
            val = val_mask(len(y))
            _cache[(name, "train", str(root))] = (x[~val], y[~val], source)
            _cache[(name, "val", str(root))] = (x[val], y[val], source)
    x, y, source = _cache[key]
    if (name, source) not in _announced:
        _announced.add((name, source))
        print(f"{name}: {len(y):,} {split} images from {source}")
    images = torch.from_numpy(x.copy()).float().div_(127.5).sub_(1.0).unsqueeze(1)
    if size == 32:
        images = F.pad(images, (2, 2, 2, 2), value=-1.0)
    return images, torch.from_numpy(y.astype(np.int64))


def load_mnist(split: str = "train", size: int = 28, **kwargs):
    """MNIST images in [-1, 1] (N x 1 x size x size) and labels; see load_dataset."""
    return load_dataset("mnist", split, size, **kwargs)


# ----------------------------------------------------------------------------- batching


class Batches:
    """Seeded, shuffling mini-batches of tensors that fit in memory, with no DataLoader overhead.

    Batches(images, labels, batch_size=100, seed=0) yields (images, labels) batches on `device`;
    each pass over the data (an epoch) is a new permutation drawn from the seed and the epoch number,
    so a run is reproducible and a resumed run can continue at the same epoch (`set_epoch`).
    """

    def __init__(self, *tensors: torch.Tensor, batch_size: int, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = True, device=None):
        if not tensors:
            raise ValueError("Batches needs at least one tensor.")
        n = len(tensors[0])
        if any(len(t) != n for t in tensors):
            raise ValueError(f"Batches: tensors have different lengths {[len(t) for t in tensors]}.")
        if batch_size < 1 or (drop_last and batch_size > n):
            raise ValueError(f"batch_size {batch_size} does not fit {n} examples.")
        self.tensors = tuple(t.to(device) if device is not None else t for t in tensors)
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.n, self.epoch = n, 0

    def __len__(self) -> int:
        return self.n // self.batch_size if self.drop_last else -(-self.n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def endless(self, start_step: int = 0):
        """Batches forever, from global step `start_step` on: step s is batch s % len(self) of epoch s // len(self).

        A training loop counted in steps takes next() once a step; a run resumed at step s gets exactly
        the batches that an uninterrupted run gets from step s on.
        """
        epoch, skip = divmod(start_step, len(self))
        while True:
            self.set_epoch(epoch)
            for b, batch in enumerate(self):
                if b >= skip:
                    yield batch
            epoch, skip = epoch + 1, 0

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).to(self.tensors[0].device)
        else:
            order = None
        self.epoch += 1
        for b in range(len(self)):
            idx = slice(b * self.batch_size, (b + 1) * self.batch_size)
            picked = tuple(t[order[idx]] if order is not None else t[idx] for t in self.tensors)
            yield picked if len(picked) > 1 else picked[0]
