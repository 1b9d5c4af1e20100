"""utils.metrics: the course classifier, the Frechet distance, evaluate/report, BestKeeper, samples, shipping."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from conftest import one_message

import utils
from utils import metrics
from utils.runtime import CheckpointError, CourseError

# offline: the metrics read data/ (the shipped subset, or full MNIST where a learner downloaded it) and
# must never try to download into it
pytestmark = pytest.mark.usefixtures("no_network", "offline")


@pytest.fixture(scope="module")
def mnist_test():
    """The held-out MNIST split, read offline (the shipped subset unless full MNIST is in data/)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COURSE_OFFLINE", "1")
        return utils.load_mnist("test")


@pytest.fixture(scope="module")
def classifier(mnist_test):
    return utils.load_classifier("mnist")


# ----------------------------------------------------------------------------- the classifier


def test_classifier_shapes_and_input_forms():
    torch.manual_seed(0)
    model = metrics.Classifier().eval()
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    assert model(x).shape == (5, 10) and model.features(x).shape == (5, 128)
    padded = F.pad(x, (2, 2, 2, 2), value=-1)  # the 32x32 form of the EBGAN/BEGAN notebooks
    assert torch.equal(model(padded), model(x))
    assert torch.equal(model(x.view(5, 784)), model(x))  # flat vectors, as the vanilla GAN makes them


@pytest.mark.parametrize("shape", [(5, 3, 28, 28), (5, 1, 64, 64), (5, 1, 28, 32), (5, 28, 28)])
def test_classifier_refuses_other_images_with_what_to_do(shape):
    with pytest.raises(CourseError) as err:
        metrics.Classifier()(torch.zeros(shape))
    message = one_message(err.value)
    assert "grey 28x28" in message and str(shape) in message and "Reshape samples to N x 1 x 28 x 28" in message


def test_shipped_classifier_is_accurate_on_held_out_mnist(classifier, mnist_test):
    x, y = mnist_test
    assert isinstance(classifier, metrics.Classifier) and not classifier.training
    assert next(classifier.parameters()).device.type == "cpu"
    assert utils.load_classifier("mnist") is classifier  # loaded once, then cached
    accuracy = (metrics.predict(classifier, x).argmax(1) == y).float().mean().item()
    assert accuracy >= 0.95, f"held-out accuracy {accuracy:.3f}"
    shipped = json.loads((metrics.CLASSIFIER_DIR / "mnist.json").read_text())
    if len(y) == shipped["n_test"]:  # the same held-out set it was measured on
        assert accuracy == pytest.approx(shipped["accuracy"], abs=1e-3)


def test_missing_classifier_says_how_to_recreate_it(monkeypatch):
    monkeypatch.setattr(metrics, "_loaded", {})
    monkeypatch.setattr(metrics, "classifier_path", lambda dataset: metrics.CLASSIFIER_DIR / "absent.pt")
    with pytest.raises(CourseError) as err:
        utils.load_classifier("mnist")
    message = str(err.value)
    assert "classifier for mnist is missing" in message and "data/classifiers/absent.pt" in message
    assert "python -m utils.metrics mnist" in message
    with pytest.raises(CourseError, match="Unknown dataset 'svhn'"):
        utils.load_classifier("svhn")


def test_train_classifier_quickly_without_saving(tmp_path, monkeypatch, classifier):
    monkeypatch.setattr(metrics, "CLASSIFIER_DIR", tmp_path)
    floors = dict(metrics._floors)
    model, info = metrics.train_classifier("mnist", epochs=1, save=False)
    assert isinstance(model, metrics.Classifier) and not model.training
    assert info["dataset"] == "mnist" and info["epochs"] == 1 and info["seed"] == 0
    assert info["n_train"] > info["n_test"] > 0 and info["train_seconds"] >= 0
    assert 0.5 < info["accuracy"] <= 1.0  # one epoch already learns digits (chance is 0.1)
    assert list(tmp_path.iterdir()) == []  # save=False writes nothing
    # ...and the metrics keep using the shipped classifier and its floors
    assert utils.load_classifier("mnist") is classifier and metrics._floors == floors


