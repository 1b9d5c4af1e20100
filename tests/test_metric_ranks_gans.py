"""The course metric ranks real digits < a trained generator's samples < noise."""

from pathlib import Path

import pytest
import torch

from utils.metrics import evaluate, held_out, load_samples

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p.name for p in (ROOT / "data" / "pretrained").glob("*") if (p / "samples.pt").is_file())


@pytest.mark.parametrize("stem", SHIPPED)
def test_trained_generator_ranks_between_real_and_noise(stem, monkeypatch, tmp_path):
    monkeypatch.setattr("utils.metrics.RUNS_DIR", tmp_path)  # read the shipped samples, not a local run
    samples, info, source = load_samples(stem)
    samples = samples["samples"] if isinstance(samples, dict) else samples
    assert source == "the shipped cpu-profile run" and info.get("profile") == "cpu"
    real = evaluate(held_out("mnist", 1000, seed=1), n=1000)
    trained = evaluate(samples, n=1000)
    noise = evaluate(torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1, n=1000)
    assert real["fd"] < trained["fd"] < noise["fd"], (real["fd"], trained["fd"], noise["fd"])
    assert trained["coverage"] > noise["coverage"]


def test_some_generator_is_shipped():
    assert SHIPPED, "no data/pretrained/<notebook>/samples.pt: ship a GAN notebook's run with utils.ship_run"
