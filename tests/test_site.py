"""`make site`: every notebook as a page with its stored outputs, an index from the README, checked in Chromium.

The site is built once for this module (publish/build.py, what `make site` runs) into a temporary folder, served
on 127.0.0.1 as `python -m http.server` would, and loaded with the network cut off: no console error, no failed
or outside request, every image loaded, the maths typeset. Screenshots land in _build/screenshots/.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from browser_pages import SCREENSHOTS, browser, build, load, problems, source_has_math
from conftest import served

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.links.append(dict(attrs))


def links(page: str) -> list[dict]:
    """The attributes of every <a> on a page (nbconvert reorders attributes, so no string matching)."""
    parser = _Links()
    parser.feed(page)
    return parser.links


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return build("site", tmp_path_factory)


@pytest.fixture(scope="module")
def site_browser(site):
    with served(site) as url, browser() as context:
        yield url, context


def test_the_site_has_a_page_per_notebook_in_reading_order(site):
    index = (site / "index.html").read_text(encoding="utf-8")
    pages = [f"{p.stem}.html" for p in NOTEBOOKS]
    assert all((site / page).is_file() for page in pages), "one page per notebooks/NN_*.ipynb"
    nav = re.search(r'<nav[^>]*class="course-nav".*?</nav>', index, re.S).group(0)
    assert re.findall(r'href="(\d\d_\w+\.html)"', nav) == pages, "the sidebar lists every notebook in reading order"
    assert "<table" in index and "cpu-profile time" in index, "the index carries the README's tables"
    assert re.findall(r'<td><a href="(\d\d_\w+\.html)"', index) == pages, "the README's table links to the pages"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_page_links_to_colab_the_download_and_its_neighbours(site, path):
    page = (site / f"{path.stem}.html").read_text(encoding="utf-8")
    anchors = links(page)
    hrefs = {a.get("href") for a in anchors}
    assert any(h and h.startswith("https://colab.research.google.com/github/") and h.endswith(f"/notebooks/{path.name}")
               for h in hrefs), "links to the notebook on Colab"
    assert any(a.get("href") == f"notebooks/{path.name}" and "download" in a for a in anchors), "a download link"
    assert (site / "notebooks" / path.name).read_bytes() == path.read_bytes(), "the download is the notebook itself"
    rel = {a.get("rel"): a.get("href") for a in anchors if a.get("rel")}
    i = NOTEBOOKS.index(path)
    assert rel.get("prev") == ("index.html" if i == 0 else f"{NOTEBOOKS[i - 1].stem}.html")
    assert rel.get("next") == (f"{NOTEBOOKS[i + 1].stem}.html" if i + 1 < len(NOTEBOOKS) else None)
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', page), "nothing loads from outside"


@pytest.mark.parametrize("name", ["index"] + [p.stem for p in NOTEBOOKS])
def test_a_site_page_loads_offline_in_chromium(site_browser, name):
    url, context = site_browser
    source = (ROOT / "README.md" if name == "index" else ROOT / "notebooks" / f"{name}.ipynb").read_text(encoding="utf-8")
    page, facts = load(context, f"{url}/{name}.html", SCREENSHOTS / f"site-{name}.png")
    page.close()
    found = problems(facts, expect_math=source_has_math(source))
    assert not found, f"{name}.html: " + "; ".join(found)
    if name != "index":
        assert facts["images"] > 0, "the stored outputs' figures are on the page"


def test_the_site_opens_from_disk(site, site_browser):
    """Opened as files (no server): the pages, their maths and the animation still work."""
    _, context = site_browser
    for name in ("index", "04_vanilla_gan"):
        path = site / f"{name}.html"
        if not path.exists():
            continue
        page, facts = load(context, path.as_uri())
        page.close()
        found = problems(facts, expect_math=name != "index")
        assert not found, f"{name}.html from disk: " + "; ".join(found)


def test_the_checks_catch_a_broken_page(site_browser, tmp_path):
    """The browser checks can fail: a page with a CDN script, a missing image and raw TeX is reported."""
    (tmp_path / "bad.html").write_text(
        '<!DOCTYPE html><html><head><link rel="icon" href="data:,">'
        '<script src="https://cdn.example.org/lib.js"></script></head>'
        '<body><p>$$x^2$$</p><img src="missing.png"></body></html>', encoding="utf-8")
    _, context = site_browser
    with served(tmp_path) as url:
        page, facts = load(context, f"{url}/bad.html")
        page.close()
    found = " ".join(problems(facts, expect_math=True))
    for words in ("left the machine", "failed requests", "did not load", "TeX left raw", "not rendered"):
        assert words in found, f"{words!r} not reported: {found}"