def test_train_classifier_with_save_replaces_the_classifier(tmp_path, monkeypatch, mnist_test):
    x, y = mnist_test
    tiny = {"train": (x[:256], y[:256]), "test": (x[256:356], y[256:356])}
    monkeypatch.setattr(metrics, "load_dataset", lambda name, split, *a, **k: tiny[split])
    monkeypatch.setattr(metrics, "CLASSIFIER_DIR", tmp_path)
    monkeypatch.setattr(metrics, "_loaded", {})
    monkeypatch.setattr(metrics, "_floors", {("mnist", 10, 0): 1.0, ("fashion-mnist", 10, 0): 2.0})
    model, info = metrics.train_classifier("mnist", epochs=1, seed=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist.json", "mnist.pt"]
    assert json.loads((tmp_path / "mnist.json").read_text()) == info
    assert info["n_train"] == 256 and info["n_test"] == 100 and info["seed"] == 3
    assert metrics.load_classifier("mnist") is model
    assert metrics._floors == {("fashion-mnist", 10, 0): 2.0}  # floors of the old classifier are gone
    reloaded = metrics.Classifier()
    assert utils.load_checkpoint(tmp_path / "mnist.pt", models={"classifier": reloaded})["accuracy"] == info["accuracy"]
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), model.state_dict().values(), strict=True))


def test_predict_gives_probabilities_independent_of_batch_size(classifier, mnist_test):
    x = mnist_test[0][::50]
    probs = metrics.predict(classifier, x)
    assert probs.shape == (len(x), 10)
    assert torch.allclose(probs.sum(1), torch.ones(len(x)), atol=1e-5) and (probs >= 0).all()
    assert torch.allclose(metrics.predict(classifier, x, batch_size=3), probs, atol=1e-6)
    with torch.no_grad():
        assert torch.equal(probs.argmax(1), classifier(x).argmax(1))


def test_features_are_the_penultimate_layer_in_float64(classifier, mnist_test):
    x = mnist_test[0][::50]
    feats = metrics.features(classifier, x, batch_size=7)
    assert feats.shape == (len(x), 128) and feats.dtype == torch.float64
    with torch.no_grad():
        assert torch.allclose(feats, classifier.features(x).double(), atol=1e-5)
    assert (feats >= 0).all()  # after the ReLU


# ----------------------------------------------------------------------------- the Frechet distance


def scipy_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with scipy.linalg.sqrtm, as the FID papers compute it."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))


def _feature_sets(seed, n=400, d=24):
    rng = np.random.default_rng(seed)
    mix_a, mix_b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    a = rng.normal(size=(n, d)) @ mix_a + 0.5
    b = rng.normal(size=(n, d)) @ (mix_a + 0.3 * mix_b) - 0.2
    return a, b


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frechet_distance_matches_scipy_sqrtm(seed):
    a, b = _feature_sets(seed)
    got = metrics.frechet_distance(torch.from_numpy(a), torch.from_numpy(b))
    assert got == pytest.approx(scipy_frechet(a, b), rel=1e-6)
    assert got > 1  # the two sets differ


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # scipy's sqrtm warns on singular matrices
def test_frechet_distance_matches_scipy_on_relu_features_with_dead_units():
    a, b = _feature_sets(3, n=300, d=32)
    a, b = np.maximum(a, 0), np.maximum(b, 0)
    a[:, :4] = 0  # units that never fire: a singular covariance, as real classifier features have
    b[:, :4] = 0
    got = metrics.frechet_distance(torch.from_numpy(a), torch.from_numpy(b))
    assert got == pytest.approx(scipy_frechet(a, b), rel=1e-5)


def test_frechet_distance_is_symmetric_zero_for_identical_sets_and_sees_a_shift():
    a, b = (torch.from_numpy(v) for v in _feature_sets(4))
    assert metrics.frechet_distance(a, b) == pytest.approx(metrics.frechet_distance(b, a), rel=1e-9)
    assert metrics.frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    shift = torch.zeros(a.shape[1], dtype=torch.float64)
    shift[0], shift[1] = 3.0, 4.0
    assert metrics.frechet_distance(a, a + shift) == pytest.approx(25.0, rel=1e-6)  # |shift|^2, same covariance
    assert metrics.frechet_distance(a.float(), b.float()) == pytest.approx(metrics.frechet_distance(a, b), rel=1e-4)


