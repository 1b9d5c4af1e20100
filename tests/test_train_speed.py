"""benchmarks/train_speed.py: the course loop's faster layers compute what the stock layers compute, and both
loops train."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "train_speed.py"


@pytest.fixture(scope="module")
def ts():
    spec = importlib.util.spec_from_file_location("train_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_speed"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_project_z_is_the_transposed_convolution(ts, fmt):
    torch.manual_seed(0)
    stock = nn.ConvTranspose2d(100, 32, 7, 1, 0, bias=False)
    fast = ts.ProjectZ(100, 32, 7, 1, 0, bias=False)
    fast.load_state_dict(stock.state_dict())
    stock, fast = stock.to(memory_format=fmt), fast.to(memory_format=fmt)
    z = torch.randn(8, 100, 1, 1, requires_grad=True)
    out_stock, out_fast = stock(z), fast(z)
    assert out_fast.shape == (8, 32, 7, 7)
    torch.testing.assert_close(out_fast, out_stock, rtol=1e-5, atol=1e-5)
    (g_stock,) = torch.autograd.grad(out_stock.square().sum(), stock.weight)
    (g_fast,) = torch.autograd.grad(out_fast.square().sum(), fast.weight)
    torch.testing.assert_close(g_fast, g_stock, rtol=1e-4, atol=1e-4)


def test_rand_dropout_keeps_1_minus_p_and_rescales(ts):
    torch.manual_seed(0)
    drop = ts.RandDropout(0.3)
    x = torch.ones(400, 1000)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.005           # 400k units: the standard error is 0.0007
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7))
    assert abs(y.mean().item() - 1.0) < 0.01                         # the expectation is unchanged
    drop.eval()
    assert torch.equal(drop(x), x)                                   # no dropout in evaluation mode


@pytest.mark.parametrize("kind", ["vanilla", "dcgan"])
def test_both_loops_train_and_the_course_models_use_the_fast_layers(ts, kind):
    images = torch.rand(300, 1, 28, 28) * 2 - 1
    images_uint8 = ((images[:, 0] + 1) * 127.5).round().to(torch.uint8).numpy()
    G_ref, seconds_ref = ts.reference_loop(kind, images_uint8, 3)
    G_course, seconds_course, _ = ts.course_loop(kind, images, 3, bf16=ts.cpu_has_bf16())
    assert seconds_ref > 0 and seconds_course > 0
    for G in (G_ref, G_course):
        x = ts.samples_of(G, kind, n=10)
        assert x.shape == (10, 1, 28, 28) and torch.isfinite(x).all()
    fast = ts.RandDropout if kind == "vanilla" else ts.ProjectZ
    G, D, _, _ = ts.build(kind, reference=False)
    assert any(isinstance(m, fast) for m in (*D.modules(), *G.modules()))
    G, D, _, _ = ts.build(kind, reference=False, stock_layers=True)
    assert not any(isinstance(m, fast) for m in (*D.modules(), *G.modules()))


def test_same_quality_allows_chance_but_not_a_real_loss(ts):
    def runs(fds, coverages):
        return [{"fd": fd, "coverage": c, "floor": 7.0} for fd, c in zip(fds, coverages)]

    reference = runs([900, 800, 1000, 850, 950], [5, 6, 5, 3, 5])
    chance = {"reference_runs": reference, "course_runs": runs([850, 950, 700, 800, 900], [6, 4, 5, 4, 3])}
    assert abs(ts.standard_error(chance, "coverage") - 0.5 ** 0.5) < 1e-9   # sqrt(1.2 / 5 + 1.3 / 5)
    assert ts.same_quality(chance)                                           # 0.4 classes less: within chance
    fewer_classes = {"reference_runs": reference, "course_runs": runs([850, 950, 700, 800, 900], [2, 2, 3, 2, 2])}
    assert not ts.same_quality(fewer_classes)                                # 2.6 classes less, SE 0.53
    worse_distance = {"reference_runs": reference, "course_runs": runs([1400, 1500, 1450, 1400, 1500], [5] * 5)}
    assert not ts.same_quality(worse_distance)                               # 1.6x the distance


def test_target_check_names_what_a_stored_run_misses(ts):
    info = {"metrics": {"fd_ratio": 7.8, "coverage": 10}}
    target, met = ts.target_check("07_began", 375, info)
    assert target == "<= 7 min, <= 12x, 10/10 classes" and met == "yes"
    assert ts.target_check("07_began", 375, {"metrics": {"fd_ratio": 13.2, "coverage": 8}})[1] == \
        "no: <= 12x, 10/10 classes"
    assert ts.target_check("07_began", 430, info)[1] == "no: <= 7 min"
    assert ts.target_check("08_wgan", 370, None)[1] == "no: <= 6x, 10/10 classes"   # no stored metrics: not met
    assert ts.target_check("11_conditional_gan", 180, {"label_accuracy": 0.89})[1] == "no: label accuracy >= 90%"
    assert ts.target_check("01_neural_networks", 9, None) == ("-", "-")
