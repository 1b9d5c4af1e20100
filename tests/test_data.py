"""utils.data: downloads (from a local mirror), IDX files, MNIST/Fashion-MNIST sources, image folders, Batches."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest
import torch
from conftest import files_in, idx_bytes, make_idx_dataset, one_message, write_idx

import utils
from utils import data
from utils.data import DatasetError, DownloadError

pytestmark = pytest.mark.usefixtures("no_network")

md5 = lambda b: hashlib.md5(b).hexdigest()


@pytest.fixture
def fresh_announcements(monkeypatch):
    """Forget which sources were announced, so load_dataset prints its one line again."""
    monkeypatch.setattr(data, "_announced", set())


def test_the_unit_tests_cannot_reach_the_network():
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.URLError, match="may not look up example.org"):
        urllib.request.urlopen("http://example.org/", timeout=1)


# ----------------------------------------------------------------------------- offline()


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("true", True), (" YES ", True), ("0", False),
                                                 ("", False), ("no", False), (None, False)])
def test_offline_reads_course_offline(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("COURSE_OFFLINE", value)
    assert data.offline() is expected


# ----------------------------------------------------------------------------- download()


def test_download_with_correct_md5_writes_the_exact_bytes(http_mirror, tmp_path):
    folder, url = http_mirror
    payload = gzip.compress(idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4)))
    (folder / "x.gz").write_bytes(payload)
    dest = tmp_path / "out" / "x.gz"
    got = data.download(f"{url}/x.gz", dest, md5=md5(payload), timeout=5)
    assert got == dest
    assert dest.read_bytes() == payload
    assert files_in(dest.parent) == ["x.gz"]  # no temporary file left beside it


def test_download_without_md5_writes_the_file(http_mirror, tmp_path):
    folder, url = http_mirror
    (folder / "plain.bin").write_bytes(b"\x00\x01" * 5000)
    dest = data.download(f"{url}/plain.bin", tmp_path / "plain.bin", timeout=5)
    assert dest.read_bytes() == b"\x00\x01" * 5000


def test_a_download_says_what_it_fetches_and_how_large_it_is(http_mirror, tmp_path, capsys):
    folder, url = http_mirror
    (folder / "big.gz").write_bytes(b"\x07" * 2_500_000)
    data.download(f"{url}/big.gz", tmp_path / "big.gz", timeout=5)
    out = capsys.readouterr().out
    assert f"downloading {url}/big.gz (2.5 MB) to {tmp_path / 'big.gz'}" in out, out


def test_damaged_download_leaves_no_file(http_mirror, tmp_path):
    folder, url = http_mirror
    (folder / "x.gz").write_bytes(b"not what was promised")
    dest = tmp_path / "out" / "x.gz"
    with pytest.raises(DownloadError) as err:
        data.download(f"{url}/x.gz", dest, md5=md5(b"the real file"), timeout=5)
    message = one_message(err.value)
    assert "damaged" in message and "MD5" in message and "Try again" in message
    assert not dest.exists()
    assert files_in(tmp_path / "out") == []  # not even a temporary file


def test_damaged_download_keeps_the_previous_file(http_mirror, tmp_path):
    folder, url = http_mirror
    (folder / "x.gz").write_bytes(b"damaged")
    dest = tmp_path / "x.gz"
    dest.write_bytes(b"the good copy")
    with pytest.raises(DownloadError):
        data.download(f"{url}/x.gz", dest, md5=md5(b"the good copy"), timeout=5)
    assert dest.read_bytes() == b"the good copy"


def test_download_of_a_missing_file_and_a_dead_server(http_mirror, dead_url, tmp_path):
    _, url = http_mirror
    with pytest.raises(DownloadError, match=r"Could not download http://127.0.0.1:\d+/nothing-here \(File not found\)"):
        data.download(f"{url}/nothing-here", tmp_path / "a", timeout=5)
    with pytest.raises(DownloadError, match="Could not download"):
        data.download(f"{dead_url}/x.gz", tmp_path / "b", timeout=5)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left either


# ----------------------------------------------------------------------------- download_dataset()


def _serve_mnist(folder):
    """Tiny IDX files on the mirror; returns (arrays, resources as (filename, md5))."""
    arrays = make_idx_dataset(folder, n_train=30, n_test=20, seed=1)
    resources = [(p.name, md5(p.read_bytes())) for p in sorted(folder.glob("*.gz"))]
    return arrays, resources


def test_download_dataset_falls_through_to_the_working_mirror(http_mirror, dead_url, tmp_path, capsys,
                                                              fresh_announcements, monkeypatch):
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    folder, url = http_mirror
    arrays, resources = _serve_mnist(folder)
    root = tmp_path / "data"
    raw = data.download_dataset("mnist", root, mirrors=[dead_url + "/", url + "/"], resources=resources)
    assert raw == root / "MNIST" / "raw"  # torchvision's layout
    assert files_in(raw) == sorted(name for name, _ in resources)
    for name, _ in resources:
        assert (raw / name).read_bytes() == (folder / name).read_bytes()

    # files already there are not fetched again (a dead mirror alone is enough now)
    assert data.download_dataset("mnist", root, mirrors=[dead_url], resources=resources) == raw

    # load_dataset reads them from that root and says where they came from
    capsys.readouterr()
    images, labels = data.load_dataset("mnist", "train", root=root)
    out = capsys.readouterr().out
    assert "mnist: 27 train images from" in out and str(root / "MNIST" / "raw") in out  # 3 of 30 are validation
    x, y = arrays["train"]
    keep = ~data.val_mask(30)
    assert images.shape == (27, 1, 28, 28) and images.dtype == torch.float32
    assert labels.dtype == torch.int64 and labels.tolist() == y[keep].tolist()
    assert torch.equal(images[:, 0], torch.from_numpy(x[keep]).float() / 127.5 - 1)
    test_images, test_labels = data.load_dataset("mnist", "test", size=32, root=root)
    assert test_images.shape == (20, 1, 32, 32)
    assert torch.equal(test_images[:, 0, 2:30, 2:30], torch.from_numpy(arrays["test"][0]).float() / 127.5 - 1)
    assert (test_images[:, :, :2] == -1).all() and (test_images[:, :, :, -2:] == -1).all()  # padded with background


def test_download_dataset_with_every_mirror_failing_says_what_to_do(http_mirror, dead_url, tmp_path):
    folder, url = http_mirror
    _, resources = _serve_mnist(folder)
    resources = [(name, "0" * 32) for name, _ in resources]  # every copy fails its MD5 check
    root = tmp_path / "data"
    with pytest.raises(DownloadError) as err:
        data.download_dataset("mnist", root, mirrors=[dead_url, url], resources=resources)
    message = one_message(err.value)
    assert dead_url in message and url in message and "damaged" in message  # both attempts are reported
    assert "network" in message and str(root / "MNIST" / "raw") in message  # what to do
    assert files_in(root) == []


def test_download_dataset_rejects_an_unknown_name(tmp_path):
    with pytest.raises(DatasetError, match=r"Unknown dataset 'cifar10'.*mnist, fashion-mnist"):
        data.download_dataset("cifar10", tmp_path, mirrors=[], resources=[])


# ----------------------------------------------------------------------------- read_idx()


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_round_trips(tmp_path, suffix):
    images = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    labels = np.arange(9, dtype=np.uint8)
    got = data.read_idx(write_idx(tmp_path / ("images" + suffix), images))
    assert got.dtype == np.uint8 and got.shape == (5, 7, 3) and np.array_equal(got, images)
    assert np.array_equal(data.read_idx(write_idx(tmp_path / ("labels" + suffix), labels)), labels)


def _corrupt_gz(good: bytes) -> bytes:
    bad = bytearray(good)
    bad[10] = 0xFF  # the first deflate block header, right after the 10-byte gzip header: an invalid block type
    return bytes(bad)


DAMAGE = {
    "corrupt gzip stream": (".gz", _corrupt_gz),
    "truncated gzip": (".gz", lambda good: good[: len(good) // 2]),
    "not gzip at all": (".gz", lambda good: b"<html>503 Service Unavailable</html>"),
    "truncated IDX": ("", lambda good: good[:-100]),
    "IDX with a wrong header": ("", lambda good: b"\x08\x03" + good[2:]),
    "empty file": ("", lambda good: b""),
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_read_idx_reports_a_damaged_file_clearly_and_keeps_it(tmp_path, kind):
    suffix, damage = DAMAGE[kind]
    images = np.random.default_rng(0).integers(0, 256, (50, 28, 28), dtype=np.uint8)
    raw = idx_bytes(images)
    good = gzip.compress(raw, mtime=0) if suffix else raw
    path = tmp_path / ("train-images-idx3-ubyte" + suffix)
    path.write_bytes(damage(good))
    before = path.read_bytes()
    with pytest.raises(DatasetError) as err:
        data.read_idx(path)
    message = one_message(err.value)
    assert str(path) in message and "corrupt or truncated" in message
    assert "Delete it and run again" in message  # what to do
    assert path.read_bytes() == before  # nothing deleted or changed behind the learner's back


def test_load_dataset_stops_at_a_damaged_file_instead_of_falling_back(tmp_path, offline):
    root = tmp_path / "data"
    make_idx_dataset(root / "MNIST" / "raw")
    victim = root / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(DatasetError, match="corrupt or truncated.*Delete it and run again"):
        data.load_dataset("mnist", "test", root=root)
    assert len(victim.read_bytes()) == 100


def test_load_dataset_rejects_images_and_labels_that_do_not_match(tmp_path, offline):
    raw = tmp_path / "MNIST" / "raw"
    write_idx(raw / "t10k-images-idx3-ubyte", np.zeros((5, 28, 28), np.uint8))
    write_idx(raw / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(DatasetError, match="do not match.*Delete both and run again"):
        data.load_dataset("mnist", "test", root=tmp_path)


# ----------------------------------------------------------------------------- load_dataset() sources


def test_missing_fashion_mnist_offline_says_what_to_do(tmp_path, monkeypatch):
    empty_system_dir = tmp_path / "usr-share"
    empty_system_dir.mkdir()
    monkeypatch.setitem(data.DATASETS, "fashion-mnist", ("FashionMNIST", [empty_system_dir]))
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    root = tmp_path / "data"
    root.mkdir()
    with pytest.raises(DatasetError) as err:
        data.load_dataset("fashion-mnist", "train", root=root)
    message = one_message(err.value)
    assert message.count("fashion-mnist is not on this machine") == 1 and "offline" in message
    assert "Go online" in message and "dataset-fashion-mnist" in message
    assert str(root / "FashionMNIST" / "raw") in message  # where to put the files by hand
    assert files_in(root) == [] and files_in(empty_system_dir) == []


def test_fashion_mnist_from_a_system_package(tmp_path, monkeypatch, capsys, fresh_announcements):
    system_dir = tmp_path / "usr-share"
    arrays = make_idx_dataset(system_dir, n_train=12, n_test=8, seed=3)
    monkeypatch.setitem(data.DATASETS, "fashion-mnist", ("FashionMNIST", [system_dir]))
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    images, labels = data.load_dataset("fashion-mnist", "test", root=tmp_path / "empty")
    assert f"fashion-mnist: 8 test images from {system_dir} (system package)" in capsys.readouterr().out
    assert images.shape == (8, 1, 28, 28) and labels.tolist() == arrays["test"][1].tolist()
    assert images.min() >= -1 and images.max() <= 1


SYSTEM_FASHION = data.DATASETS["fashion-mnist"][1][0]


@pytest.mark.skipif(not (SYSTEM_FASHION / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist package is not installed")
def test_fashion_mnist_from_the_installed_debian_package(tmp_path, offline, capsys, fresh_announcements):
    images, labels = data.load_dataset("fashion-mnist", "test", root=tmp_path)
    assert f"{SYSTEM_FASHION} (system package)" in capsys.readouterr().out
    assert images.shape == (10_000, 1, 28, 28) and torch.bincount(labels).tolist() == [1000] * 10
    assert images.min() == -1 and images.max() == 1
    accuracy = (utils.metrics.predict(utils.load_classifier("fashion-mnist"), images[:1000]).argmax(1)
                == labels[:1000]).float().mean()
    assert accuracy > 0.85  # the shipped Fashion-MNIST classifier reads this data as it was trained


@pytest.mark.parametrize("split", ["train", "test"])
def test_offline_mnist_falls_back_to_the_shipped_subset(tmp_path, monkeypatch, capsys, fresh_announcements, split):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    images, labels = utils.load_mnist(split, root=tmp_path)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "shipped offline subset data/mnist_5k.npz" in lines[0] and "COURSE_OFFLINE" in lines[0]
    n = 1000 if split == "test" else 3500  # 500 of the 4,000 training digits are the validation split
    assert images.shape == (n, 1, 28, 28) and labels.shape == (n,)
    counts = torch.bincount(labels).tolist()
    assert counts == [100] * 10 if split == "test" else min(counts) > 300  # balanced, drawn at random
    assert images.min() == -1 and images.max() == 1
    assert files_in(tmp_path) == []


def test_mnist_without_network_falls_back_and_says_why(tmp_path, monkeypatch, capsys, fresh_announcements, dead_url):
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)
    resources = [(name + ".gz", None) for pair in data.FILES.values() for name in pair]
    monkeypatch.setattr(data, "_torchvision_sources", lambda name: ([dead_url + "/"], resources))
    images, _ = data.load_dataset("mnist", "test", root=tmp_path)
    out = capsys.readouterr().out
    assert "offline subset" in out and "no network" in out
    assert len(images) == 1000
    assert files_in(tmp_path) == []  # the failed download left nothing behind


def test_the_validation_split_is_a_fixed_random_eighth_at_most_taken_from_train(offline, tmp_path):
    train, y_train = utils.load_mnist("train", root=tmp_path)
    val, y_val = utils.load_mnist("val", root=tmp_path)
    assert len(val) == data.VAL_SIZE == 500 and len(train) + len(val) == 4000
    assert len(set(y_val.tolist())) == 10, "drawn at random, so every digit is in it (the subset is sorted by class)"
    keys = {x.numpy().tobytes() for x in train}
    assert sum(x.numpy().tobytes() in keys for x in val) <= 2, "train and val are disjoint"
    again, _ = utils.load_mnist("val", root=tmp_path)
    assert torch.equal(val, again), "the same images every time"
    assert data.val_mask(30).sum() == 3 and data.val_mask(60_000).sum() == 500


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_the_shipped_subset_is_shuffled_so_any_first_n_images_mix_the_digits(offline, tmp_path, split):
    _, labels = utils.load_mnist(split, root=tmp_path)
    assert len(set(labels[:50].tolist())) == 10, f"the first 50 {split} digits are not a mix of all ten classes"
    assert torch.bincount(labels[:500]).min() >= 30, "the first 500 are not close to balanced"
    _, again = utils.load_mnist(split, root=tmp_path)
    assert torch.equal(labels, again), "the order is fixed, the same at every load"


def test_train_and_test_subsets_do_not_overlap(offline, tmp_path):
    train, _ = utils.load_mnist("train", root=tmp_path)  # an empty root: the shipped subset
    test, _ = utils.load_mnist("test", root=tmp_path)
    train_keys = {hash(x.numpy().tobytes()) for x in train}
    overlap = sum(hash(x.numpy().tobytes()) in train_keys for x in test)
    assert overlap <= 2  # MNIST itself holds a few identical digits; a split that leaked would share many


def test_unknown_dataset_split_and_size_are_refused_with_the_choices():
    with pytest.raises(DatasetError, match=r"Unknown dataset 'celeba'\. Choose one of: mnist, fashion-mnist"):
        data.load_dataset("celeba")
    with pytest.raises(DatasetError, match=r"Unknown split 'valid'\. Use 'train', 'val' or 'test'"):
        data.load_dataset("mnist", "valid")
    with pytest.raises(DatasetError, match="size must be 28 or 32"):
        data.load_dataset("mnist", "train", size=64)


def test_load_mnist_is_load_dataset_of_mnist(tmp_path, offline):
    make_idx_dataset(tmp_path / "MNIST" / "raw", seed=7)
    a, la = utils.load_mnist("test", size=32, root=tmp_path)
    b, lb = data.load_dataset("mnist", "test", 32, root=tmp_path)
    assert torch.equal(a, b) and torch.equal(la, lb)


def test_loaded_tensors_are_independent_copies(tmp_path, offline):
    make_idx_dataset(tmp_path / "MNIST" / "raw", seed=8)
    a, _ = data.load_dataset("mnist", "test", root=tmp_path)
    a.fill_(0.5)
    b, _ = data.load_dataset("mnist", "test", root=tmp_path)
    assert not torch.equal(a, b)  # the cache is not changed through a returned tensor


# ----------------------------------------------------------------------------- Batches


def _index_data(n=10):
    """Images whose every value is the example's index, and labels equal to it: alignment is checkable."""
    idx = torch.arange(n)
    return idx.float().view(n, 1, 1, 1).expand(n, 1, 2, 2).clone(), idx


