"""Notebook runs that nbval's single pass does not cover: the pretrained path and determinism.

Each run executes a notebook in a private copy of the course (utils/ and the notebook copied, data/
linked), so it never shares a runs/ folder with nbval's run of the same notebook in another worker.
"""

import json
import os
from pathlib import Path

import nbformat
import pytest
import torch
from conftest import course_copy
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
GAN_NOTEBOOKS = [s for s in ("04_vanilla_gan", "05_dcgan", "06_ebgan", "07_began", "08_wgan", "11_conditional_gan", "12_bigan")
                 if (ROOT / "notebooks" / f"{s}.ipynb").exists()]


def run_copy(stem: str, where: Path, overrides: str = "", **env) -> Path:
    """Execute notebooks/<stem>.ipynb in the smoke profile inside a copy of the course; return the copy.

    `overrides` is code run right after the cell tagged `parameters`, as papermill injects parameters.
    """
    course = course_copy(where, stem, overrides)
    nb = nbformat.read(course / "notebooks" / f"{stem}.ipynb", as_version=4)
    saved = dict(os.environ)
    os.environ.update({"COURSE_PROFILE": "smoke", "COURSE_OFFLINE": "1", "MPLBACKEND": "agg", **env})
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(course / "notebooks")}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return course


@pytest.mark.parametrize("stem", GAN_NOTEBOOKS)
def test_gan_notebook_runs_from_its_shipped_generator(stem, tmp_path):
    course = run_copy(stem, tmp_path, COURSE_PRETRAINED="1")
    samples = torch.load(course / "runs" / stem / "samples.pt", weights_only=True)
    samples = samples["samples"] if isinstance(samples, dict) else samples
    assert samples.shape[0] == 1000 and samples.ndim == 4
    assert -1 <= samples.min() and samples.max() <= 1
    # the smoke profile trains for seconds, so samples as good as the shipped run's prove its weights were loaded
    from utils.metrics import evaluate

    shipped = json.loads((ROOT / "data" / "pretrained" / stem / "info.json").read_text())["metrics"]
    m = evaluate(samples, n=shipped["n_samples"])
    assert m["coverage"] >= shipped["coverage"] - 1 and m["fd_ratio"] < 1.5 * shipped["fd_ratio"], \
        f"samples of the shipped generator are worse than its recorded run ({shipped}): {m}"


def test_same_seed_same_profile_gives_identical_samples(tmp_path):
    first = run_copy("04_vanilla_gan", tmp_path / "a")
    second = run_copy("04_vanilla_gan", tmp_path / "b")
    a = torch.load(first / "runs" / "04_vanilla_gan" / "samples.pt", weights_only=True)
    b = torch.load(second / "runs" / "04_vanilla_gan" / "samples.pt", weights_only=True)
    assert torch.equal(a, b), "two runs with the same seed and profile differ"
    assert a.std() > 0.05, "samples are not constant"


def make_image_folder(folder: Path) -> Path:
    """24 random RGB images of several sizes and both formats, as a real folder of photos has."""
    from PIL import Image

    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(24):
        h, w = (80, 70) if i % 2 else (64, 96)
        pixels = (torch.rand(h, w, 3, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"img_{i:03d}.{'png' if i % 3 else 'jpg'}")
    return folder


# The 64x64 RGB path of each notebook that has one (COURSE_IMAGE_FOLDER selects it), on a small folder made here.
RGB_RUNS = {
    "05_dcgan": "STEPS = 2\nTRACK_EVERY = 1\nSHOW_EVERY = 2\nBATCH_SIZE = 8",
    "07_began": "STEPS = 2\nSTEPS_2 = 2\nTRACK_EVERY = 1\nBATCH_SIZE = 8",
}


@pytest.mark.parametrize("stem", [s for s in RGB_RUNS if (ROOT / "notebooks" / f"{s}.ipynb").exists()])
def test_notebook_trains_the_64x64_rgb_model_on_an_image_folder(stem, tmp_path):
    folder = make_image_folder(tmp_path / "faces")
    course = run_copy(stem, tmp_path, overrides=RGB_RUNS[stem], COURSE_IMAGE_FOLDER=str(folder))
    samples = torch.load(course / "runs" / stem / "samples.pt", weights_only=True)
    assert samples.shape[1:] == (3, 64, 64), "the RGB path saves 64x64 colour samples"
    assert -1 <= samples.min() and samples.max() <= 1
