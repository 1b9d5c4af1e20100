"""Measuring generated samples with a small classifier the course trains itself.

- a Frechet distance between the classifier's penultimate features of samples and of held-out real
  images, next to its real-vs-real floor at the same sample count;
- class coverage: how many classes receive at least 5% of the samples;
- confidence: the classifier's mean top-class probability on the samples.
Every figure comes with its sample counts.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import CLASS_NAMES, DATA_DIR, Batches, check_name, load_dataset
from .runtime import ROOT, CourseError, atomic_write, load_checkpoint, save_checkpoint, seed_everything

CLASSIFIER_DIR = DATA_DIR / "classifiers"
COVERAGE_SHARE = 0.05
CLASSIFIER_EPOCHS = {"mnist": 15, "fashion-mnist": 4}  # what the shipped classifiers were trained with
_loaded: dict[str, Classifier] = {}
_floors: dict[tuple, float] = {}


class Classifier(nn.Module):
    """A small CNN for 28x28 grey images; `features` is the 128-d penultimate layer."""

    def __init__(self, n_classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 32 x 14 x 14
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 64 x 7 x 7
            nn.Flatten(), nn.Dropout(0.25), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
        )
        self.head = nn.Linear(128, n_classes)

    @staticmethod
    def prepare(x: torch.Tensor) -> torch.Tensor:
        """Grey N x 1 x 28 x 28 (or the 32 x 32 padded form) in [-1, 1]."""
        if x.ndim == 2 and x.shape[1] == 784:
            x = x.view(-1, 1, 28, 28)
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[-1] not in (28, 32) or x.shape[-2] != x.shape[-1]:
            raise CourseError(
                f"The course classifier measures grey 28x28 (or 32x32) images; got shape {tuple(x.shape)}. "
                "Reshape samples to N x 1 x 28 x 28."
            )
        if x.shape[-1] == 32:
            x = x[..., 2:30, 2:30]
        return x.float()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.prepare(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def classifier_path(dataset: str) -> Path:
    return CLASSIFIER_DIR / f"{dataset}.pt"


def train_classifier(dataset: str = "mnist", epochs: int = 8, seed: int = 0, save: bool = True,
                     device=None) -> tuple[Classifier, dict]:
    """Retrain the course classifier reproducibly; returns (model, info with held-out accuracy)."""
    check_name(dataset)
    seed_everything(seed)
    device = torch.device(device or "cpu")
    x, y = load_dataset(dataset, "train")
    x_test, y_test = load_dataset(dataset, "test")
    model = Classifier().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = Batches(x, y, batch_size=128, seed=seed, device=device)
    start = time.perf_counter()
    for _epoch in range(epochs):
        model.train()
        for xb, yb in batches:
            # small shifts make the classifier judge shapes rather than exact pixel positions
            dx, dy = torch.randint(-2, 3, (2,)).tolist()
            xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    accuracy = (predict(model, x_test).argmax(1) == y_test).float().mean().item()
    info = {"dataset": dataset, "accuracy": round(accuracy, 4), "n_train": len(y), "n_test": len(y_test),
            "epochs": epochs, "seed": seed, "train_seconds": round(time.perf_counter() - start, 1)}
    if save:  # the new classifier replaces the shipped one, and the floors measured with the old one
        save_checkpoint(classifier_path(dataset), step=epochs, models={"classifier": model}, **info)
        atomic_write(classifier_path(dataset).with_suffix(".json"),
                     lambda tmp: Path(tmp).write_text(json.dumps(info, indent=2) + "\n"))
        _loaded[dataset] = model.cpu()
        for key in [k for k in _floors if k[0] == dataset]:
            del _floors[key]
    return model, info


def load_classifier(dataset: str = "mnist") -> Classifier:
    """The shipped course classifier for `dataset` (trained by train_classifier), on the CPU, in eval mode."""
    check_name(dataset)
    if dataset not in _loaded:
        path = classifier_path(dataset)
        if not path.is_file():
            raise CourseError(
                f"The course classifier for {dataset} is missing ({path.relative_to(ROOT)}). Recreate it with "
                f"`python -m utils.metrics {dataset}` (about a minute on a CPU)."
            )
        model = Classifier()
        load_checkpoint(path, models={"classifier": model})
        _loaded[dataset] = model.eval()
    return _loaded[dataset]


@torch.no_grad()
def predict(model: Classifier, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Class probabilities (N x 10) for images in [-1, 1]."""
    model.eval()
    dev = next(model.parameters()).device
    return torch.cat([F.softmax(model(x[i:i + batch_size].to(dev)), 1).cpu() for i in range(0, len(x), batch_size)])