def _epoch(batches):
    return [(xb[:, 0, 0, 0].long().tolist(), yb.tolist()) for xb, yb in batches]


def test_batches_are_seeded_reproducible_and_differ_by_seed():
    x, y = _index_data(40)
    a, b, c = (utils.Batches(x, y, batch_size=8, seed=s) for s in (3, 3, 4))
    assert _epoch(a) == _epoch(b)
    assert _epoch(a) == _epoch(b)  # the second epoch too
    assert _epoch(c) != _epoch(utils.Batches(x, y, batch_size=8, seed=3))


def test_batches_each_epoch_is_a_new_permutation_with_every_example_once():
    x, y = _index_data(40)
    batches = utils.Batches(x, y, batch_size=8, seed=0)
    orders = []
    for _ in range(3):
        epoch = _epoch(batches)
        assert len(epoch) == len(batches) == 5
        for images, labels in epoch:
            assert images == labels  # images and labels stay aligned
        order = [i for images, _ in epoch for i in images]
        assert sorted(order) == list(range(40))  # every example exactly once
        orders.append(order)
    assert orders[0] != orders[1] != orders[2] and orders[0] != list(range(40))


def test_set_epoch_resumes_the_same_order():
    x, y = _index_data(30)
    first = utils.Batches(x, y, batch_size=5, seed=1)
    epochs = [_epoch(first) for _ in range(3)]
    resumed = utils.Batches(x, y, batch_size=5, seed=1)
    resumed.set_epoch(2)
    assert resumed.epoch == 2
    assert _epoch(resumed) == epochs[2]
    assert resumed.epoch == 3


