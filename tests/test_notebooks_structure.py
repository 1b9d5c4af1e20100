"""The course's conventions, checked on every notebook and on the environment files."""

import json
import re
from pathlib import Path

import pytest

from utils.bootstrap import SETUP_BLOCK, github_repo  # the one setup block every notebook shares, the course's repo

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXPECTED = [
    "00_start_here", "01_neural_networks", "02_convolutions", "03_autoencoders", "04_vanilla_gan", "05_dcgan",
    "06_ebgan", "07_began", "08_wgan", "09_gan_pitfalls", "10_evaluating_gans", "11_conditional_gan",
]
GAN_NOTEBOOKS = [s for s in ("04_vanilla_gan", "05_dcgan", "06_ebgan", "07_began", "08_wgan", "11_conditional_gan")
                 if (ROOT / "notebooks" / f"{s}.ipynb").exists()]

def load(path):
    return json.loads(path.read_text())


def code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def source(cell):
    return "".join(cell["source"])


def test_notebooks_keep_the_course_numbers_and_names():
    stems = [p.stem for p in NOTEBOOKS]
    assert stems and stems == sorted(stems)
    unknown = [s for s in stems if s not in EXPECTED]
    assert not unknown, f"notebooks outside the course plan (COURSE.md keeps these numbers): {unknown}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_follows_the_course_shape(path):
    nb = load(path)
    cells = code_cells(nb)
    first_md = "".join(nb["cells"][0]["source"])
    assert nb["cells"][0]["cell_type"] == "markdown" and first_md.startswith("# "), "starts with a title"
    assert f"colab.research.google.com/github/{github_repo()}/blob/main/notebooks/{path.name}" in first_md, \
        "the Colab badge links to this notebook"
    assert SETUP_BLOCK in source(cells[0]), "the first code cell holds the shared setup block verbatim"
    assert sum(SETUP_BLOCK in source(c) for c in cells) == 1, "one setup cell"
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assert "utils.get_profile()" in source(tagged[0]), "the parameters cell reads the run profile"
    assert not any(".cuda()" in source(c) for c in cells), "device-agnostic: no .cuda()"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_outputs_come_from_a_real_cpu_run(path):
    nb = load(path)
    outputs = [o for c in code_cells(nb) for o in c.get("outputs", [])]
    assert outputs, "committed with outputs"
    assert not [o for o in outputs if o.get("output_type") == "error"], "no stored error"
    text = json.dumps(outputs)
    assert not re.search(r"/(work|tmp|root|home|Users)/", text), "no machine paths in outputs"
    assert re.search(r"profile\W{0,5}cpu", text), "the outputs say they come from the cpu profile"
    assert not re.search(r"profile\W{0,5}smoke", text), "outputs are not from the smoke profile"
    assert all(c.get("execution_count") for c in code_cells(nb) if source(c).strip()), "every cell was executed"
    assert path.stat().st_size < 5 * 2**20, "a notebook stays under 5 MiB"


@pytest.mark.parametrize("stem", GAN_NOTEBOOKS)
def test_gan_notebooks_measure_save_samples_and_offer_pretrained(stem):
    text = "\n".join(source(c) for c in code_cells(load(ROOT / "notebooks" / f"{stem}.ipynb")))
    assert "utils.evaluate(" in text and "utils.report(" in text, "reports the course metrics"
    assert "utils.save_samples(" in text, "saves runs/<notebook>/samples.pt"
    assert "BestKeeper(" in text, "tracks the best checkpoint"
    assert "PRETRAINED" in text and (ROOT / "data" / "pretrained" / stem / "generator.pt").is_file(), \
        "ships a pretrained generator"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_ends_with_its_references(path):
    cells = load(path)["cells"]
    last = source(cells[-1])
    heading = "## Further reading" if path.stem.startswith("00") else "## References"
    assert cells[-1]["cell_type"] == "markdown" and heading in last, f"the last cell is the {heading} section"
    references = last.split(heading, 1)[1]
    assert len(re.findall(r"https?://\S+", references)) >= 2, "each reference has a link"
    if heading == "## References":
        assert len(re.findall(r"\b(19|20)\d\d\b", references)) >= 2, "the papers it retells, with their years"


@pytest.mark.parametrize("stem", GAN_NOTEBOOKS)
def test_gan_notebooks_show_the_training_animation_inline(stem):
    cells = code_cells(load(ROOT / "notebooks" / f"{stem}.ipynb"))
    animating = [c for c in cells if "utils.animate(" in source(c)]
    assert animating, "a cell shows the training animation with utils.animate"
    html = "".join("".join(o.get("data", {}).get("text/html", "")) for c in animating for o in c.get("outputs", []))
    assert "<img" in html and "anim" in html.lower(), "the stored run shows the animation (HTML with its frames)"


def _pins(lines):
    return {re.split(r"==", line)[0].strip().lower(): line.split("==")[1].strip()
            for line in lines if "==" in line and not line.strip().startswith("#")}


def test_environment_yml_and_requirements_name_the_same_pins():
    req = _pins((ROOT / "requirements.txt").read_text().splitlines())
    req |= _pins((ROOT / "requirements-dev.txt").read_text().splitlines())
    env_lines = [line.strip().lstrip("- ").strip() for line in (ROOT / "environment.yml").read_text().splitlines()]
    env = _pins(env_lines)
    assert req == env, f"differ: {set(req.items()) ^ set(env.items())}"
    assert req["torch"] == "2.14.1" and req["torchvision"] == "0.29.1"