@torch.no_grad()
def features(model: Classifier, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Penultimate features (N x 128) for images in [-1, 1], in float64."""
    model.eval()
    dev = next(model.parameters()).device
    return torch.cat([model.features(x[i:i + batch_size].to(dev)).double().cpu() for i in range(0, len(x), batch_size)])


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (rows are samples).

    |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)); the trace of the matrix square root
    is taken from the symmetric form S_a^(1/2) S_b S_a^(1/2), which has the same eigenvalues.
    """
    a, b = a.double(), b.double()
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise CourseError(f"frechet_distance needs two N x D feature sets (N >= 2), got {tuple(a.shape)} and {tuple(b.shape)}.")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    vals, vecs = torch.linalg.eigh(cov_a)
    root_a = vecs @ torch.diag(vals.clamp(min=0).sqrt()) @ vecs.T
    middle = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    fd = (mu_a - mu_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * middle
    return max(float(fd), 0.0)


def rank_correlation(a, b) -> float:
    """Spearman's rank correlation of two equal-length 1-d sequences: +1 same order, -1 opposite order.

    Tied values share their mean rank, as scipy.stats.spearmanr gives them.
    """
    def rank(v):
        v = torch.as_tensor(v, dtype=torch.float64).flatten()
        return (v[:, None] > v[None, :]).sum(1) + ((v[:, None] == v[None, :]).sum(1) - 1) / 2

    ra, rb = rank(a), rank(b)
    if len(ra) != len(rb) or len(ra) < 2:
        raise CourseError(f"rank_correlation needs two sequences of the same length, at least 2; got {len(ra)} and {len(rb)}.")
    return torch.corrcoef(torch.stack([ra, rb]))[0, 1].item()


def check_samples(samples: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(samples) or samples.ndim != 4:
        raise CourseError(f"Samples must be a tensor N x C x H x W; got {getattr(samples, 'shape', type(samples))}.")
    samples = samples.detach().float().cpu()
    if not torch.isfinite(samples).all():
        raise CourseError("Samples contain NaN or infinite values: the generator diverged. See notebooks/09_gan_pitfalls.ipynb.")
    return samples


SPLIT_WORDS = {"test": "held-out", "val": "validation"}


def _reference_split(split: str) -> str:
    if split not in SPLIT_WORDS:
        raise CourseError(f"Measure against split 'test' (reported metrics) or 'val' (choosing a checkpoint), not {split!r}.")
    return split


def held_out(dataset: str = "mnist", n: int = 1000, seed: int = 0, split: str = "test") -> torch.Tensor:
    """n real images of `split` drawn at random with `seed`: the reference set samples are measured against.

    `test` (the default) is the held-out split the reported metrics use; `val` is the validation split
    that chooses the best checkpoint, so that the reported numbers are not chosen on the images they use.
    Drawn, not the first n, because a split may be sorted by class (the offline MNIST subset is).
    """
    x_ref, _ = load_dataset(dataset, _reference_split(split))
    if n > len(x_ref):
        raise CourseError(f"Only {len(x_ref)} {SPLIT_WORDS[split]} {dataset} images; measure with n <= {len(x_ref)}.")
    return x_ref[torch.randperm(len(x_ref), generator=torch.Generator().manual_seed(seed))[:n]]


def real_floor(dataset: str = "mnist", n: int = 1000, seed: int = 0, split: str = "test") -> float:
    """Frechet distance between n training images and n images of `split`: what a perfect generator scores."""
    key = (dataset, n, seed, split)
    if key not in _floors:
        model = load_classifier(dataset)
        x_train, _ = load_dataset(dataset, "train")
        reference = held_out(dataset, n, seed, split)
        pick = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(seed))[:n]
        _floors[key] = frechet_distance(features(model, x_train[pick]), features(model, reference))
    return _floors[key]


def evaluate(samples: torch.Tensor, dataset: str = "mnist", n: int | None = None, seed: int = 0,
             split: str = "test") -> dict:
    """The course metrics of `samples` (N x 1 x 28 x 28 or 32 x 32, in [-1, 1]).

    Uses the first n samples (default: all, at most the reference split's size) against n real images
    of `split` drawn with `seed` (see held_out), and reports the real-vs-real floor at the same n.
    Report on `test`; choose checkpoints on `val` (BestKeeper), never on the images you report.
    """
    samples = check_samples(samples)
    model = load_classifier(dataset)
    x_ref, _ = load_dataset(dataset, _reference_split(split))
    n = min(n or len(samples), len(samples), len(x_ref))
    if n < 10:
        raise CourseError(f"Measure at least 10 samples (got {n}); 1,000 give stable numbers.")
    probs = predict(model, samples[:n])
    counts = torch.bincount(probs.argmax(1), minlength=10)
    fd = frechet_distance(features(model, samples[:n]), features(model, held_out(dataset, n, seed, split)))
    floor = real_floor(dataset, n, seed, split)
    return {
        "dataset": dataset, "split": split, "n_samples": n, "n_real": n,
        "fd": fd, "floor": floor, "fd_ratio": fd / floor if floor > 0 else math.inf,
        "coverage": int((counts >= COVERAGE_SHARE * n).sum()), "class_counts": counts.tolist(),
        "confidence": float(probs.max(1).values.mean()),
    }


def report(m: dict) -> str:
    """One line for a metrics dict from evaluate()."""
    return (f"Frechet distance {m['fd']:.2f} (real-vs-real floor {m['floor']:.2f}, ratio {m['fd_ratio']:.1f}x) · "
            f"coverage {m['coverage']}/10 classes with >= {COVERAGE_SHARE:.0%} · confidence {m['confidence']:.3f} · "
            f"{m['n_samples']:,} samples vs {m['n_real']:,} {SPLIT_WORDS[m.get('split', 'test')]} real {m['dataset']} images")


def class_names(dataset: str = "mnist") -> list[str]:
    check_name(dataset)
    return CLASS_NAMES[dataset]


if __name__ == "__main__":  # python -m utils.metrics [mnist|fashion-mnist]: retrain the shipped classifiers
    import sys

    for name in sys.argv[1:] or ["mnist"]:
        _, info = train_classifier(name, epochs=CLASSIFIER_EPOCHS[name])
        print(json.dumps(info))