def test_batches_drop_last_or_keep_the_short_batch():
    x, y = _index_data(10)
    dropped = utils.Batches(x, y, batch_size=4, seed=0)
    sizes = [len(labels) for _, labels in _epoch(dropped)]
    assert len(dropped) == 2 and sizes == [4, 4]
    kept = utils.Batches(x, y, batch_size=4, seed=0, drop_last=False)
    epoch = _epoch(kept)
    assert len(kept) == 3 and [len(labels) for _, labels in epoch] == [4, 4, 2]
    assert sorted(i for _, labels in epoch for i in labels) == list(range(10))


def test_batches_without_shuffle_keep_the_order_and_one_tensor_yields_tensors():
    x, _ = _index_data(6)
    batches = list(utils.Batches(x, batch_size=3, shuffle=False))
    assert all(torch.is_tensor(b) for b in batches)
    assert [b[:, 0, 0, 0].tolist() for b in batches] == [[0, 1, 2], [3, 4, 5]]


def test_batches_are_placed_on_the_device():
    x, y = _index_data(12)
    batches = utils.Batches(x, y, batch_size=4, seed=0, device="meta")  # a device without memory: no GPU needed
    assert all(t.device.type == "meta" for t in batches.tensors)
    for xb, yb in batches:
        assert xb.device.type == "meta" and yb.device.type == "meta" and xb.shape == (4, 1, 2, 2)
    assert x.device.type == "cpu"  # the caller's tensors are not moved


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batches_on_cuda_give_the_cpu_order():
    x, y = _index_data(12)
    on_cpu = _epoch(utils.Batches(x, y, batch_size=4, seed=2))
    cuda = utils.Batches(x, y, batch_size=4, seed=2, device="cuda")
    assert all(xb.is_cuda and yb.is_cuda for xb, yb in cuda)
    cuda.set_epoch(0)
    assert _epoch(cuda) == on_cpu


def test_batches_refuse_bad_arguments():
    x, y = _index_data(10)
    with pytest.raises(ValueError, match="different lengths"):
        utils.Batches(x, y[:9], batch_size=2)
    with pytest.raises(ValueError, match="does not fit 10 examples"):
        utils.Batches(x, y, batch_size=11)
    with pytest.raises(ValueError, match="at least one tensor"):
        utils.Batches(batch_size=2)
    assert len(utils.Batches(x, y, batch_size=11, drop_last=False)) == 1
