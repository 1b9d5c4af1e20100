"""utils.TrainingRun: resume the same configuration exactly, start afresh on a change or when asked, cost little."""

import time

import pytest
import torch
import torch.nn as nn

import utils
import utils.resume
from utils.data import Batches


def make(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / 100)
    return model, opt, sched


def train(path, config, stop_at=None, total=40, fresh=None, every_s=0.0):
    """A tiny loop shaped like the notebooks'; `stop_at` plays a kernel that dies after that many steps."""
    model, opt, sched = make()
    data = Batches(torch.randn(64, 4), torch.randn(64, 1), batch_size=8, seed=3)
    keeper = utils.BestKeeper(path.parent / "best.pt")
    run = utils.TrainingRun(path, config, total_steps=total, models={"m": model}, optimizers={"o": opt},
                            schedulers={"s": sched}, keeper=keeper, fresh=fresh, every_s=every_s)
    start = run.start()
    batches = data.endless(start)
    for step in range(start, total):
        x, y = next(batches)
        loss = ((model(x) + torch.randn(8, 1) * 0.01 - y) ** 2).mean()  # random numbers: dropout and noise
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        keeper.update(loss.item(), step + 1, m=model)
        run.state["losses"] = run.state.get("losses", []) + [float(loss)]
        if stop_at is not None and step + 1 == stop_at:
            run.save(step + 1)
            return None, run
        run.maybe_save(step + 1)
    return model, run


def test_resuming_gives_the_uninterrupted_result_bit_for_bit(tmp_path, capsys):
    straight, run_a = train(tmp_path / "a" / "checkpoint.pt", {"lr": 1e-2})
    train(tmp_path / "b" / "checkpoint.pt", {"lr": 1e-2}, stop_at=13)
    resumed, run_b = train(tmp_path / "b" / "checkpoint.pt", {"lr": 1e-2})
    assert "resumed at step 13 of 40" in capsys.readouterr().out
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    assert run_a.state["losses"] == run_b.state["losses"], "the loop's own state came back too"
    assert run_b.keeper.best == run_a.keeper.best and run_b.keeper.best_step == run_a.keeper.best_step


def test_without_the_rng_state_the_result_would_differ(tmp_path, monkeypatch):
    """The test above can fail: skip restoring the random-number state and the weights differ."""
    straight, _ = train(tmp_path / "a" / "checkpoint.pt", {"lr": 1e-2})
    train(tmp_path / "b" / "checkpoint.pt", {"lr": 1e-2}, stop_at=13)
    monkeypatch.setattr(torch, "set_rng_state", lambda state: None)
    resumed, _ = train(tmp_path / "b" / "checkpoint.pt", {"lr": 1e-2})
    assert not all(torch.equal(v, resumed.state_dict()[k]) for k, v in straight.state_dict().items())


def test_a_changed_configuration_starts_afresh_and_says_what_changed(tmp_path, capsys):
    path = tmp_path / "checkpoint.pt"
    train(path, {"lr": 1e-2, "steps": 40}, stop_at=13)
    _, run = train(path, {"lr": 5e-3, "steps": 40}, stop_at=2)
    out = capsys.readouterr().out
    assert "training from step 0 of 40" in out and "lr 0.01 -> 0.005" in out
    assert len(run.state["losses"]) == 2, "the loop's state starts empty too"


