"""utils.runtime: device, seeds, run profiles, atomic writes, checkpoints and the NaN guard."""

from __future__ import annotations

import os
import random
import stat

import numpy as np
import pytest
import torch
from conftest import files_in, one_message

import utils
from utils import runtime
from utils.runtime import CheckpointError, CourseError, NonFiniteLossError

pytestmark = pytest.mark.usefixtures("no_network")


# ----------------------------------------------------------------------------- device


def test_pick_device_prefers_the_argument_then_course_device(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "meta")
    assert utils.pick_device() == torch.device("meta")
    assert utils.pick_device("cpu") == torch.device("cpu")  # the argument wins over the variable


def test_pick_device_order_is_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert utils.pick_device() == torch.device("cpu")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert utils.pick_device() == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert utils.pick_device() == torch.device("cuda")


# ----------------------------------------------------------------------------- seeds


def _draws():
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_seed_everything_repeats_python_numpy_and_torch():
    gen = utils.seed_everything(123)
    first = _draws()
    from_gen = torch.rand(2, generator=gen).tolist()
    gen = utils.seed_everything(123)
    assert _draws() == first
    assert torch.rand(2, generator=gen).tolist() == from_gen
    assert torch.rand(2, generator=torch.Generator().manual_seed(123)).tolist() == from_gen
    utils.seed_everything(124)
    assert _draws() != first


# ----------------------------------------------------------------------------- profiles


@pytest.mark.parametrize(("value", "expected"), [("smoke", "smoke"), ("cpu", "cpu"), ("gpu", "gpu"),
                                                 (" Smoke\n", "smoke"), ("GPU", "gpu")])
def test_get_profile_reads_course_profile(monkeypatch, value, expected):
    monkeypatch.setenv("COURSE_PROFILE", value)
    assert utils.get_profile() == expected


def test_get_profile_defaults_to_the_hardware(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert utils.get_profile() == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert utils.get_profile() == "gpu"
    monkeypatch.setenv("COURSE_PROFILE", "")
    assert utils.get_profile() == "gpu"


def test_unknown_profile_says_which_ones_exist(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "fast")
    with pytest.raises(CourseError) as err:
        utils.get_profile()
    message = one_message(err.value)
    assert "COURSE_PROFILE='fast' is not a run profile" in message
    assert "Use one of smoke, cpu, gpu" in message


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("true", True), ("Yes", True), ("0", False),
                                                 ("", False), ("false", False), (None, False)])
