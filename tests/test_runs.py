"""utils.runs: where a run's files go, the evaluation noise, the best checkpoint, samples, shipped generators."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import one_message

import utils
from utils import runs
from utils.data import DATA_DIR
from utils.runtime import ROOT, CheckpointError, CourseError, read_checkpoint

pytestmark = pytest.mark.usefixtures("no_network")


def _net(value):
    net = torch.nn.Linear(2, 1)
    with torch.no_grad():
        net.weight.fill_(value)
        net.bias.fill_(value)
    return net


@pytest.fixture
def course_dirs(tmp_path, monkeypatch):
    """runs/ and data/pretrained/ of a course in tmp_path: nothing is written into the real ones."""
    run_root, pretrained = tmp_path / "runs", tmp_path / "pretrained"
    monkeypatch.setattr(runs, "RUNS_DIR", run_root)
    monkeypatch.setattr(runs, "PRETRAINED_DIR", pretrained)
    return run_root, pretrained


# ----------------------------------------------------------------------------- run_dir


def test_run_dir_is_runs_name_under_the_course():
    assert utils.run_dir("04_vanilla_gan") == ROOT / "runs" / "04_vanilla_gan"
    assert utils.run_dir("08_wgan/clipped") == ROOT / "runs" / "08_wgan" / "clipped"  # a notebook with several runs
    assert utils.run_dir("05_dcgan", root="/somewhere") == Path("/somewhere") / "05_dcgan"


def test_run_dir_reads_the_runs_folder_when_called(course_dirs):
    """One definition: moving RUNS_DIR moves every run's files (the Logger's, the samples, the shipped run's source)."""
    run_root, _ = course_dirs
    assert utils.run_dir("06_ebgan") == run_root / "06_ebgan"
    assert utils.save_samples(torch.zeros(3, 1, 28, 28), "06_ebgan") == run_root / "06_ebgan" / "samples.pt"
    assert utils.load_samples("06_ebgan")[2] == "this machine's run"


# ----------------------------------------------------------------------------- the evaluation noise


def test_eval_noise_is_the_course_constant_noise():
    assert utils.EVAL_SEED == 1234 and utils.N_SAMPLES == 1000
    z = utils.eval_noise(100)
    assert z.shape == (1000, 100) and z.dtype == torch.float32 and z.device.type == "cpu"
    assert torch.equal(z, utils.eval_noise(100)), "the same noise every call"
    torch.manual_seed(0)
    a = utils.eval_noise(100)
    torch.manual_seed(1)
    assert torch.equal(a, utils.eval_noise(100)), "independent of the global random state"
    before = torch.get_rng_state()
    utils.eval_noise(100)
    assert torch.equal(before, torch.get_rng_state()), "and it leaves the global random state alone"


def test_eval_noise_is_what_the_notebooks_drew_before_it_existed():
    """Same samples, same stored metrics: eval_noise replaces the notebooks' own expressions bit for bit."""
    # 04, 05, 08 (and 06, 10, 11 with 1,000 rows): torch.randn(N_SAMPLES, Z_DIM, generator=...manual_seed(1234))
    old = torch.randn(1000, 100, generator=torch.Generator().manual_seed(1234))
    assert torch.equal(utils.eval_noise(100), old)
    # 07: z uniform in [-1, 1]^H, torch.rand(n, H, generator=...) * 2 - 1
    old_uniform = torch.rand(1000, 64, generator=torch.Generator().manual_seed(1234)) * 2 - 1
    assert torch.equal(utils.eval_noise(64, uniform=True), old_uniform)
    # a convolutional G's noise keeps its extra axes
    assert torch.equal(utils.eval_noise(100, 1, 1), old.view(1000, 100, 1, 1))


def test_eval_noise_shapes_distributions_and_device():
    u = utils.eval_noise(8, 4, uniform=True)
    assert u.shape == (1000, 8, 4) and u.min() >= -1 and u.max() <= 1
    assert u.min() < -0.99 and u.max() > 0.99 and abs(u.mean().item()) < 0.02  # uniform over all of [-1, 1]
    n = utils.eval_noise(32)
    assert abs(n.mean().item()) < 0.02 and abs(n.std().item() - 1) < 0.02 and n.abs().max() > 3  # standard normal
    assert utils.eval_noise(2, device="meta").device.type == "meta"
    assert utils.eval_noise(2, device=torch.device("cpu")).device.type == "cpu"