@pytest.mark.parametrize(("a", "b"), [((10, 4), (10, 5)), ((1, 4), (10, 4)), ((10,), (10,))])
def test_frechet_distance_refuses_mismatched_feature_sets(a, b):
    with pytest.raises(CourseError, match=r"needs two N x D feature sets \(N >= 2\)"):
        metrics.frechet_distance(torch.zeros(a), torch.zeros(b))


# ----------------------------------------------------------------------------- held-out reference and floor


def test_held_out_reference_is_a_seeded_draw_covering_every_class(classifier, mnist_test):
    x, _ = mnist_test
    ref = metrics.held_out("mnist", 200, seed=0)
    assert ref.shape == (200, 1, 28, 28)
    assert torch.equal(ref, metrics.held_out("mnist", 200, seed=0))
    assert not torch.equal(ref, metrics.held_out("mnist", 200, seed=1))
    assert torch.equal(metrics.held_out("mnist", len(x), seed=0)[:200], ref)  # a prefix of one permutation
    # the offline held-out split is sorted by class: the first 200 images alone would be only 0s and 1s
    classes = metrics.predict(classifier, ref).argmax(1).unique()
    assert len(classes) == 10
    with pytest.raises(CourseError, match=rf"Only {len(x)} held-out mnist images; measure with n <= {len(x)}"):
        metrics.held_out("mnist", len(x) + 1)


def test_real_floor_is_positive_cached_and_shrinks_with_more_samples(classifier, monkeypatch):
    floor = metrics.real_floor("mnist", 200)
    assert 0 < floor < 200
    calls = []
    monkeypatch.setattr(metrics, "frechet_distance", lambda *a: calls.append(1) or 0.0)
    assert metrics.real_floor("mnist", 200) == floor and calls == []  # cached: measured once per (n, seed)
    monkeypatch.undo()
    assert metrics.real_floor("mnist", 500) < floor  # more samples, less sampling noise


# ----------------------------------------------------------------------------- evaluate and report


N_EVAL = 300


@pytest.fixture(scope="module")
def unseen_real(mnist_test, classifier):
    """Held-out real digits that are not in the reference set evaluate() draws (seed 0)."""
    order = metrics.held_out("mnist", len(mnist_test[1]), seed=0)
    return order[N_EVAL:2 * N_EVAL]


def test_evaluate_ranks_real_above_degraded_above_noise(unseen_real):
    g = torch.Generator().manual_seed(0)
    real = utils.evaluate(unseen_real, "mnist", n=N_EVAL)
    blurred = utils.evaluate(F.avg_pool2d(unseen_real, 5, stride=1, padding=2, count_include_pad=False), n=N_EVAL)
    noisy = utils.evaluate((unseen_real + 0.8 * torch.randn(unseen_real.shape, generator=g)).clamp(-1, 1), n=N_EVAL)
    noise = utils.evaluate(torch.rand(N_EVAL, 1, 28, 28, generator=g) * 2 - 1, n=N_EVAL)

    assert real["n_samples"] == real["n_real"] == N_EVAL and real["dataset"] == "mnist"
    assert real["floor"] == metrics.real_floor("mnist", N_EVAL)
    assert real["coverage"] == 10 and real["fd_ratio"] < 2 and real["confidence"] > 0.9
    assert sum(real["class_counts"]) == N_EVAL and len(real["class_counts"]) == 10
    assert noise["fd"] > 20 * real["fd"] and noise["coverage"] < 5
    for degraded in (blurred, noisy):
        assert real["fd"] < degraded["fd"] < noise["fd"]
        assert degraded["coverage"] < 10 or degraded["fd_ratio"] > 3
    assert blurred["confidence"] < real["confidence"]


