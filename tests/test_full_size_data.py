"""The full-size path: with a completed 60,000-digit download in data/MNIST/raw, a notebook reads it and trains
the same number of steps as on the offline subset (benchmarks/learner_paths.py times both in the cpu profile)."""

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("learner_paths", ROOT / "benchmarks" / "learner_paths.py")
paths = importlib.util.module_from_spec(spec)
sys.modules["learner_paths"] = paths
spec.loader.exec_module(paths)


@pytest.fixture(scope="module")
def full_course(tmp_path_factory):
    return paths.course_copy(tmp_path_factory.mktemp("full"), full_size=True)


def test_the_standin_is_a_download_of_the_full_size(full_course):
    from utils.data import read_idx

    raw = full_course / "data" / "MNIST" / "raw"
    train, labels = read_idx(raw / "train-images-idx3-ubyte.gz"), read_idx(raw / "train-labels-idx1-ubyte.gz")
    test = read_idx(raw / "t10k-images-idx3-ubyte.gz")
    assert train.shape == (60_000, 28, 28) and labels.shape == (60_000,) and test.shape == (10_000, 28, 28)
    assert np.bincount(labels).tolist() == [6000] * 10
    assert not np.array_equal(train[:4000], train[4000:8000]), "the copies are shifted, not repeated"


@pytest.mark.parametrize(("stem", "trained"), [("04_vanilla_gan", r"trained (\d+) steps"),
                                               ("03_autoencoders", r"autoencoder: (\d+) steps")])
def test_a_notebook_reads_the_full_download_and_trains_the_same_steps(full_course, tmp_path, stem, trained):
    _, full_text = paths.execute(full_course, stem, profile="smoke")
    assert "mnist: 59,500 train images from data/MNIST/raw" in full_text
    offline = paths.course_copy(tmp_path, full_size=False)
    _, offline_text = paths.execute(offline, stem, profile="smoke")
    assert "mnist: 3,500 train images from the shipped offline subset" in offline_text
    assert re.findall(trained, full_text) == re.findall(trained, offline_text) != [], \
        "the training budget is counted in steps, whatever the training split holds"