# ----------------------------------------------------------------------------- BestKeeper


def test_best_keeper_saves_only_improvements_and_restores_the_best(tmp_path):
    keeper = utils.BestKeeper(tmp_path / "run" / "best.pt")
    G = _net(0.0)
    saved = []
    for step, score in enumerate([5.0, 3.0, 4.0, float("nan"), 3.0, 2.0, float("inf"), 2.5]):
        with torch.no_grad():
            G.weight.fill_(float(step))
        saved.append(keeper.update(score, step, G=G))
    assert saved == [True, True, False, False, False, True, False, False]
    assert keeper.best == 2.0 and keeper.best_step == 5
    G2 = _net(-1.0)
    assert keeper.restore(G=G2) == {"step": 5, "score": 2.0}
    assert (G2.weight == 5.0).all()  # the weights of the best step, not the last
    with pytest.raises(CheckpointError, match="has no model named 'D'"):
        keeper.restore(D=_net(0.0))


def test_best_keeper_higher_is_better_and_nothing_saved_yet(tmp_path):
    keeper = utils.BestKeeper(tmp_path / "best.pt", lower_is_better=False)
    with pytest.raises(CheckpointError, match="No checkpoint"):
        keeper.restore(G=_net(0.0))
    assert [keeper.update(s, i, G=_net(s)) for i, s in enumerate([0.5, 0.9, 0.7, 0.95])] == [True, True, False, True]
    assert keeper.best == 0.95 and keeper.best_step == 3


# ----------------------------------------------------------------------------- samples and shipping


def test_save_and_load_samples_with_info(course_dirs):
    run_root, _ = course_dirs
    samples = torch.rand(12, 1, 28, 28) * 2 - 1
    info = {"dataset": "mnist", "steps": 300, "profile": "smoke"}
    path = utils.save_samples(samples, "04_vanilla_gan", info=info)
    assert path == run_root / "04_vanilla_gan" / "samples.pt"
    assert json.loads((run_root / "04_vanilla_gan" / "info.json").read_text()) == info
    got, got_info, source = utils.load_samples("04_vanilla_gan")
    assert torch.equal(got, samples) and got_info == info and source == "this machine's run"


def test_save_samples_with_labels_and_an_explicit_root(tmp_path, course_dirs):
    samples, labels = torch.zeros(10, 1, 28, 28), np.arange(10)
    utils.save_samples(samples, "11_conditional_gan", root=tmp_path / "elsewhere", labels=labels)
    assert not (course_dirs[0] / "11_conditional_gan").exists()
    got, info, _ = utils.load_samples("11_conditional_gan", root=tmp_path / "elsewhere")
    assert set(got) == {"samples", "labels"} and info == {}
    assert got["labels"].dtype == torch.int64 and got["labels"].tolist() == list(range(10))
    assert torch.equal(got["samples"], samples)


@pytest.mark.parametrize(("samples", "words"), [
    (torch.full((4, 1, 28, 28), 2.0), ["[-1, 1]", "end G with Tanh"]),
    (torch.full((4, 1, 28, 28), float("inf")), ["NaN or infinite", "09_gan_pitfalls"]),
    (torch.zeros(4, 784), ["must be a tensor N x C x H x W"]),
])
def test_save_samples_refuses_bad_samples_and_writes_nothing(course_dirs, samples, words):
    with pytest.raises(CourseError) as err:
        utils.save_samples(samples, "05_dcgan")
    assert all(w in one_message(err.value) for w in words)
    assert not course_dirs[0].exists()


