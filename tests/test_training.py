"""utils.training: sampling in eval mode, the linear learning-rate decay, smoothed loss curves, bf16 autocast."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
import torch.nn as nn

import utils
from utils import training
from utils.runtime import CourseError

pytestmark = pytest.mark.usefixtures("no_network")


# ----------------------------------------------------------------------------- sample


class BNGenerator(nn.Module):
    """A generator whose output depends on the batch in train mode (batch norm), not in eval mode."""

    def __init__(self, z_dim=8, conditional=False):
        super().__init__()
        self.conditional = conditional
        self.net = nn.Sequential(nn.Linear(z_dim, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5),
                                 nn.Linear(16, 4), nn.Tanh())
        self.embed = nn.Embedding(10, z_dim)

    def forward(self, z, labels=None):
        if self.conditional:
            z = z + self.embed(labels)
        return self.net(z)


def _trained_bn_generator(**kwargs):
    torch.manual_seed(0)
    G = BNGenerator(**kwargs)
    with torch.no_grad():  # running statistics that differ from any one batch's
        G.net[1].running_mean.uniform_(-1, 1)
        G.net[1].running_var.uniform_(0.5, 2)
    return G


def test_sample_is_g_in_eval_mode_whatever_the_batch_size():
    G = _trained_bn_generator()
    z = torch.randn(50, 8, generator=torch.Generator().manual_seed(1))
    G.eval()
    with torch.no_grad():
        expected = G(z)
    G.train()
    stats = {k: v.clone() for k, v in G.net[1].state_dict().items()}
    for batch in (500, 50, 7, 1):
        out = utils.sample(G, z, batch=batch)
        torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)  # batch norm's running statistics, no dropout
    torch.testing.assert_close(utils.sample(G, z[:3]), expected[:3], rtol=1e-6, atol=1e-6), \
        "a sample does not depend on the others drawn with it"
    for key, value in G.net[1].state_dict().items():
        assert torch.equal(value, stats[key]), f"sampling changed batch norm's {key}"


def test_sample_restores_train_mode_and_keeps_eval_mode():
    G = _trained_bn_generator()
    z = torch.randn(4, 8)
    G.train()
    utils.sample(G, z)
    assert G.training and all(m.training for m in G.modules()), "training goes on in train mode"
    G.eval()
    utils.sample(G, z)
    assert not G.training and not any(m.training for m in G.modules()), "an evaluated G stays in eval mode"


def test_sample_restores_train_mode_when_g_fails():
    G = _trained_bn_generator()
    G.train()
    with pytest.raises(RuntimeError):
        utils.sample(G, torch.randn(4, 5))  # the wrong noise size
    assert G.training


def test_sample_returns_float32_on_the_cpu_without_a_graph():
    G = _trained_bn_generator().double()
    out = utils.sample(G, torch.randn(6, 8, dtype=torch.float64))
    assert out.dtype == torch.float32 and out.device.type == "cpu" and not out.requires_grad
    G = _trained_bn_generator().to(torch.bfloat16)
    assert utils.sample(G, torch.randn(6, 8, dtype=torch.bfloat16)).dtype == torch.float32
    G = _trained_bn_generator()
    z = torch.randn(6, 8, requires_grad=True)
    out = utils.sample(G, z)
    assert not out.requires_grad and z.grad is None and all(p.grad is None for p in G.parameters())


def test_sample_passes_each_chunk_its_own_labels():
    G = _trained_bn_generator(conditional=True).eval()
    z = torch.randn(23, 8, generator=torch.Generator().manual_seed(2))
    labels = torch.arange(23) % 10
    with torch.no_grad():
        expected = G(z, labels)
    for batch in (500, 5):
        torch.testing.assert_close(utils.sample(G, z, labels, batch=batch), expected, rtol=1e-6, atol=1e-6)
    shuffled = utils.sample(G, z, labels.flip(0), batch=5)
    assert not torch.allclose(shuffled, expected), "the labels change the samples: they are passed, in order"


def test_sample_refuses_labels_that_do_not_match_the_noise():
    G = _trained_bn_generator(conditional=True)
    with pytest.raises(CourseError, match="10 noise vectors but 9 labels"):
        utils.sample(G, torch.randn(10, 8), torch.zeros(9, dtype=torch.long))
    assert G.training


# ----------------------------------------------------------------------------- the learning-rate decay


def test_linear_decay_holds_then_falls_linearly_to_zero():
    f = utils.linear_decay(100, 0.5)
    assert [f(s) for s in (0, 1, 49, 50, 60, 75, 90, 99, 100)] == [1.0, 1.0, 1.0, 1.0, 0.8, 0.5, 0.2,
                                                                   pytest.approx(0.02), 0.0]
    assert f(150) == 0.0, "never negative, even past the end"
    f = utils.linear_decay(8, 0.25)  # the decay starts between steps
    assert [f(s) for s in range(9)] == [1.0, 1.0, 1.0, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6, 0.0]


def test_linear_decay_none_or_one_keeps_the_rate():
    for decay_from in (None, 1.0):
        f = utils.linear_decay(100, decay_from)
        assert all(f(s) == 1.0 for s in range(0, 101))


def test_linear_decay_from_zero_falls_from_the_first_step():
    f = utils.linear_decay(4, 0.0)
    assert [f(s) for s in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]


def test_linear_decay_starting_at_the_end_or_after_it_does_not_divide_by_zero():
    """Issue 16: the hand-written factors of 06 and 08 divided by total - decay_start."""
    for total, decay_from in ((100, 1.0), (3, 0.999), (10, 1.5), (0, 0.5)):
        f = utils.linear_decay(total, decay_from)
        assert all(0.0 <= f(s) <= 1.0 for s in range(total + 2))
    f = utils.linear_decay(3, 0.9)  # decays over the last 0.3 steps: the only step inside is the end
    assert [f(s) for s in range(4)] == [1.0, 1.0, 1.0, 0.0]


@pytest.mark.parametrize(("total", "decay_from"), [(4960, 0.5), (1736, 0.5), (2500, 0.5), (8, 0.5), (100, 0.3)])
def test_linear_decay_is_the_factor_the_notebooks_wrote_by_hand(total, decay_from):
    """The same learning rates, so the same training: 04, 06 and 08 computed exactly this (bit for bit), 11
    the same line in another order (equal to rounding)."""
    def old_04_06_08(step):
        start = decay_from * total
        return 1.0 if step < start else max(0.0, (total - step) / max(1.0, total - start))

    def old_11(step):
        return min(1.0, (1 - step / total) / (1 - decay_from))

    f = utils.linear_decay(total, decay_from)
    assert [f(s) for s in range(total + 1)] == [old_04_06_08(s) for s in range(total + 1)]
    assert [f(s) for s in range(total + 1)] == pytest.approx([old_11(s) for s in range(total + 1)], rel=1e-12, abs=1e-15)


def test_lr_decay_drives_the_optimizer_step_by_step():
    model = nn.Linear(2, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = utils.lr_decay(opt, 10, 0.6)
    assert isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([1e-3] * 7 + [1e-3 * k / 4 for k in (3, 2, 1, 0)])
    state = scheduler.state_dict()  # a resumed run continues the schedule where it stopped
    opt2 = torch.optim.Adam(model.parameters(), lr=1e-3)
    resumed = utils.lr_decay(opt2, 10, 0.6)
    resumed.load_state_dict(state)
    assert resumed.get_last_lr() == scheduler.get_last_lr() == [0.0]


def test_lr_decay_none_keeps_the_rate():
    opt = torch.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)
    scheduler = utils.lr_decay(opt, 5, None)
    for _ in range(7):
        opt.step()
        scheduler.step()
    assert opt.param_groups[0]["lr"] == 0.1


# ----------------------------------------------------------------------------- smooth and plot_curves


def test_smooth_is_a_moving_average_of_len_minus_k_plus_one_values():
    values = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    np.testing.assert_allclose(utils.smooth(values, 3), [2, 3, 4, 5, 6, 7, 8, 9])
    np.testing.assert_allclose(utils.smooth([0, 0, 3, 0, 0], 3), [1, 1, 1])  # the mean, not the sum
    np.testing.assert_allclose(utils.smooth(values, 1), values)
    np.testing.assert_allclose(utils.smooth(values, 25), [5.5])  # a window longer than the data: one mean
    assert len(utils.smooth(np.arange(100.0))) == 100 - 25 + 1  # k defaults to 25
    np.testing.assert_allclose(utils.smooth(torch.arange(6.0), 2), [0.5, 1.5, 2.5, 3.5, 4.5])


@pytest.fixture
def curve_logger(tmp_path):
    with utils.Logger("m", root=tmp_path, tensorboard=False) as lg:
        for step in range(1, 41):
            lg.log(step, d_loss=step % 4, g_loss=10 - step / 10)
            if step > 20:
                lg.log(step, d_real=step / 40)
        yield lg


def test_plot_curves_draws_the_moving_average_of_each_key_against_its_step(curve_logger):
    import matplotlib.pyplot as plt

    ax = utils.plot_curves(curve_logger, k=5)
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["d_loss", "g_loss"]
    for line, key in zip(lines, ("d_loss", "g_loss"), strict=True):
        steps, values = curve_logger.series(key)
        np.testing.assert_allclose(line.get_ydata(), utils.smooth(values, 5))
        np.testing.assert_array_equal(line.get_xdata(), steps[4:])  # each mean drawn at the last step it covers
    assert ax.get_xlabel() == "step" and ax.get_title() == "losses (moving average)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["d_loss", "g_loss"]
    plt.close(ax.figure)


def test_plot_curves_on_given_axes_with_labels_and_a_late_key(curve_logger):
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2)
    figures = len(plt.get_fignums())
    ax = utils.plot_curves(curve_logger, keys=("d_real",), k=3, ax=right, title="D's output", labels={"d_real": "D(x)"})
    assert ax is right and left.get_lines() == [] and len(plt.get_fignums()) == figures, "no figure of its own"
    (line,) = right.get_lines()
    assert line.get_label() == "D(x)" and right.get_title() == "D's output"
    np.testing.assert_array_equal(line.get_xdata(), np.arange(23, 41))  # d_real starts at step 21
    np.testing.assert_allclose(line.get_ydata(), utils.smooth(np.arange(21, 41) / 40, 3))
    plt.close(fig)


def test_plot_curves_names_an_unknown_key_and_what_was_logged(curve_logger):
    import matplotlib.pyplot as plt

    with pytest.raises(CourseError) as err:
        utils.plot_curves(curve_logger, keys=("d_loss", "d_error"))
    message = str(err.value)
    assert "'d_error'" in message and "['d_loss', 'd_real', 'g_loss']" in message
    plt.close("all")


# ----------------------------------------------------------------------------- bf16 units and autocast


CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Some CPU with bf16 in its marketing name
flags\t\t: fpu vme sse sse2 avx avx2 {flags}
vmx flags\t: vnmi preemption_timer avx512_bf16 amx_bf16
bugs\t\t: spectre_v1

processor\t: 1
flags\t\t: fpu vme sse sse2 avx avx2 {flags}
"""


