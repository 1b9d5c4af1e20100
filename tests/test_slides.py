"""`make slides`: one reveal.js deck per notebook from its stored outputs, checked in Chromium with no network.

Each deck must load with no console error and no failed or outside request, typeset its maths, load every image,
have at least 8 slides, move on with the arrow key, and carry presenter notes. Screenshots of each deck's first
two slides land in _build/screenshots/.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nbformat
import pytest
from browser_pages import SCREENSHOTS, WAIT_FOR_MATHJAX, browser, build, load, problems, source_has_math
from conftest import served

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MIN_SLIDES = 8


def _module(name):
    spec = importlib.util.spec_from_file_location(f"publish_{name}", ROOT / "publish" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def decks(tmp_path_factory):
    return build("slides", tmp_path_factory)


@pytest.fixture(scope="module")
def deck_browser(decks):
    with served(decks) as url, browser() as context:
        yield url, context


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_carries_slide_metadata(path):
    """The convention of PRESENTING.md: every cell typed; the title, the sections and the summary are slides."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    kinds = [c.get("metadata", {}).get("slideshow", {}).get("slide_type") for c in cells]
    untyped = [i for i, k in enumerate(kinds) if k is None]
    assert not untyped, f"cells without metadata.slideshow.slide_type: {untyped[:12]} (python publish/tag_slides.py)"
    assert kinds[0] == "slide", "the title cell starts the first slide"
    allowed = {"slide", "subslide", "fragment", "skip", "notes", "-"}
    assert set(kinds) <= allowed, f"unknown slide types {set(kinds) - allowed}"
    summary = [k for c, k in zip(cells, kinds) if "".join(c["source"]).startswith("## Summary")]
    assert summary and summary[0] == "slide", "the summary is a slide of its own"
    assert "notes" in kinds, "at least one cell holds presenter notes"
    setup = next(k for c, k in zip(cells, kinds) if c["cell_type"] == "code")
    assert setup == "skip", "the setup cell is not shown"


def test_long_code_is_shortened_on_a_slide():
    build = _module("build")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("\n".join(f"x{i} = {i}" for i in range(30))),
                nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(1)")]
    shown = build.slide_copy(nb)
    lines = shown.cells[0].source.splitlines()
    assert len(lines) == build.SHOWN_CODE + 1 and lines[-1] == f"# … {30 - build.SHOWN_CODE} more lines in the notebook"
    assert shown.cells[1].source == "print(1)", "nbval markers are not shown"
    assert len(nb.cells[0].source.splitlines()) == 30, "the notebook itself is not changed"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_deck_presents_offline_in_chromium(deck_browser, path):
    url, context = deck_browser
    name = path.stem
    page, facts = load(context, f"{url}/{name}.slides.html", SCREENSHOTS / f"slides-{name}-1.png")
    try:
        found = problems(facts, expect_math=source_has_math(path.read_text(encoding="utf-8")))
        assert not found, f"{name}.slides.html: " + "; ".join(found)
        total = page.evaluate("Reveal.getTotalSlides()")
        assert total >= MIN_SLIDES, f"{total} slides; a deck has at least {MIN_SLIDES}"
        first = page.evaluate("Reveal.getIndices()")
        page.keyboard.press("ArrowRight")
        page.wait_for_function("(h) => Reveal.getIndices().h !== h", arg=first["h"], timeout=5_000)
        assert page.evaluate(WAIT_FOR_MATHJAX) in ("typeset", "no MathJax")  # the slide's maths drawn again
        blank = page.evaluate("Array.from(Reveal.getCurrentSlide().querySelectorAll('.MathJax'))"
                              ".filter(e => !e.closest('aside.notes, .fragment:not(.visible)'))"  # shown ones only
                              ".filter(e => e.getBoundingClientRect().width === 0).length")
        assert blank == 0, f"{blank} formulas on the second slide are drawn with no width"
        page.screenshot(path=str(SCREENSHOTS / f"slides-{name}-2.png"))
        title = json.loads(path.read_text(encoding="utf-8"))["cells"][0]["source"][0].lstrip("# ").strip()
        assert page.evaluate("document.querySelector('.slides section h1').textContent").strip().startswith(title[:12])
        assert page.evaluate("document.querySelectorAll('aside.notes').length") > 0, "presenter notes are in the deck"
        assert facts["images"] > 0, "the deck shows the notebook's figures"
    finally:
        page.close()


def test_a_deck_opens_from_disk(decks, deck_browser):
    _, context = deck_browser
    deck = next(iter(sorted(decks.glob("04_*.slides.html"))), None) or next(iter(sorted(decks.glob("*.slides.html"))))
    page, facts = load(context, deck.as_uri())
    total = page.evaluate("Reveal.getTotalSlides()")
    page.close()
    assert not problems(facts, expect_math=True), problems(facts, expect_math=True)
    assert total >= MIN_SLIDES
