"""Image folders too large for memory: images decoded on demand, batches made by DataLoader workers.

Decoded into one float tensor, CelebA's 202,599 faces would take 9.3 GiB. Here only the list of files stays in
memory. `ImageFolder` decodes one image when asked, JPEGs at a reduced scale (PIL's draft mode); `FolderBatches`
hands the images to DataLoader workers, one process per core, in the seeded order of `utils.Batches`, so a
resumed run sees the batches an uninterrupted run sees.

    batches = FolderBatches(IMAGE_FOLDER, size=64, batch_size=128, seed=0, device=device)
    for step, real in zip(range(start_step, total_steps), batches.endless(start_step)):
        ...                                    # real: float (128, 3, 64, 64) in [-1, 1] on `device`
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, get_worker_info

from .data import IMAGE_SUFFIXES, DatasetError

# What PIL raises for a file that is damaged or not an image (UnidentifiedImageError is an OSError).
UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


SUFFIXES = {os.fsencode(s) for s in IMAGE_SUFFIXES}
SEP = os.fsencode(os.sep)


def _image_paths(folder: Path) -> np.ndarray:
    """The image files under `folder` (recursively, not following links to folders), relative to it, as one
    array of bytes sorted as pathlib sorts paths (part by part).

    The paths are collected as bytes with NUL between the parts: NUL sorts before every other byte, so a plain
    sort orders them part by part, and CelebA's 202,599 names cost about 20 MB at the peak, 2 MB kept.
    """
    if not folder.is_dir():
        raise DatasetError(
            f"Image folder {folder} does not exist. Download CelebA or LSUN (README, 'Data') "
            "and set IMAGE_FOLDER to the folder that holds the images."
        )
    found, todo, root = [], [b""], os.fsencode(folder)
    while todo:
        rel = todo.pop()
        try:
            with os.scandir(os.path.join(root, rel.replace(b"\0", SEP)) if rel else root) as entries:
                for entry in entries:
                    path = rel + b"\0" + entry.name if rel else entry.name
                    if entry.is_dir(follow_symlinks=False):
                        todo.append(path)
                    elif os.path.splitext(entry.name)[1].lower() in SUFFIXES and entry.is_file():
                        found.append(path)
        except OSError:  # a folder we may not read is skipped, as Path.rglob skips it
            continue
    if not found:
        raise DatasetError(
            f"Image folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}). "
            "Point IMAGE_FOLDER at the folder the images were unpacked into."
        )
    found.sort()
    return np.array(found)  # dtype S<longest path>: no Python object per image


def list_images(folder: str | os.PathLike) -> list[str]:
    """Every image file under `folder`, recursively and sorted (suffixes IMAGE_SUFFIXES, any case)."""
    folder = Path(folder).expanduser()
    return [os.path.join(folder, os.fsdecode(p.replace(b"\0", SEP))) for p in _image_paths(folder)]


def fit(im: Image.Image, size: int) -> Image.Image:
    """Resize `im` so its shorter side is `size` (bilinear, antialiased), then crop the centre size x size:
    exactly what torchvision's resize(size, antialias=True) and center_crop(size) do."""
    w, h = im.size
    short, long = min(w, h), max(w, h)
    new_long = int(size * long / short)
    new_w, new_h = (size, new_long) if w <= h else (new_long, size)
    if (new_w, new_h) != (w, h):
        im = im.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left, top = int(round((new_w - size) / 2.0)), int(round((new_h - size) / 2.0))
    return im.crop((left, top, left + size, top + size))


class ImageFolder(Dataset):
    """The images under `folder` as uint8 tensors 3 x size x size (RGB, shorter side resized to `size`, centre
    crop). Only the relative paths stay in memory, as one numpy array of bytes: no per-image Python object, so
    forked DataLoader workers do not copy it page by page as they read it. `draft=False` decodes JPEGs at full
    size first; the default decodes them at the smallest scale (1/2, 1/4 or 1/8)
    that still leaves the shorter side at least `size`: CelebA's 178x218 faces decode at 89x109, in about
    two thirds of the CPU time, and the 64x64 result is within half a level of 255 of the full decode on average.
    """

    def __init__(self, folder: str | os.PathLike, size: int = 64, draft: bool = True):
        self.root = Path(folder).expanduser()
        self.size, self.draft = int(size), bool(draft)
        self.files = _image_paths(self.root)  # relative paths, NUL between their parts

    def __len__(self) -> int:
        return len(self.files)

    def path(self, i: int) -> str:
        return os.path.join(self.root, os.fsdecode(self.files[i].replace(b"\0", SEP)))

    def decode(self, i: int) -> np.ndarray:
        """Image i as a uint8 array size x size x 3; DatasetError when the file cannot be read."""
        file = self.path(i)
        try:
            with Image.open(file) as im:
                if self.draft:
                    im.draft("RGB", (self.size, self.size))  # JPEG only; other formats ignore it
                return np.array(fit(im.convert("RGB"), self.size))
        except UNREADABLE as exc:
            raise DatasetError(
                f"Image {file} cannot be read ({type(exc).__name__}); it is corrupt or not an image. "
                "Delete or replace it and run again."
            ) from None

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.decode(i)).permute(2, 0, 1).contiguous()

    def batch(self, indices) -> torch.Tensor:
        """Images `indices` as one uint8 tensor B x 3 x size x size (in shared memory inside a worker)."""
        out = torch.empty(len(indices), 3, self.size, self.size, dtype=torch.uint8)
        if get_worker_info() is not None:
            out.share_memory_()  # the batch then travels to the main process without a copy
        for j, i in enumerate(indices):
            out[j].copy_(torch.from_numpy(self.decode(i)).permute(2, 0, 1))
        return out

    def __repr__(self) -> str:
        return f"ImageFolder({str(self.root)!r}, size={self.size}): {len(self):,} images"


