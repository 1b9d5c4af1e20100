"""A notebook's own code outside the notebook: its setup, parameters and tagged cells, executed as it executes them.

The models, losses and training steps of the course live in the notebooks that teach them. A benchmark or a
script that needs them (benchmarks/train_speed.py, scaling/train_ddp.py) does not copy them: it runs the
notebook's setup cell, its cell tagged `parameters` and its cells carrying a tag of its own ("benchmark" for the
speed benchmark, "ddp" for the distributed script), from the notebooks/ folder and in a chosen run profile, and
takes the names they define.

    ns = utils.notebook_cells("08_wgan", tags=("ddp",), profile="smoke")
    G, D = ns["Generator"](), ns["Critic"]()       # the classes notebook 08 defines, at its smoke settings
"""

from __future__ import annotations

import contextlib
import io
import json
import os

import torch

from .runtime import PROFILES, ROOT, CourseError


def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def tagged_sources(stem: str, tags=("benchmark",), notebooks=None) -> list[str]:
    """The sources of notebooks/<stem>.ipynb's setup cell, its `parameters` cell and its cells carrying any of
    `tags`, in that order (tagged cells in the notebook's order). CourseError when a part is missing."""
    path = (notebooks or ROOT / "notebooks") / f"{stem}.ipynb"
    if not path.is_file():
        raise CourseError(f"No notebook {path.name} in {path.parent}: check the name (e.g. '05_dcgan').")
    code = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    if isinstance(tags, str):
        tags = (tags,)
    parameters = [c for c in code if "parameters" in _tags(c)]
    tagged = [c for c in code if set(tags) & set(_tags(c))]
    if not code or not parameters:
        raise CourseError(f"{path.name} has no setup cell or no cell tagged 'parameters'.")
    if not tagged:
        raise CourseError(f"{path.name} has no cells tagged {' or '.join(map(repr, tags))}: tag the cells that "
                          "define what you need (the models, the losses) with it.")
    return ["".join(c["source"]) for c in (code[0], parameters[0], *tagged)]


def notebook_cells(stem: str, tags=("benchmark",), profile: str = "cpu", seed: int | None = None,
                   quiet: bool = False, notebooks=None) -> dict:
    """Execute the setup cell, the `parameters` cell and the cells tagged with any of `tags` of
    notebooks/<stem>.ipynb in run profile `profile`, from the notebooks/ folder as Jupyter runs them; return
    the namespace they leave (the classes, functions and values they define).

    `seed`: reseed torch after the parameters cell (the setup cell seeds 0), so that models built in tagged
    cells start from `seed`. `quiet`: hide what the cells print. $COURSE_PROFILE and the working folder are
    restored afterwards. Classes defined there report `notebook_<stem>` as their module.
    """
    if profile not in PROFILES:
        raise CourseError(f"profile {profile!r} is not a run profile; use one of {', '.join(PROFILES)}.")
    sources = tagged_sources(stem, tags, notebooks)
    ns: dict = {"__name__": f"notebook_{stem}"}
    cwd, before = os.getcwd(), os.environ.get("COURSE_PROFILE")
    os.environ["COURSE_PROFILE"] = profile
    os.chdir(notebooks or ROOT / "notebooks")
    shown = contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext()
    try:
        with shown:
            for i, text in enumerate(sources):
                if i == 2 and seed is not None:  # after setup and parameters: the tagged cells build from `seed`
                    torch.manual_seed(seed)
                exec(compile(text, f"{stem}[{i}]", "exec"), ns)
    finally:
        os.chdir(cwd)
        if before is None:
            os.environ.pop("COURSE_PROFILE", None)
        else:
            os.environ["COURSE_PROFILE"] = before
    return ns


__all__ = ["notebook_cells", "tagged_sources"]