def test_evaluate_penalises_samples_of_only_two_classes(unseen_real, classifier):
    digits = metrics.predict(classifier, unseen_real).argmax(1)
    collapsed = unseen_real[digits < 2]  # real images, but only 0s and 1s: a collapsed generator
    collapsed = collapsed.repeat(-(-N_EVAL // len(collapsed)), 1, 1, 1)[:N_EVAL]
    m = utils.evaluate(collapsed, n=N_EVAL)
    assert m["coverage"] == 2 and m["fd_ratio"] > 5


def test_evaluate_reads_32x32_and_other_devices_alike(unseen_real):
    plain = utils.evaluate(unseen_real[:100])
    padded = utils.evaluate(F.pad(unseen_real[:100], (2, 2, 2, 2), value=-1.0).requires_grad_())
    assert plain["n_samples"] == 100
    assert padded["fd"] == pytest.approx(plain["fd"], rel=1e-9) and padded["coverage"] == plain["coverage"]


def test_evaluate_clamps_n_to_the_samples_and_the_held_out_set(unseen_real, mnist_test, monkeypatch):
    assert utils.evaluate(unseen_real[:50], n=1000)["n_samples"] == 50
    x, y = mnist_test
    small = {"train": (x[:100], y[:100]), "test": (x[100:160], y[100:160])}  # a held-out set of 60, to stay quick
    monkeypatch.setattr(metrics, "load_dataset", lambda name, split, *a, **k: small[split])
    monkeypatch.setattr(metrics, "_floors", {})
    m = utils.evaluate(unseen_real[:100], n=None)
    assert m["n_samples"] == m["n_real"] == 60


@pytest.mark.parametrize(("samples", "words"), [
    (torch.zeros(20, 3, 28, 28), ["grey 28x28", "Reshape samples"]),
    (torch.full((20, 1, 28, 28), float("nan")), ["NaN", "diverged", "09_gan_pitfalls"]),
    (torch.zeros(5, 1, 28, 28), ["at least 10", "1,000"]),
    (np.zeros((20, 1, 28, 28), np.float32), ["must be a tensor"]),
    (torch.zeros(20, 784), ["must be a tensor N x C x H x W", "[20, 784]"]),
])
def test_evaluate_refuses_bad_samples_with_one_clear_message(samples, words, classifier):
    with pytest.raises(CourseError) as err:
        utils.evaluate(samples)
    message = one_message(err.value)
    assert all(w in message for w in words), message


def test_report_states_every_number_and_the_sample_counts():
    m = {"dataset": "mnist", "n_samples": 1000, "n_real": 1000, "fd": 12.345, "floor": 7.25, "fd_ratio": 1.7,
         "coverage": 9, "class_counts": [100] * 10, "confidence": 0.9512}
    line = utils.report(m)
    assert "\n" not in line
    assert "Frechet distance 12.35" in line and "floor 7.25" in line and "ratio 1.7x" in line
    assert "coverage 9/10 classes with >= 5%" in line and "confidence 0.951" in line
    assert "1,000 samples vs 1,000 held-out real mnist images" in line


def test_class_names():
    assert metrics.class_names("mnist") == [str(d) for d in range(10)]
    assert metrics.class_names("fashion-mnist")[9] == "Ankle boot"


# ----------------------------------------------------------------------------- BestKeeper


def _net(value):
    net = torch.nn.Linear(2, 1)
    with torch.no_grad():
        net.weight.fill_(value)
    return net


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


@pytest.fixture
def course_dirs(tmp_path, monkeypatch):
    """runs/ and data/pretrained/ of a course in tmp_path: nothing is written into the real ones."""
    runs, pretrained = tmp_path / "runs", tmp_path / "pretrained"
    monkeypatch.setattr(metrics, "RUNS_DIR", runs)
    monkeypatch.setattr(metrics, "PRETRAINED_DIR", pretrained)
    return runs, pretrained


def test_save_and_load_samples_with_info(course_dirs):
    runs, _ = course_dirs
    samples = torch.rand(12, 1, 28, 28) * 2 - 1
    path = utils.save_samples(samples, "04_vanilla_gan", info={"steps": 300, "profile": "smoke"})
    assert path == runs / "04_vanilla_gan" / "samples.pt"
    assert json.loads((runs / "04_vanilla_gan" / "info.json").read_text()) == {"steps": 300, "profile": "smoke"}
    got, info, source = utils.load_samples("04_vanilla_gan")
    assert torch.equal(got, samples) and info == {"steps": 300, "profile": "smoke"} and source == "this machine's run"


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
    runs, _ = course_dirs
    utils.save_samples(torch.zeros(4, 1, 28, 28), "07_began")
    path = runs / "07_began" / "samples.pt"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CourseError, match=r"samples\.pt is corrupt .*run notebooks/07_began\.ipynb again"):
        utils.load_samples("07_began")
    assert len(path.read_bytes()) == 200


def test_ship_run_copies_the_best_generator_and_half_precision_samples(course_dirs):
    runs, pretrained = course_dirs
    G = _net(0.25)
    utils.BestKeeper(runs / "08_wgan" / "best.pt").update(1.0, 40, G=G)
    samples = torch.rand(20, 1, 28, 28) * 2 - 1
    utils.save_samples(samples, "08_wgan", info={"train_seconds": 12.5})
    dst = utils.ship_run("08_wgan")
    assert dst == pretrained / "08_wgan"
    assert sorted(p.name for p in dst.iterdir()) == ["generator.pt", "info.json", "samples.pt"]
    assert (dst / "generator.pt").read_bytes() == (runs / "08_wgan" / "best.pt").read_bytes()
    shipped = torch.load(dst / "samples.pt", weights_only=True)
    assert shipped.dtype == torch.float16 and torch.allclose(shipped.float(), samples, atol=1e-3)
    assert json.loads((dst / "info.json").read_text()) == {"train_seconds": 12.5}
    # the notebook's pretrained path finds it and loads it
    assert utils.pretrained_path("08_wgan") == dst / "generator.pt"
    G2 = _net(0.0)
    assert utils.load_checkpoint(utils.pretrained_path("08_wgan"), models={"G": G2})["step"] == 40
    assert (G2.weight == 0.25).all()


def test_ship_run_with_labels_keeps_them_as_integers(tmp_path, course_dirs):
    utils.BestKeeper(tmp_path / "r" / "11_conditional_gan" / "best.pt").update(1.0, 1, G=_net(0.0))
    utils.save_samples(torch.zeros(4, 1, 28, 28), "11_conditional_gan", root=tmp_path / "r", labels=[1, 2, 3, 4])
    dst = utils.ship_run("11_conditional_gan", root=tmp_path / "r")
    shipped = torch.load(dst / "samples.pt", weights_only=True)
    assert shipped["samples"].dtype == torch.float16 and shipped["labels"].tolist() == [1, 2, 3, 4]
    assert not (dst / "info.json").exists()


def test_ship_run_of_an_unfinished_run_says_what_to_do(course_dirs):
    runs, pretrained = course_dirs
    utils.save_samples(torch.zeros(4, 1, 28, 28), "05_dcgan")
    with pytest.raises(CourseError, match=r"runs/05_dcgan/best\.pt is missing: run notebooks/05_dcgan\.ipynb in the cpu"):
        utils.ship_run("05_dcgan")
    assert not pretrained.exists()


def test_pretrained_path_is_data_pretrained_name_generator():
    assert utils.pretrained_path("04_vanilla_gan") == metrics.DATA_DIR / "pretrained" / "04_vanilla_gan" / "generator.pt"


def test_rank_correlation_is_spearmans_with_tied_values_sharing_their_mean_rank():
    from scipy.stats import spearmanr

    assert utils.rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert utils.rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert utils.rank_correlation([1, 2, 3, 4], [1, 100, 2, 3]) == pytest.approx(0.4)  # ranks, not values
    g = torch.Generator().manual_seed(0)
    a, b = torch.randint(0, 4, (30,), generator=g), torch.randn(30, generator=g)  # a has many ties
    assert utils.rank_correlation(a, b) == pytest.approx(spearmanr(a.numpy(), b.numpy()).statistic, abs=1e-6)


def test_rank_correlation_refuses_sequences_of_different_lengths():
    with pytest.raises(CourseError, match="same length"):
        utils.rank_correlation([1, 2, 3], [1, 2])