def test_want_pretrained(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("COURSE_PRETRAINED", raising=False)
    else:
        monkeypatch.setenv("COURSE_PRETRAINED", value)
    assert utils.want_pretrained() is expected


def test_pick_chooses_the_profiles_value():
    assert [utils.pick(p, smoke=1, cpu=20, gpu=100) for p in ("smoke", "cpu", "gpu")] == [1, 20, 100]
    assert utils.pick("cpu", smoke=None, cpu=[1, 2], gpu=()) == [1, 2]
    with pytest.raises(KeyError):
        utils.pick("tpu", smoke=1, cpu=2, gpu=3)


def test_setup_seeds_reports_and_returns_the_device(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    device = utils.setup(seed=7)
    after_setup = torch.rand(4)
    line = capsys.readouterr().out.strip()
    assert device == torch.device("cpu")
    assert torch.equal(after_setup, torch.rand(4, generator=torch.Generator().manual_seed(7)))
    assert line.count("\n") == 0
    assert f"torch {torch.__version__}" in line and "device cpu" in line and "profile smoke" in line
    assert line.endswith("seed 7")
    utils.setup(seed=7, quiet=True)
    assert capsys.readouterr().out == ""


# ----------------------------------------------------------------------------- atomic_write


def test_atomic_write_writes_and_creates_folders(tmp_path):
    target = tmp_path / "a" / "b" / "file.txt"
    got = runtime.atomic_write(target, lambda tmp: open(tmp, "w").write("hello"))
    assert got == target and target.read_text() == "hello"
    assert files_in(tmp_path) == ["a/b/file.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # the usual permissions, not mkstemp's 0600


def test_atomic_write_keeps_the_previous_file_when_the_writer_fails_midway(tmp_path):
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"the previous checkpoint")

    def half_then_crash(tmp):
        with open(tmp, "wb") as fh:
            fh.write(b"half of the new")
        raise KeyboardInterrupt  # even an interrupt (a BaseException) must not leave half a file

    with pytest.raises(KeyboardInterrupt):
        runtime.atomic_write(target, half_then_crash)
    assert target.read_bytes() == b"the previous checkpoint"
    assert files_in(tmp_path) == ["checkpoint.pt"]  # the temporary file is gone too


def test_atomic_write_removes_temporary_files_of_a_killed_run(tmp_path):
    stale = tmp_path / ".scalars.csv.abc123.tmp"
    stale.write_text("half")
    other = tmp_path / ".other.csv.abc123.tmp"
    other.write_text("someone else's")
    runtime.atomic_write(tmp_path / "scalars.csv", lambda tmp: open(tmp, "w").write("step\n"))
    assert not stale.exists() and other.exists()


def test_atomic_write_into_an_unwritable_folder_says_what_to_do(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a regular file")  # a path under a file fails for every user, root included
    with pytest.raises(CourseError) as err:
        runtime.atomic_write(blocker / "runs" / "x.pt", lambda tmp: None)
    message = str(err.value)
    assert "Cannot write to" in message and str(blocker / "runs") in message
    assert "Choose a folder you can write to" in message
    assert blocker.read_text() == "a regular file"


# ----------------------------------------------------------------------------- checkpoints


def _model(seed=0, width=5):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, width), torch.nn.ReLU(), torch.nn.Linear(width, 2))


def _trained(model):
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        model(torch.ones(8, 4)).pow(2).sum().backward()
        opt.step()
    return opt


def _same_params(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_checkpoint_round_trip_with_optimizer_state(tmp_path):
    G, D = _model(0), _model(1)
    g_opt, d_opt = _trained(G), _trained(D)
    path = runtime.save_checkpoint(tmp_path / "ck" / "c.pt", step=42, models={"G": G, "D": D},
                                   optimizers={"g": g_opt, "d": d_opt}, score=1.5, note="best")
    assert path == tmp_path / "ck" / "c.pt" and files_in(tmp_path / "ck") == ["c.pt"]
    state = torch.load(path, weights_only=True)
    assert set(state) == {"step", "models", "optimizers", "extra"} and state["step"] == 42
    assert state["optimizers"]["g"]["state"][0]["step"] == 3  # Adam's moments are saved, not only weights

    G2, D2 = _model(5), _model(6)
    g_opt2, d_opt2 = torch.optim.Adam(G2.parameters()), torch.optim.Adam(D2.parameters())
    info = runtime.load_checkpoint(path, models={"G": G2, "D": D2}, optimizers={"g": g_opt2, "d": d_opt2})
    assert info == {"step": 42, "score": 1.5, "note": "best"}
    assert _same_params(G, G2) and _same_params(D, D2)
    saved, loaded = g_opt.state_dict(), g_opt2.state_dict()
    assert loaded["param_groups"][0]["lr"] == 1e-2
    for k in saved["state"]:
        assert torch.equal(saved["state"][k]["exp_avg"], loaded["state"][k]["exp_avg"])
    # both continue identically
    for opt_a, opt_b, model_a, model_b in ((g_opt, g_opt2, G, G2),):
        for opt, model in ((opt_a, model_a), (opt_b, model_b)):
            opt.zero_grad()
            model(torch.ones(2, 4)).sum().backward()
            opt.step()
    assert _same_params(G, G2)


def test_load_checkpoint_maps_to_the_cpu_and_loads_only_named_models(tmp_path):
    G = _model(0)
    path = runtime.save_checkpoint(tmp_path / "g.pt", step=1, models={"G": G, "D": _model(1)})
    G2 = _model(9)
    assert runtime.load_checkpoint(path, models={"G": G2}, map_location="cpu") == {"step": 1}
    assert _same_params(G, G2) and next(G2.parameters()).device.type == "cpu"


def test_missing_checkpoint_says_train_first(tmp_path):
    with pytest.raises(CheckpointError, match=r"No checkpoint at .*nope\.pt\. Train first, or check the path"):
        runtime.load_checkpoint(tmp_path / "nope.pt", models={"G": _model()})


@pytest.mark.parametrize("damage", ["corrupt", "truncated", "empty"])
def test_damaged_checkpoint_gives_one_clear_message_and_is_kept(tmp_path, damage):
    path = runtime.save_checkpoint(tmp_path / "c.pt", step=3, models={"G": _model()})
    good = path.read_bytes()
    path.write_bytes({"corrupt": b"garbage" * 100 + good[700:], "truncated": good[: len(good) // 2],
                      "empty": b""}[damage])
    before = path.read_bytes()
    G = _model(4)
    untouched = {k: v.clone() for k, v in G.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        runtime.load_checkpoint(path, models={"G": G})
    message = one_message(err.value)
    assert "corrupt or truncated" in message and str(path) in message
    assert "Delete it and train again, or load an earlier checkpoint" in message
    assert path.read_bytes() == before
    assert all(torch.equal(untouched[k], v) for k, v in G.state_dict().items())


def test_checkpoint_of_a_different_model_says_so(tmp_path):
    path = runtime.save_checkpoint(tmp_path / "c.pt", step=3, models={"G": _model(width=5)})
    other = _model(width=7)
    untouched = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        runtime.load_checkpoint(path, models={"G": other})
    message = one_message(err.value)
    assert "saved from a different model than 'G'" in message and "size mismatch" in message
    assert "Build the same architecture" in message and "\n" not in message
    assert all(torch.equal(untouched[k], v) for k, v in other.state_dict().items())


def test_a_checkpoint_that_does_not_fit_changes_no_model(tmp_path):
    path = runtime.save_checkpoint(tmp_path / "c.pt", step=3, models={"G": _model(0), "D": _model(1, width=5)})
    G, D = _model(2), _model(3, width=6)  # G fits, D does not
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in (G, D)]
    with pytest.raises(CheckpointError, match="different model than 'D'"):
        runtime.load_checkpoint(path, models={"G": G, "D": D})
    for model, saved in zip((G, D), before, strict=True):
        assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())


def test_an_optimizer_for_other_parameters_gives_a_clear_message(tmp_path):
    G = _model(0)
    path = runtime.save_checkpoint(tmp_path / "c.pt", step=3, models={"G": G}, optimizers={"g": _trained(G)})
    G2 = _model(1)
    before = {k: v.clone() for k, v in G2.state_dict().items()}
    wrong_opt = torch.optim.Adam(list(G2.parameters())[:2])  # built from part of the model only
    with pytest.raises(CheckpointError) as err:
        runtime.load_checkpoint(path, models={"G": G2}, optimizers={"g": wrong_opt})
    assert "optimizer 'g'" in str(err.value) and "Create the optimizer from the same model" in str(err.value)
    assert all(torch.equal(before[k], v) for k, v in G2.state_dict().items())
    assert wrong_opt.state_dict()["state"] == {}


def test_checkpoint_without_the_named_model_or_not_a_course_checkpoint(tmp_path):
    path = runtime.save_checkpoint(tmp_path / "c.pt", step=3, models={"G": _model()})
    with pytest.raises(CheckpointError, match=r"has no model named 'D' \(it has \['G'\]\).*different notebook"):
        runtime.load_checkpoint(path, models={"D": _model()})
    torch.save(_model().state_dict(), tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a course checkpoint.*utils.save_checkpoint"):
        runtime.load_checkpoint(tmp_path / "plain.pt", models={"G": _model()})


def test_interrupted_checkpoint_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = runtime.save_checkpoint(tmp_path / "c.pt", step=1, models={"G": _model(0)})
    good = path.read_bytes()
    real_save = torch.save

    def crash_midway(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        with open(f, "r+b") as fh:
            fh.truncate(100)  # half a file on disk...
        raise OSError(28, "No space left on device")  # ...and then the disk fills up

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(OSError):
        runtime.save_checkpoint(path, step=2, models={"G": _model(1)})
    assert path.read_bytes() == good and files_in(tmp_path) == ["c.pt"]
    assert runtime.load_checkpoint(path, models={"G": _model(2)})["step"] == 1


# ----------------------------------------------------------------------------- NaN guard


def test_check_finite_passes_finite_losses():
    assert runtime.check_finite(3, d_loss=0.5, g_loss=torch.tensor(2.0, requires_grad=True), w=np.float32(1e30)) is None


@pytest.mark.parametrize(("value", "shown"), [(float("nan"), "nan"), (torch.tensor(float("inf")), "inf"),
                                              (torch.tensor(-float("inf"), requires_grad=True), "-inf")])
def test_check_finite_names_the_loss_the_step_and_the_pitfalls_notebook(value, shown):
    with pytest.raises(NonFiniteLossError) as err:
        runtime.check_finite(1234, d_loss=0.7, g_loss=value)
    message = one_message(err.value)
    assert f"g_loss became {shown} at step 1234" in message
    assert "d_loss" not in message  # the finite loss is not blamed
    assert "notebooks/09_gan_pitfalls.ipynb" in message and "last good checkpoint" in message
    assert isinstance(err.value, CourseError)


def test_course_errors_share_one_base_class():
    """A notebook (and the tests) catch utils.CourseError for every error the course explains."""
    for cls in (utils.CheckpointError, utils.DatasetError, utils.NonFiniteLossError):
        assert issubclass(cls, utils.CourseError), cls
    assert issubclass(utils.NonFiniteLossError, RuntimeError)


def test_all_lists_exactly_the_public_names_of_the_package():
    """`__all__` is the package's API: no stale entry (an AttributeError on `from utils import *`), no duplicate,
    and no public name imported into utils/__init__.py without being listed."""
    import inspect

    assert len(utils.__all__) == len(set(utils.__all__)), "a name listed twice"
    public = {n for n, v in vars(utils).items() if not n.startswith("_") and not inspect.ismodule(v)}
    assert set(utils.__all__) == public, f"listed, not bound: {set(utils.__all__) - public}; bound, not listed: {public - set(utils.__all__)}"
