"""benchmarks/: the speed benchmark runs the notebooks' own training step against the tutorials' loops, and the
results file is rewritten one section at a time."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import notebook_times  # noqa: E402
import report  # noqa: E402
import train_speed  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    images, _ = train_speed.utils.load_dataset("mnist", "train")
    return ((images[:300, 0] + 1) * 127.5).round().to(torch.uint8).numpy()


@pytest.mark.parametrize("kind", ["vanilla", "dcgan"])
def test_the_notebook_step_is_the_notebooks_own_code_and_trains(kind):
    stem = train_speed.NOTEBOOKS[kind]
    ns = train_speed.notebook_code(stem, profile="smoke")
    for name in ("G", "D", "train_step", "images", "BATCH_SIZE", "Z_DIM", "d_optimizer", "g_optimizer"):
        assert name in ns, f"{stem}'s benchmark cells leave no {name}"
    assert type(ns["G"]).__module__ == f"notebook_{stem}", "G must be the class the notebook defines"
    before = [p.detach().clone() for p in ns["G"].parameters()]
    seconds = train_speed.course_steps(ns, 2)
    assert seconds > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, ns["G"].parameters())), "two steps left G unchanged"
    assert train_speed.noise_shape(ns["G"], ns["Z_DIM"]) in ((ns["Z_DIM"],), (ns["Z_DIM"], 1, 1))


@pytest.mark.parametrize("kind", ["vanilla", "dcgan"])
def test_the_reference_is_the_tutorial_loop_and_trains(kind, digits):
    ns = train_speed.notebook_code(train_speed.NOTEBOOKS[kind], profile="smoke")
    ref = train_speed.Reference(kind, ns, digits)
    assert isinstance(ref.D[-1], torch.nn.Sigmoid) and isinstance(ref.loss, torch.nn.BCELoss)
    assert ref.batch == train_speed.REFERENCE[kind][1]
    if kind == "dcgan":  # the notebook's own models, copied: training the reference leaves the notebook's alone
        assert type(ref.G) is type(ns["G"])
        assert all(a.data_ptr() != b.data_ptr() for a, b in zip(ref.G.parameters(), ns["G"].parameters()))
    before = [p.detach().clone() for p in ref.G.parameters()]
    ref.train(2)
    assert any(not torch.equal(a, b) for a, b in zip(before, ref.G.parameters()))
    real = next(ref.batches)
    assert real.shape[0] == ref.batch and real.min() >= -1 and real.max() <= 1
    assert real.shape[-1] == ns["images"].shape[-1], "the reference must see images of the notebook's size"


def test_write_section_replaces_one_section_and_keeps_the_rest(tmp_path, monkeypatch):
    path = tmp_path / "results.md"
    path.write_text("# Benchmark results\n\nintro\n\n## A\n\nold a\n\n## Notebooks\n\nold table\n")
    monkeypatch.setattr(report, "RESULTS", path)
    report.write_section("A", "new a")
    report.write_section("Training speed", "speed table", before="Notebooks")
    report.write_section("Last", "at the end", before="Missing")
    text = path.read_text()
    assert "old a" not in text and "new a" in text and "old table" in text and "intro" in text
    assert text.index("## A") < text.index("## Training speed") < text.index("## Notebooks") < text.index("## Last")
    assert text.count("## ") == 4


def test_targets_are_checked_against_the_stored_run():
    assert notebook_times.target_check("05_dcgan", 120, {"metrics": {"fd_ratio": 3.5, "coverage": 10}})[1] == "yes"
    met = notebook_times.target_check("05_dcgan", 400, {"metrics": {"fd_ratio": 7.0, "coverage": 9}})[1]
    assert met.startswith("no:") and "min" in met and "x" in met and "classes" in met
    assert notebook_times.target_check("01_neural_networks", 10, None) == ("-", "-")
    assert notebook_times.target_check("all", 21 * 60, None)[1].startswith("no")


def test_matmul_peak_is_a_plausible_rate():
    peak = train_speed.matmul_peak(torch.float32, n=256, reps=3)
    assert 1e8 < peak < 1e14
