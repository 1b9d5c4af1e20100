"""The course metric ranks each shipped generator's samples, and known degradations of them, in the right order.

A metric that only told trained samples from uniform noise would pass a broken Frechet distance or coverage; here the
same samples made worse step by step (blurred, more and more noised, with half the digits dropped) must score worse
step by step, and no generator can beat the real-vs-real floor.
"""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import utils.runs
from utils.metrics import evaluate, load_classifier, predict
from utils.runs import load_samples

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p.name for p in (ROOT / "data" / "pretrained").glob("*") if (p / "samples.pt").is_file())
N = 1000

pytestmark = pytest.mark.usefixtures("no_network", "offline")


@pytest.mark.parametrize("stem", SHIPPED)
def test_metric_orders_a_generator_and_its_degradations(stem, monkeypatch, tmp_path):
    monkeypatch.setattr(utils.runs, "RUNS_DIR", tmp_path)  # read the shipped samples, not a local run
    samples, info, source = load_samples(stem)
    samples = samples["samples"] if isinstance(samples, dict) else samples
    assert source == "the shipped cpu-profile run" and info.get("profile") == "cpu"
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(samples.shape, generator=g)

    trained = evaluate(samples, n=N)
    noised = [evaluate((samples + a * noise).clamp(-1, 1), n=N) for a in (0.25, 0.5)]
    blurred = evaluate(F.avg_pool2d(samples, 3, stride=1, padding=1, count_include_pad=False), n=N)
    uniform = evaluate(torch.rand(N, 1, 28, 28, generator=g) * 2 - 1, n=N)
    fds = [trained["floor"], trained["fd"], noised[0]["fd"], noised[1]["fd"], uniform["fd"]]
    assert fds == sorted(fds) and len(set(fds)) == len(fds), \
        f"floor < trained < noised 0.25 < noised 0.5 < uniform noise, got {[round(f, 1) for f in fds]}"
    assert trained["fd"] < blurred["fd"] < uniform["fd"], (trained["fd"], blurred["fd"], uniform["fd"])
    assert trained["coverage"] >= noised[0]["coverage"] >= noised[1]["coverage"] >= uniform["coverage"]
    assert trained["coverage"] > uniform["coverage"]

    # mode dropping: the same samples without the digits 0-4 are a collapsed generator
    kept = samples[predict(load_classifier("mnist"), samples).argmax(1) >= 5]
    dropped = evaluate(kept.repeat(-(-N // len(kept)), 1, 1, 1)[:N], n=N)
    assert dropped["coverage"] <= 5 < trained["coverage"], (dropped["coverage"], trained["coverage"])
    assert dropped["fd"] > trained["fd"]


def test_some_generator_is_shipped():
    assert SHIPPED, "no data/pretrained/<notebook>/samples.pt: ship a GAN notebook's run with utils.ship_run"
