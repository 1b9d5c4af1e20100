"""utils.notebook_cells: a notebook's setup, parameters and tagged cells, run outside the notebook."""

from __future__ import annotations

import json
import os

import pytest
import torch

import utils
from utils.cells import tagged_sources


def _notebook(folder, stem, cells):
    """A notebook of code cells: (source, tags) pairs."""
    nb = {"cells": [{"cell_type": "code", "metadata": {"tags": list(tags)}, "source": src, "outputs": [],
                     "execution_count": None} for src, tags in cells],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (folder / f"{stem}.ipynb").write_text(json.dumps(nb))
    return folder


@pytest.fixture
def toy(tmp_path):
    return _notebook(tmp_path, "99_toy", [
        ("import os, torch\nimport utils\nprint('setup ran')\nSEEN = []", ()),
        ("PROFILE = utils.get_profile()\nWIDTH = utils.pick(PROFILE, smoke=2, cpu=3, gpu=4)", ("parameters",)),
        ("SEEN.append('not tagged')", ()),
        ("SEEN.append('model')\nW = torch.randn(WIDTH)\nHERE = os.getcwd()", ("ddp",)),
        ("SEEN.append('other')", ("benchmark",)),
    ])


def test_runs_setup_parameters_and_the_tagged_cells_in_order_in_the_profile(toy, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_PROFILE", "gpu")
    cwd = os.getcwd()
    ns = utils.notebook_cells("99_toy", tags=("ddp", "benchmark"), profile="smoke", notebooks=toy)
    assert ns["SEEN"] == ["model", "other"], "the untagged cell must not run; tagged cells run in order"
    assert ns["WIDTH"] == 2 and ns["PROFILE"] == "smoke"
    assert ns["HERE"] == str(toy), "the cells run from the notebooks' folder, as Jupyter runs them"
    assert os.getcwd() == cwd and os.environ["COURSE_PROFILE"] == "gpu", "folder and profile are restored"
    assert "setup ran" in capsys.readouterr().out
    utils.notebook_cells("99_toy", tags="ddp", profile="cpu", notebooks=toy, quiet=True)
    assert capsys.readouterr().out == "", "quiet hides what the cells print"


def test_seed_sets_what_the_tagged_cells_build(toy):
    a = utils.notebook_cells("99_toy", tags=("ddp",), seed=5, notebooks=toy, quiet=True)["W"]
    b = utils.notebook_cells("99_toy", tags=("ddp",), seed=5, notebooks=toy, quiet=True)["W"]
    c = utils.notebook_cells("99_toy", tags=("ddp",), seed=6, notebooks=toy, quiet=True)["W"]
    assert torch.equal(a, b) and not torch.equal(a, c) and len(a) == 3


def test_missing_parts_say_what_to_do(toy, monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    with pytest.raises(utils.CourseError, match="no cells tagged 'nothing'"):
        utils.notebook_cells("99_toy", tags=("nothing",), notebooks=toy)
    with pytest.raises(utils.CourseError, match="No notebook 98_gone.ipynb"):
        utils.notebook_cells("98_gone", notebooks=toy)
    with pytest.raises(utils.CourseError, match="not a run profile"):
        utils.notebook_cells("99_toy", tags=("ddp",), profile="fast", notebooks=toy)
    _notebook(toy, "97_bare", [("x = 1", ()), ("y = 2", ("ddp",))])
    with pytest.raises(utils.CourseError, match="'parameters'"):
        tagged_sources("97_bare", ("ddp",), toy)
    assert "COURSE_PROFILE" not in os.environ


def test_the_course_notebooks_tag_their_models_for_the_distributed_script():
    dcgan = utils.notebook_cells("05_dcgan", tags=("ddp",), profile="smoke", quiet=True)
    wgan = utils.notebook_cells("08_wgan", tags=("ddp",), profile="smoke", quiet=True)
    assert dcgan["Generator"].__module__ == "notebook_05_dcgan" and "init_weights" in dcgan
    assert {"Generator", "Critic", "gradient_penalty"} <= set(wgan)
    G, D = wgan["Generator"](), wgan["Critic"]()
    assert D(G(torch.randn(2, wgan["Z_DIM"]))).shape == (2,)
