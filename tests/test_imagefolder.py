"""utils.imagefolder: listing, decoding (draft and full), seeded batches from worker processes, clear errors."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
from conftest import one_message
from PIL import Image

import utils
from utils import imagefolder
from utils.data import IMAGE_SUFFIXES, DatasetError
from utils.imagefolder import FolderBatches, ImageFolder, list_images

SIZES = [(178, 218), (96, 64), (64, 96), (80, 70), (300, 120)]  # CelebA's, landscape, portrait, small, wide


def smooth(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    """A random smooth picture (a colour gradient and a rectangle) that JPEG keeps close to the original."""
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    a = c0 + (c1 - c0) * np.clip(x * rng.uniform(0, 1) + y * rng.uniform(0, 1), 0, 1)[..., None]
    x0, y0 = rng.integers(0, w // 2), rng.integers(0, h // 2)
    a[y0:y0 + h // 3, x0:x0 + w // 3] = rng.uniform(0, 255, 3)
    return Image.fromarray(a.astype(np.uint8))


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """24 images of several sizes, JPEG and PNG, 8 of them in sub/ (one .JPG), and a file that is not an image."""
    folder = tmp_path_factory.mktemp("faces")
    (folder / "sub").mkdir()
    rng = np.random.default_rng(0)
    for i in range(24):
        w, h = SIZES[i % len(SIZES)]
        suffix = ".png" if i % 3 == 0 else (".JPG" if i == 23 else ".jpg")
        where = folder / "sub" if i >= 16 else folder
        smooth(rng, w, h).save(where / f"img_{i:02d}{suffix}", quality=95)
    (folder / "notes.txt").write_text("not an image")
    return folder


def stripes(size, colours, vertical=True) -> Image.Image:
    w, h = size
    a = np.zeros((h, w, 3), np.uint8)
    for i, colour in enumerate(colours):
        if vertical:
            a[:, i * w // len(colours):(i + 1) * w // len(colours)] = colour
        else:
            a[i * h // len(colours):(i + 1) * h // len(colours)] = colour
    return Image.fromarray(a)


def take(iterator, k: int) -> list[torch.Tensor]:
    return [next(iterator) for _ in range(k)]


# ----------------------------------------------------------------------------- listing and decoding


def test_list_images_is_recursive_sorted_and_skips_other_files(folder):
    files = list_images(folder)
    expected = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)  # pathlib's order
    assert files == [str(p) for p in expected] and len(files) == 24
    assert files[-1].endswith(os.path.join("sub", "img_23.JPG")) and not any(f.endswith(".txt") for f in files)


def test_items_are_uint8_rgb_squares(folder):
    for size in (64, 32):
        images = ImageFolder(folder, size)
        assert len(images) == 24
        for i in (0, 1, 5, 23):
            x = images[i]
            assert x.shape == (3, size, size) and x.dtype == torch.uint8 and x.is_contiguous()
    assert "24 images" in repr(images)


def test_paths_are_kept_as_one_array_of_bytes(folder):
    images = ImageFolder(folder)
    assert isinstance(images.files, np.ndarray) and images.files.dtype.kind == "S"
    assert [images.path(i) for i in range(len(images))] == list_images(folder)


def test_full_decode_is_torchvisions_resize_and_centre_crop(folder):
    from torchvision.transforms import functional as TF

    for size in (64, 32):
        images = ImageFolder(folder, size, draft=False)
        for i, file in enumerate(list_images(folder)):
            with Image.open(file) as im:
                expected = TF.center_crop(TF.resize(im.convert("RGB"), size, antialias=True), [size, size])
            assert torch.equal(images[i], TF.pil_to_tensor(expected))


def test_draft_decode_matches_the_full_decode(folder):
    fast, full = ImageFolder(folder, 64), ImageFolder(folder, 64, draft=False)
    diffs = torch.stack([(fast[i].float() - full[i].float()).abs() for i in range(len(fast))])
    assert diffs.mean() < 1.5 and diffs.max() <= 40, (diffs.mean(), diffs.max())
    # where draft mode does something (a JPEG at least twice `size`), it is a different decode, not a copy
    celeba = list_images(folder).index(str(folder / "img_05.jpg"))  # 178x218: decoded at 89x109
    assert not torch.equal(fast[celeba], full[celeba])


@pytest.mark.parametrize("draft", [True, False])
@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_centre_crop_drops_the_sides_of_a_wide_and_the_ends_of_a_tall_image(tmp_path, draft, suffix):
    red, green, blue = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    stripes((640, 128), [red, green, green, green, blue]).save(tmp_path / f"a_wide{suffix}", quality=95)
    stripes((128, 640), [blue, green, green, green, red], vertical=False).save(tmp_path / f"b_tall{suffix}", quality=95)
    images = ImageFolder(tmp_path, 64, draft=draft)
    tolerance = 0 if suffix == ".png" else 12
    for i in range(2):
        x = images[i].int()
        # scaled to 320x64 (64x320), the crop keeps the middle fifth: green everywhere, up to JPEG's error
        assert (x[1] >= 255 - tolerance).all() and (x[0] <= tolerance).all() and (x[2] <= tolerance).all()


def test_grey_and_rgba_images_become_rgb(tmp_path):
    Image.fromarray(np.full((50, 70), 128, np.uint8)).save(tmp_path / "grey.png")
    Image.new("RGBA", (70, 64), (0, 0, 255, 40)).save(tmp_path / "rgba.png")
    Image.fromarray(np.full((200, 180), 77, np.uint8)).save(tmp_path / "grey_big.jpg", quality=95)
    images = ImageFolder(tmp_path, 32)
    assert (images[0] == 128).all() and (images[1] - 77).abs().max() <= 1  # grey.png, grey_big.jpg
    assert (images[2][:2] == 0).all() and (images[2][2] == 255).all()  # rgba.png: alpha dropped


# ----------------------------------------------------------------------------- batches


def all_images(folder, size=64) -> torch.Tensor:
    images = ImageFolder(folder, size)
    return torch.stack([images[i] for i in range(len(images))]).float().div_(127.5).sub_(1.0)


def test_batches_are_utils_batches_order_in_range_on_the_device(folder):
    batches = FolderBatches(folder, size=64, batch_size=5, seed=3, workers=0)
    assert batches.n == 24 and len(batches) == 4  # 24 // 5: the incomplete fifth batch is dropped
    got = take(batches.endless(), 12)  # three epochs
    reference = utils.Batches(all_images(folder), batch_size=5, seed=3)
    expected = [b for _ in range(3) for b in reference]
    assert len(expected) == 12
    assert all(torch.equal(a, b) for a, b in zip(take(reference.endless(2), 10), expected[2:]))  # same contract
    for g, e in zip(got, expected):
        assert g.shape == (5, 3, 64, 64) and g.dtype == torch.float32 and g.device.type == "cpu"
        assert torch.equal(g, e)
    assert min(b.min() for b in got) >= -1 and max(b.max() for b in got) <= 1


def test_each_epoch_shows_every_image_once_in_a_new_order(folder):
    x = all_images(folder)
    batches = FolderBatches(folder, batch_size=6, seed=0, workers=0)
    it = batches.endless()
    orders = []
    for _ in range(2):
        epoch = torch.cat(take(it, len(batches)))
        order = [int((x == image).flatten(1).all(1).nonzero()[0]) for image in epoch]
        assert sorted(order) == list(range(24))
        orders.append(order)
    assert orders[0] != orders[1]


def test_same_seed_same_batches_and_another_seed_others(folder):
    first = take(FolderBatches(folder, batch_size=8, seed=1, workers=0).endless(), 4)
    again = take(FolderBatches(folder, batch_size=8, seed=1, workers=0).endless(), 4)
    other = take(FolderBatches(folder, batch_size=8, seed=2, workers=0).endless(), 4)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def test_a_resumed_run_sees_the_batches_of_an_uninterrupted_one(folder):
    whole = take(FolderBatches(folder, batch_size=7, seed=0, workers=0).endless(), 9)  # 3 batches per epoch
    for start in (2, 3, 5):  # inside the first epoch, on a boundary, across one
        tail = take(FolderBatches(folder, batch_size=7, seed=0, workers=0).endless(start_step=start), 9 - start)
        assert all(torch.equal(a, b) for a, b in zip(tail, whole[start:]))
    in_memory = take(utils.Batches(all_images(folder), batch_size=7, seed=0).endless(4), 5)
    assert all(torch.equal(a, b) for a, b in zip(in_memory, whole[4:]))


def test_resuming_decodes_no_skipped_image(folder, monkeypatch):
    decoded = []
    real = ImageFolder.decode
    monkeypatch.setattr(ImageFolder, "decode", lambda self, i: decoded.append(i) or real(self, i))
    it = FolderBatches(folder, batch_size=4, workers=0).endless(start_step=1_000_000)
    take(it, 2)
    assert len(decoded) == 8


def test_two_workers_give_the_batches_of_none(folder):
    alone = take(FolderBatches(folder, batch_size=5, seed=0, workers=0).endless(start_step=2), 7)
    workers = FolderBatches(folder, batch_size=5, seed=0, workers=2)
    assert "2 workers" in repr(workers) and "24 images" in repr(workers)
    shared = take(workers.endless(start_step=2), 7)
    assert all(torch.equal(a, b) for a, b in zip(alone, shared))
    again = take(workers.endless(start_step=2), 3)  # the persistent workers serve a second endless() too
    assert all(torch.equal(a, b) for a, b in zip(alone, again))
    assert len(psutil.Process().children()) == 2
    workers.close()
    assert psutil.Process().children() == []  # close() stopped them
    assert torch.equal(next(workers.endless(start_step=2)), alone[0])  # and endless() starts new ones
    workers.close()


def test_the_global_random_state_is_left_alone(folder):
    state = torch.random.get_rng_state()
    take(FolderBatches(folder, batch_size=8, workers=0).endless(), 3)
    assert torch.equal(torch.random.get_rng_state(), state)


def test_a_replaced_endless_generator_stops(folder):
    batches = FolderBatches(folder, batch_size=8, workers=0)
    old = batches.endless()
    next(old)
    new = batches.endless(5)
    with pytest.raises(RuntimeError, match="replaced"):
        next(old)
    assert next(new).shape == (8, 3, 64, 64)


def test_default_workers_are_the_usable_cores(folder):
    assert FolderBatches(folder, batch_size=8).workers == imagefolder.default_workers() >= 1


@pytest.mark.parametrize("batch_size", [25, 0])
def test_a_batch_size_the_folder_cannot_fill_is_refused(folder, batch_size):
    with pytest.raises(ValueError, match=f"batch_size {batch_size} does not fit the 24 images"):
        FolderBatches(folder, batch_size=batch_size)


# ----------------------------------------------------------------------------- bad input


def test_a_missing_folder_says_what_to_do(tmp_path):
    for make in (list_images, ImageFolder, FolderBatches):
        with pytest.raises(DatasetError) as err:
            make(tmp_path / "celeba")
        message = one_message(err.value)
        assert f"Image folder {tmp_path / 'celeba'} does not exist" in message
        assert "Download CelebA or LSUN" in message and "IMAGE_FOLDER" in message


def test_a_folder_without_images_says_so(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "notes.txt").write_text("no images here")
    with pytest.raises(DatasetError) as err:
        FolderBatches(tmp_path)
    message = one_message(err.value)
    assert f"Image folder {tmp_path} holds no images (.bmp, .jpeg" in message and "IMAGE_FOLDER" in message


def truncated_jpeg(path: Path) -> None:
    buf = io.BytesIO()
    stripes((178, 218), [(200, 30, 30), (30, 200, 30)]).save(buf, "JPEG", quality=95)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


def text_file(path: Path) -> None:
    path.write_text("this is not a JPEG")


@pytest.mark.parametrize("damage", [truncated_jpeg, text_file])
@pytest.mark.parametrize("workers", [None, 0, 2])  # None: the Dataset alone
def test_a_corrupt_image_gives_one_clear_error_naming_it(tmp_path, damage, workers):
    for i in range(6):
        smooth(np.random.default_rng(i), 100, 120).save(tmp_path / f"ok_{i}.png")
    bad = tmp_path / "bad.jpg"
    damage(bad)
    with pytest.raises(DatasetError) as err:
        if workers is None:
            ImageFolder(tmp_path)[0]
        else:
            take(FolderBatches(tmp_path, batch_size=7, workers=workers).endless(), 1)
    message = one_message(err.value)
    assert message.startswith(f"Image {bad} cannot be read (")
    assert "it is corrupt or not an image. Delete or replace it and run again." in message
    assert message.count("\n") == 0 and "Caught" not in message and "worker" not in message


def test_listing_sorts_part_by_part_as_pathlib_does(tmp_path):
    names = ["a-b.png", "a/b.png", "a/c/d.png", "a.png", "B.png", "a0.png", "é.png", "z/y.bmp", "n.WEBP", "q.txt"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(tmp_path / name, format="PNG")
    expected = sorted(p for p in tmp_path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    assert list_images(tmp_path) == [str(p) for p in expected] and len(expected) == 9
    assert [ImageFolder(tmp_path, 8).path(i) for i in range(9)] == [str(p) for p in expected]