class _Batched(Dataset):
    """What the DataLoader fetches: a whole batch per call, or the message of the DatasetError it met.

    Returning the message (rather than raising inside the worker) lets the main process raise it as the one
    DatasetError the learner should see, without the worker's traceback folded into its text.
    """

    def __init__(self, images: ImageFolder):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitems__(self, indices):
        try:
            return self.images.batch(indices)
        except DatasetError as exc:
            return str(exc)


def _as_is(batch):
    return batch


class _Steps:
    """The index lists of training steps `start`, `start` + 1, ... forever (a DataLoader batch sampler).

    Step s is batch s % per_epoch of epoch s // per_epoch; each epoch's order is the permutation utils.Batches
    draws, from seed * 1_000_003 + epoch, and its last incomplete batch is dropped. Only the current epoch's
    permutation is kept, and the steps before `start` are skipped without decoding anything.
    """

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.seed, self.start = n, batch_size, seed, 0

    def __iter__(self):
        per_epoch = self.n // self.batch_size
        epoch, first = divmod(self.start, per_epoch)
        while True:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))
            for b in range(first, per_epoch):
                yield order[b * self.batch_size:(b + 1) * self.batch_size].tolist()
            epoch, first = epoch + 1, 0


def default_workers() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class FolderBatches:
    """Seeded, shuffled batches of the images under `folder`, decoded by `workers` DataLoader processes.

    The folder counterpart of `utils.Batches`: same seeding, same order, full batches only. Memory does not
    grow with the number of images (the file list is one numpy array; one epoch's permutation is kept).
    `endless(start_step)` yields float batches B x 3 x size x size in [-1, 1] on `device` forever; step s is
    batch s % len(self) of epoch s // len(self), so a run resumed at step s sees what an uninterrupted run sees.
    `workers` defaults to the cores this process may use; 0 decodes in this process.
    """

    def __init__(self, folder: str | os.PathLike, size: int = 64, batch_size: int = 64, seed: int = 0,
                 workers: int | None = None, device=None, draft: bool = True):
        self.dataset = ImageFolder(folder, size, draft=draft)
        self.n = len(self.dataset)
        if batch_size < 1 or batch_size > self.n:
            raise ValueError(f"batch_size {batch_size} does not fit the {self.n:,} images under "
                             f"{self.dataset.root}: use at most {self.n:,}, or add images.")
        self.workers = default_workers() if workers is None else int(workers)
        if self.workers < 0:
            raise ValueError(f"workers must be 0 (decode in this process) or more, not {workers}.")
        self.size, self.batch_size, self.seed = self.dataset.size, batch_size, seed
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self._steps = _Steps(self.n, batch_size, seed)
        self._loader = None
        self._generation = 0

    def __len__(self) -> int:
        return self.n // self.batch_size

    def __repr__(self) -> str:
        return (f"{self.n:,} images under {self.dataset.root}, {self.size}x{self.size}, batch {self.batch_size} "
                f"({len(self):,} per epoch), {self.workers} worker{'s' * (self.workers != 1)}")

    def _make_loader(self) -> DataLoader:
        many = self.workers > 0
        return DataLoader(_Batched(self.dataset), batch_sampler=self._steps, collate_fn=_as_is,
                          num_workers=self.workers, persistent_workers=many, prefetch_factor=2 if many else None,
                          pin_memory=self.device.type == "cuda",
                          generator=torch.Generator().manual_seed(self.seed))  # leaves the global RNG alone

    def endless(self, start_step: int = 0):
        """Float batches in [-1, 1] on `device` from step `start_step` on, forever. The workers start decoding
        now; a later call to endless() takes them over, and the generator returned before it stops."""
        if start_step < 0:
            raise ValueError(f"start_step must be 0 or more, not {start_step}.")
        if self._loader is None:
            self._loader = self._make_loader()
        self._steps.start = start_step
        self._generation += 1
        return self._batches(iter(self._loader), self._generation)

    def _batches(self, it, generation: int):
        while True:
            if generation != self._generation:
                raise RuntimeError("This FolderBatches.endless() generator was replaced by a later endless() call; "
                                   "use the newer one.")
            batch = next(it)
            if isinstance(batch, str):
                self.close()  # now, rather than whenever the garbage collector gets to the workers
                raise DatasetError(batch)
            batch = batch.to(self.device, non_blocking=self.device.type == "cuda")
            yield batch.float().div_(127.5).sub_(1.0)

    def close(self) -> None:
        """Stop the worker processes now (they also stop with this process, or when this object is collected);
        a later endless() starts new ones."""
        running = getattr(self._loader, "_iterator", None)
        if hasattr(running, "_shutdown_workers"):
            running._shutdown_workers()
        self._loader = None
        self._generation += 1