@pytest.fixture
def cpuinfo(monkeypatch):
    """Serve a made-up /proc/cpuinfo to bf16_units (and forget its cached answer before and after)."""
    text = {}

    def fake_open(path, *args, **kwargs):
        assert str(path) == "/proc/cpuinfo"
        if "error" in text:
            raise text["error"]
        return io.StringIO(text["cpuinfo"])

    monkeypatch.setattr(training, "open", fake_open, raising=False)
    monkeypatch.setattr(training.platform, "system", lambda: "Linux")
    training.bf16_units.cache_clear()
    yield text
    training.bf16_units.cache_clear()


@pytest.mark.parametrize(("flags", "expected"), [
    ("avx512f avx512_bf16", True),                 # Cooper Lake, Zen 4 and later
    ("avx512f amx_tile amx_bf16 amx_int8", True),  # Sapphire Rapids and later
    ("avx512f avx512_vnni", False),                # AVX-512 without bf16: emulated, slow
    ("", False),
])
def test_bf16_units_reads_the_cpu_flags(cpuinfo, flags, expected):
    cpuinfo["cpuinfo"] = CPUINFO.format(flags=flags)
    assert training.bf16_units() is expected  # not fooled by the model name or the vmx flags line


def test_bf16_units_is_false_where_cpuinfo_cannot_be_read(cpuinfo, monkeypatch):
    cpuinfo["error"] = PermissionError(13, "Permission denied")
    assert training.bf16_units() is False
    training.bf16_units.cache_clear()
    monkeypatch.setattr(training.platform, "system", lambda: "Darwin")
    cpuinfo.pop("error")
    cpuinfo["cpuinfo"] = CPUINFO.format(flags="amx_bf16")
    assert training.bf16_units() is False  # no /proc/cpuinfo on macOS or Windows