def test_load_samples_falls_back_to_the_shipped_run_then_says_what_to_do(course_dirs):
    _, pretrained = course_dirs
    with pytest.raises(CourseError, match=r"No samples for 06_ebgan: run notebooks/06_ebgan\.ipynb first"):
        utils.load_samples("06_ebgan")
    (pretrained / "06_ebgan").mkdir(parents=True)
    torch.save(torch.zeros(3, 1, 32, 32).half(), pretrained / "06_ebgan" / "samples.pt")
    got, info, source = utils.load_samples("06_ebgan")
    assert got.dtype == torch.float32 and got.shape == (3, 1, 32, 32)
    assert source == "the shipped cpu-profile run" and info == {}


def test_corrupt_samples_file_says_what_to_do_and_is_kept(course_dirs):
    run_root, _ = course_dirs
    utils.save_samples(torch.zeros(4, 1, 28, 28), "07_began")
    path = run_root / "07_began" / "samples.pt"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CourseError, match=r"samples\.pt is corrupt .*run notebooks/07_began\.ipynb again"):
        utils.load_samples("07_began")
    assert len(path.read_bytes()) == 200


def test_ship_run_copies_the_best_generator_and_half_precision_samples(course_dirs):
    run_root, pretrained = course_dirs
    G = _net(0.25)
    utils.BestKeeper(run_root / "08_wgan" / "best.pt").update(1.0, 40, G=G)
    samples = torch.rand(20, 1, 28, 28) * 2 - 1
    utils.save_samples(samples, "08_wgan", info={"dataset": "mnist", "train_seconds": 12.5})
    dst = utils.ship_run("08_wgan")
    assert dst == pretrained / "08_wgan"
    assert sorted(p.name for p in dst.iterdir()) == ["generator.pt", "info.json", "samples.pt"]
    assert (dst / "generator.pt").read_bytes() == (run_root / "08_wgan" / "best.pt").read_bytes()
    shipped = torch.load(dst / "samples.pt", weights_only=True)
    assert shipped.dtype == torch.float16 and torch.allclose(shipped.float(), samples, atol=1e-3)
    assert json.loads((dst / "info.json").read_text()) == {"dataset": "mnist", "train_seconds": 12.5}
    # ...and the notebook's PRETRAINED path loads it back
    G2 = _net(0.0)
    info = utils.load_pretrained("08_wgan", "mnist", G=G2)
    assert info == {"dataset": "mnist", "train_seconds": 12.5, "step": 40, "score": 1.0}
    assert (G2.weight == 0.25).all() and (G2.bias == 0.25).all()


def test_ship_run_with_labels_keeps_them_as_integers(tmp_path, course_dirs):
    utils.BestKeeper(tmp_path / "r" / "11_conditional_gan" / "best.pt").update(1.0, 1, G=_net(0.0))
    utils.save_samples(torch.zeros(4, 1, 28, 28), "11_conditional_gan", root=tmp_path / "r", labels=[1, 2, 3, 4])
    dst = utils.ship_run("11_conditional_gan", root=tmp_path / "r")
    shipped = torch.load(dst / "samples.pt", weights_only=True)
    assert shipped["samples"].dtype == torch.float16 and shipped["labels"].tolist() == [1, 2, 3, 4]
    assert not (dst / "info.json").exists()


def test_ship_run_of_an_unfinished_run_says_what_to_do(course_dirs):
    _, pretrained = course_dirs
    utils.save_samples(torch.zeros(4, 1, 28, 28), "05_dcgan")
    with pytest.raises(CourseError, match=r"runs/05_dcgan/best\.pt is missing: run notebooks/05_dcgan\.ipynb in the cpu"):
        utils.ship_run("05_dcgan")
    assert not pretrained.exists()


# ----------------------------------------------------------------------------- load_pretrained


def test_pretrained_path_is_data_pretrained_name_generator():
    assert runs.pretrained_path("04_vanilla_gan") == DATA_DIR / "pretrained" / "04_vanilla_gan" / "generator.pt"
    assert "pretrained_path" not in utils.__all__, "notebooks call load_pretrained, not a path of their own"


