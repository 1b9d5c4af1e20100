"""The course's conventions, checked on every notebook and on the environment files."""

import ast
import importlib
import json
import re
from pathlib import Path

import pytest

import utils
from utils.bootstrap import SETUP_BLOCK, github_repo  # the one setup block every notebook shares, the course's repo

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXPECTED = [
    "00_start_here", "01_neural_networks", "02_convolutions", "03_autoencoders", "04_vanilla_gan", "05_dcgan",
    "06_ebgan", "07_began", "08_wgan", "09_gan_pitfalls", "10_evaluating_gans", "11_conditional_gan", "12_bigan",
    "13_scaling_up",
]
GAN_NOTEBOOKS = [s for s in ("04_vanilla_gan", "05_dcgan", "06_ebgan", "07_began", "08_wgan", "11_conditional_gan", "12_bigan")
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
    assert not unknown, f"notebooks outside the course plan (links, tests and tools depend on these numbers): {unknown}"
    listed = re.findall(r"^\| \d\d \| \[[^]]+\]\(notebooks/(\d\d_\w+)\.ipynb\)", (ROOT / "README.md").read_text(), re.M)
    assert listed == stems, "the README's table of notebooks lists every notebook, in order, and no other"


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


# ----------------------------------------------------------------------------- issue 16: one way to do each thing

NOTEBOOK_CODE = {p.stem: [source(c) for c in code_cells(load(p))] for p in NOTEBOOKS}


def _code(stem):
    return "\n".join(NOTEBOOK_CODE[stem])


def _calls(stem):
    """Every call in the notebook's code cells, as ast.Call nodes."""
    return [node for cell in NOTEBOOK_CODE[stem] for node in ast.walk(ast.parse(cell)) if isinstance(node, ast.Call)]


PLUMBING = {  # what utils does once, and what a notebook must not write again (issue 16)
    r"\bdef sample\(": "utils.sample(G, z, labels=None, batch=500)",
    r"\bdef smooth\(": "utils.smooth(values, k) / utils.plot_curves(logger, ...)",
    r"\blr_factor\b": "utils.lr_decay(optimizer, STEPS, DECAY_FROM) or a torch.optim.lr_scheduler class",
    r"\bdef (batches_forever|endless)\(": "utils.Batches(...).endless(start)",
    r"""["']runs["']""": "utils.run_dir(name) (the Logger and save_samples find it themselves)",
    r"\bPRETRAINED_PATH\b|\bpretrained_path\(": "utils.load_pretrained(STEM, DATASET, device, G=G)",
    r"^N_SAMPLES\s*=": "utils.N_SAMPLES",
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_does_not_rewrite_the_shared_plumbing(path):
    found = [f"cell {i}: {m.group(0)!r} -> use {use}" for i, cell in enumerate(NOTEBOOK_CODE[path.stem])
             for pattern, use in PLUMBING.items() for m in re.finditer(pattern, cell, re.M)]
    assert not found, "\n".join(found)


def _is_logger(node):
    return "logger" in ast.unparse(node).lower()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_logger_call_uses_the_step_api(path):
    """Logger(name, root=..., resume_step=...), log(step, **scalars), log_images(images, step), display_status(step,
    total, **scalars); the tutorial's epoch/batch names appear only in 04's retelling with tutorial_log."""
    wrong = []
    for call in _calls(path.stem):
        f = call.func
        name = ast.unparse(f)
        if name in ("utils.Logger", "Logger") and len(call.args) != 1:
            wrong.append(f"{ast.unparse(call)}: Logger(name, root=..., resume_step=...) has one positional argument")
        if isinstance(f, ast.Attribute) and _is_logger(f.value):
            positional = {"log": 1, "log_images": 2, "display_status": 2}.get(f.attr)
            if positional is not None and (len(call.args) != positional or f.attr == "log" and not call.keywords):
                wrong.append(f"{ast.unparse(call)}: {f.attr} takes {positional} positional argument(s), scalars by name")
    assert not wrong, "\n".join(wrong)
    tutorial_cells = [c for c in NOTEBOOK_CODE[path.stem] if "tutorial_log(" in c]
    assert path.stem == "04_vanilla_gan" or not tutorial_cells, "tutorial_log is 04's retelling of the tutorial only"
    old = [f"{m.group(0)!r} in: {c.strip().splitlines()[0]}" for c in NOTEBOOK_CODE[path.stem] if c not in tutorial_cells
           for m in re.finditer(r"\b(d_error|g_error|num_batches|n_batch)\b", c)]
    assert not old, "the Logger's columns are d_loss and g_loss, its steps are steps done:\n" + "\n".join(old)


SHIPPED = [s for s in EXPECTED if (ROOT / "data" / "pretrained" / s / "generator.pt").is_file()]


@pytest.mark.parametrize("stem", [s for s in SHIPPED if (ROOT / "notebooks" / f"{s}.ipynb").exists()])
def test_a_notebook_with_a_shipped_generator_loads_it_with_load_pretrained(stem):
    """One dataset check for every shipped generator (issue 16): no hand-made load_checkpoint of data/pretrained/."""
    loads = [c for c in _calls(stem) if ast.unparse(c.func) == "utils.load_pretrained"]
    assert loads, "PRETRAINED loads the shipped generator with utils.load_pretrained(STEM, DATASET, device, G=G)"
    for call in loads:
        assert len(call.args) >= 2 and "G" in {k.arg for k in call.keywords}, ast.unparse(call)


def _utils_names(text):
    """The dotted utils.<name>[.<name>] references in Python source."""
    return set(re.findall(r"(?<![\w.])utils((?:\.\w+)+)", text))


def test_every_utils_name_the_notebooks_and_solutions_use_exists():
    """A name removed from utils (pretrained_path, the old Logger's step) breaks the notebooks that still call it."""
    texts = {p.stem: _code(p.stem) for p in NOTEBOOKS}
    texts |= {f"solutions/{p.name}": p.read_text() for p in sorted((ROOT / "solutions").glob("*.py"))}
    missing = []
    for where, text in texts.items():
        for dotted in _utils_names(text):
            obj = utils
            for part in dotted.strip(".").split("."):
                if not hasattr(obj, part):
                    try:  # a submodule not imported by utils/__init__.py
                        obj = importlib.import_module(f"{obj.__name__}.{part}")
                        continue
                    except (ImportError, AttributeError):
                        missing.append(f"{where}: utils{dotted}")
                        break
                obj = getattr(obj, part)
    assert not missing, "\n".join(sorted(missing))


def _dict_keys(node, assigned):
    """The string keys of a dict literal or dict(...) call, following one assignment of a plain name."""
    if isinstance(node, ast.Name) and node.id in assigned:
        return set().union(*(_dict_keys(v, {}) for v in assigned[node.id]))
    if isinstance(node, ast.Dict):
        return {k.value for k in node.keys if isinstance(k, ast.Constant)}
    if isinstance(node, ast.Call) and ast.unparse(node.func) == "dict":
        return {k.arg for k in node.keywords}
    return set()


@pytest.mark.parametrize("stem", [s for s in SHIPPED if (ROOT / "notebooks" / f"{s}.ipynb").exists()])
def test_saved_samples_name_their_dataset_for_the_shipped_run(stem):
    """ship_run copies info.json beside the shipped generator; load_pretrained's dataset check reads its "dataset"."""
    assigned = {}
    for cell in NOTEBOOK_CODE[stem]:
        for node in ast.walk(ast.parse(cell)):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        assigned.setdefault(target.id, []).append(node.value)
    calls = [c for c in _calls(stem) if ast.unparse(c.func) == "utils.save_samples"]
    assert calls, "saves its samples with utils.save_samples"
    for call in calls:
        info = next((k.value for k in call.keywords if k.arg == "info"), None)
        assert info is not None and "dataset" in _dict_keys(info, assigned), \
            f"{ast.unparse(call)[:120]}...: info needs 'dataset': DATASET"


# ----------------------------------------------------------------------------- issue 20: notebook 13 as a deck

SLIDE_TYPES = {"slide", "subslide", "fragment", "skip", "notes", "-"}


def test_the_scaling_notebook_carries_slide_metadata_for_a_deck():
    """Every cell of 13_scaling_up says how it shows in a reveal.js deck; at least 8 slides, long code skipped."""
    cells = load(ROOT / "notebooks" / "13_scaling_up.ipynb")["cells"]
    kinds = [c.get("metadata", {}).get("slideshow", {}).get("slide_type") for c in cells]
    assert all(k in SLIDE_TYPES for k in kinds), f"cells without a valid slideshow.slide_type: {kinds}"
    assert kinds[0] == "slide" and kinds.count("slide") >= 8, f"{kinds.count('slide')} slides"
    assert all(k == "skip" for c, k in zip(cells, kinds) if c["cell_type"] == "code" and len(source(c).splitlines()) > 30), \
        "code longer than 30 lines is skipped in the deck"