def test_bf16_units_reads_cpuinfo_once(cpuinfo, monkeypatch):
    """Called by autocast on every training step: the answer is cached, the file read once."""
    reads = []
    cpuinfo["cpuinfo"] = CPUINFO.format(flags="amx_bf16")
    real_open = training.open
    monkeypatch.setattr(training, "open", lambda *a, **k: reads.append(1) or real_open(*a, **k))
    for _ in range(3):
        assert training.bf16_units()
    assert len(reads) == 1


def _matmul_dtype(device="cpu", **kwargs):
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with utils.autocast(device, **kwargs):
        return (a @ b).dtype


def test_autocast_is_a_no_op_without_bf16_units(monkeypatch):
    monkeypatch.setattr(training, "bf16_units", lambda: False)
    assert _matmul_dtype("cpu") == torch.float32
    assert _matmul_dtype(torch.device("cpu")) == torch.float32
    assert isinstance(utils.autocast("cpu"), contextlib.nullcontext)


def test_autocast_gives_bf16_matmuls_on_a_cpu_with_bf16_units(monkeypatch):
    monkeypatch.setattr(training, "bf16_units", lambda: True)
    assert _matmul_dtype("cpu") == torch.bfloat16
    assert _matmul_dtype("cpu", enabled=False) == torch.float32, "a learner can switch it off"
    model = nn.Linear(4, 2)
    with utils.autocast("cpu"):
        loss = model(torch.randn(3, 4)).float().pow(2).mean()
    loss.backward()  # backward outside, as the notebooks do it
    assert model.weight.grad.dtype == torch.float32, "the weights and their gradients stay float32"
    assert torch.randn(2, 2).__matmul__(torch.randn(2, 2)).dtype == torch.float32, "autocast ends with the block"


def test_autocast_elsewhere_changes_nothing(monkeypatch):
    monkeypatch.setattr(training, "bf16_units", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    for device in ("cuda", "mps", "meta"):
        assert isinstance(utils.autocast(device), contextlib.nullcontext), device
