"""utils.metrics: the course classifier, the Frechet distance, evaluate/report, rank correlation (runs: test_runs.py)."""

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
from utils.runtime import CourseError

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


def test_evaluate_reads_32x32_half_double_and_graph_tensors_alike(unseen_real):
    """Samples come as the notebooks make them: padded to 32x32 (EBGAN, BEGAN), float16 (the shipped samples),
    bfloat16 (under utils.autocast), float64, still attached to a graph. evaluate() measures them all as the
    float32 images they are (a half-precision tensor fed to the float32 classifier would raise)."""
    x = unseen_real[:100]
    plain = utils.evaluate(x)
    assert plain["n_samples"] == 100
    padded = utils.evaluate(F.pad(x, (2, 2, 2, 2), value=-1.0).requires_grad_())
    assert padded["fd"] == pytest.approx(plain["fd"], rel=1e-9) and padded["class_counts"] == plain["class_counts"]
    assert utils.evaluate(x.double())["fd"] == pytest.approx(plain["fd"], rel=1e-9)
    for low in (torch.float16, torch.bfloat16):
        m = utils.evaluate(x.to(low))  # rounded to 11 or 8 bits: nearly the same numbers
        assert m["fd"] == pytest.approx(plain["fd"], rel=0.05) and m["coverage"] == plain["coverage"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (CI has none; run on a GPU machine)")
def test_evaluate_measures_samples_left_on_the_gpu(unseen_real):
    """A notebook on a GPU passes samples still on the training device; the classifier lives on the CPU."""
    x = unseen_real[:100]
    on_gpu = utils.evaluate(x.cuda().requires_grad_())
    assert on_gpu["fd"] == pytest.approx(utils.evaluate(x)["fd"], rel=1e-9)


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