def test_fresh_or_course_fresh_ignores_the_checkpoint(tmp_path, capsys, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    train(path, {"lr": 1e-2}, stop_at=13)
    train(path, {"lr": 1e-2}, stop_at=2, fresh=True)
    assert "FRESH is set" in capsys.readouterr().out
    train(path, {"lr": 1e-2}, stop_at=13)
    monkeypatch.setenv("COURSE_FRESH", "1")
    train(path, {"lr": 1e-2}, stop_at=2)
    assert "training from step 0" in capsys.readouterr().out


def test_a_damaged_checkpoint_is_reported_and_replaced(tmp_path, capsys):
    path = tmp_path / "checkpoint.pt"
    train(path, {"lr": 1e-2}, stop_at=13)
    path.write_bytes(path.read_bytes()[:200])
    _, run = train(path, {"lr": 1e-2})
    out = capsys.readouterr().out
    assert "cannot be read" in out and "training from step 0" in out
    assert torch.load(path, weights_only=True)["step"] == 40


def test_checkpoints_are_written_by_the_clock_and_after_the_last_step(tmp_path, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(utils.resume.time, "perf_counter", lambda: clock[0])
    model, opt, _ = make()
    run = utils.TrainingRun(tmp_path / "c.pt", {}, total_steps=10, models={"m": model}, optimizers={"o": opt},
                            every_s=30)
    run.start()
    saved = []
    for step in range(1, 11):
        clock[0] += 7.0  # seven seconds a step
        saved.append(run.maybe_save(step))
    assert [s for s, ok in zip(range(1, 11), saved, strict=True) if ok] == [5, 10], "every 30 s, and at the end"
    assert "2 checkpoint(s)" in run.summary()


def test_module_default_interval_is_read_when_the_run_is_made(tmp_path, monkeypatch):
    monkeypatch.setattr(utils.resume, "CHECKPOINT_EVERY_S", 0.5)
    model, _, _ = make()
    assert utils.TrainingRun(tmp_path / "c.pt", {}, total_steps=1, models={"m": model}).every_s == 0.5


def test_saving_costs_under_five_percent_of_a_half_minute(tmp_path):
    """The 04 notebook's models (2.9 million weights with Adam's two moments) are saved in well under 1.5 s."""
    G = nn.Sequential(nn.Linear(100, 256), nn.Linear(256, 512), nn.Linear(512, 1024), nn.Linear(1024, 784))
    D = nn.Sequential(nn.Linear(784, 1024), nn.Linear(1024, 512), nn.Linear(512, 256), nn.Linear(256, 1))
    opts = {}
    for name, m in (("g", G), ("d", D)):
        opts[name] = torch.optim.Adam(m.parameters())
        m(torch.zeros(1, m[0].in_features)).sum().backward()
        opts[name].step()
    run = utils.TrainingRun(tmp_path / "c.pt", {}, total_steps=1, models={"G": G, "D": D}, optimizers=opts)
    run.start()
    begin = time.perf_counter()
    run.save(1)
    assert time.perf_counter() - begin < 0.05 * utils.resume.CHECKPOINT_EVERY_S


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_want_fresh_reads_course_fresh(monkeypatch, value):
    monkeypatch.setenv("COURSE_FRESH", value)
    assert utils.want_fresh()
    monkeypatch.setenv("COURSE_FRESH", "0")
    assert not utils.want_fresh()


def _rewrite_extra(path, **changes):
    state = torch.load(path, weights_only=False)
    state["extra"].update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del state["extra"][key]
    torch.save(state, path)


@pytest.mark.parametrize("change, why", [
    ({"format": None}, "written by an older version of the course"),
    ({"format": utils.resume.RUN_FORMAT - 1}, "written by an older version of the course"),
    ({"schedulers": {}}, "holds no state for a learning-rate schedule"),
])
def test_a_checkpoint_of_another_format_starts_afresh_with_a_reason(tmp_path, capsys, change, why):
    """A checkpoint from before the step-based Logger (no format) or without the schedule's state is not resumed:
    resuming would mix the old run's files with the new one's, or fail with a bare KeyError."""
    path = tmp_path / "checkpoint.pt"
    train(path, {"lr": 1e-2}, stop_at=13)
    _rewrite_extra(path, **change)
    straight, _ = train(tmp_path / "a" / "checkpoint.pt", {"lr": 1e-2})
    again, _ = train(path, {"lr": 1e-2})
    out = capsys.readouterr().out
    assert "training from step 0 of 40" in out and why in out
    for key, value in straight.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), "a fresh start gives the uninterrupted result"