def _ship(pretrained, stem, info, step=120, score=33.5, value=0.75):
    """A tiny generator shipped the way ship_run ships one: a save_checkpoint file and info.json beside it."""
    G = _net(value)
    utils.save_checkpoint(pretrained / stem / "generator.pt", step=step, models={"G": G}, score=score)
    if info is not None:
        (pretrained / stem / "info.json").write_text(json.dumps(info))
    return G


def test_load_pretrained_loads_the_weights_and_returns_info_step_and_score(course_dirs):
    _, pretrained = course_dirs
    shipped = {"dataset": "fashion-mnist", "profile": "cpu", "steps": 150, "train_seconds": 80.5,
               "metrics": {"fd": 30.0, "coverage": 9}}
    _ship(pretrained, "05_dcgan", shipped)
    G = _net(0.0)
    info = utils.load_pretrained("05_dcgan", "fashion-mnist", "cpu", G=G)
    assert info == {**shipped, "step": 120, "score": 33.5}
    assert (G.weight == 0.75).all() and (G.bias == 0.75).all()
    D = _net(0.0)
    with pytest.raises(CheckpointError, match="has no model named 'D'"):
        utils.load_pretrained("05_dcgan", "fashion-mnist", G=G, D=D)
    assert (D.weight == 0).all()


def test_load_pretrained_refuses_a_generator_of_another_dataset_naming_both(course_dirs):
    _, pretrained = course_dirs
    _ship(pretrained, "07_began", {"dataset": "mnist", "profile": "cpu"})
    G = _net(0.0)
    with pytest.raises(CourseError) as err:
        utils.load_pretrained("07_began", "fashion-mnist", G=G)
    message = one_message(err.value)
    assert "07_began" in message and "trained on mnist, not fashion-mnist" in message
    assert "PRETRAINED = False" in message and "DATASET = 'mnist'" in message
    assert (G.weight == 0).all(), "nothing is loaded from a generator of another dataset"


def test_a_shipped_generator_without_a_dataset_is_an_mnist_one(course_dirs):
    """The generators shipped before info.json named its dataset were all trained on MNIST."""
    _, pretrained = course_dirs
    _ship(pretrained, "04_vanilla_gan", {"profile": "cpu"})
    _ship(pretrained, "06_ebgan", None)
    for stem in ("04_vanilla_gan", "06_ebgan"):
        assert utils.load_pretrained(stem, "mnist", G=_net(0.0))["step"] == 120
        with pytest.raises(CourseError, match="trained on mnist, not fashion-mnist"):
            utils.load_pretrained(stem, "fashion-mnist", G=_net(0.0))


def test_load_pretrained_without_a_shipped_generator_says_what_to_do(course_dirs):
    _, pretrained = course_dirs
    with pytest.raises(CourseError) as err:
        utils.load_pretrained("09_gan_pitfalls", "mnist", G=_net(0.0))
    message = one_message(err.value)
    assert "No shipped generator for 09_gan_pitfalls" in message
    assert str(pretrained / "09_gan_pitfalls" / "generator.pt") in message and "PRETRAINED = False" in message


def test_load_pretrained_refuses_an_unknown_dataset_name(course_dirs):
    _, pretrained = course_dirs
    _ship(pretrained, "04_vanilla_gan", {"dataset": "mnist"})
    with pytest.raises(CourseError, match="Unknown dataset 'MNIST'"):
        utils.load_pretrained("04_vanilla_gan", "MNIST", G=_net(0.0))


SHIPPED = sorted(p.parent.name for p in (DATA_DIR / "pretrained").glob("*/generator.pt"))


@pytest.mark.parametrize("stem", SHIPPED)
def test_every_shipped_generator_loads_as_the_best_of_a_cpu_run(stem):
    info = utils.load_pretrained(stem, "mnist")
    assert info["profile"] == "cpu" and info.get("dataset", "mnist") == "mnist"
    assert 0 < info["step"] <= info["steps"] and np.isfinite(info["score"])
    assert "G" in read_checkpoint(runs.pretrained_path(stem))["models"], "the notebooks load it with G=G"
    with pytest.raises(CourseError, match="not fashion-mnist"):
        utils.load_pretrained(stem, "fashion-mnist")
