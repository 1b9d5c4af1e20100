"""Build the course site and the slide decks from the notebooks' stored outputs (nothing is executed).

    python publish/build.py site   [--out _build/site]     # one HTML page per notebook, an index from the README
    python publish/build.py slides [--out _build/slides]   # one reveal.js deck per notebook

Both work offline, from disk or from any static server: reveal.js comes from the sphinx-revealjs package and
MathJax from jupyter-server-mathjax, both copied beside the pages; nothing is loaded from a CDN. Slides follow
each cell's `metadata.slideshow.slide_type` (slide, subslide, fragment, skip, notes; PRESENTING.md has the
convention). The notebooks on disk are never changed: every adjustment below is made to a copy in memory.
"""

from __future__ import annotations

import argparse
import copy
import html
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter, SlidesExporter

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from utils.bootstrap import REPO_URL, github_repo  # noqa: E402  (the repository the Colab links name)

NOTEBOOKS = ROOT / "notebooks"
# owner/name on GitHub for the Colab and file links (the published course's when REPO_URL is not on GitHub)
GITHUB = github_repo(REPO_URL) or "amazing-gans/amazing-gans"

COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
FA_CDN = re.compile(r"<link[^>]*font-awesome[^>]*>")  # matplotlib's animation controls link Font Awesome
LONG_CODE = 12   # a slide shows at most this many lines of a code cell ...
SHOWN_CODE = 8   # ... the first SHOWN_CODE of them, then a line saying how many more the notebook has


def notebook_paths() -> list[Path]:
    """Every notebooks/NN_*.ipynb, in reading order."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def title_of(nb) -> str:
    """The notebook's '# ' title line without the leading '# '."""
    first = nb.cells[0].source.splitlines()[0] if nb.cells and nb.cells[0].cell_type == "markdown" else ""
    return first[2:].strip() if first.startswith("# ") else ""


def colab_url(name: str) -> str:
    return f"https://colab.research.google.com/github/{GITHUB}/blob/main/notebooks/{name}"


def repo_file_url(path: str) -> str:
    return f"https://github.com/{GITHUB}/blob/main/{path}"


def copy_static(out: Path, reveal: bool) -> None:
    """Empty out (made afresh), then MathJax (and reveal.js for decks) from their installed packages into
    out/_static, plus the course's CSS."""
    import jupyter_server_mathjax

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    static = out / "_static"
    static.mkdir(parents=True, exist_ok=True)
    mathjax = Path(jupyter_server_mathjax.__file__).parent / "static"
    shutil.copytree(mathjax, static / "mathjax", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("localization", "*.map", "docs", "test"))
    if reveal:
        import sphinx_revealjs

        revealjs = Path(sphinx_revealjs.__file__).parent / "_static" / "revealjs"
        for part in ("dist", "plugin", "LICENSE"):
            src = revealjs / part
            if src.is_dir():
                shutil.copytree(src, static / "reveal" / part, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.map"))
            elif src.exists():
                shutil.copy2(src, static / "reveal" / part)
    for name in ("course.css", "colab-badge.svg"):
        shutil.copy2(HERE / "static" / name, static / name)


def offline_copy(nb, badge: str):
    """The notebook with what would reach the network replaced: the Colab badge image, matplotlib's Font Awesome
    link (course.css draws the animation buttons instead), the ipywidgets state (whose renderer comes from a CDN;
    each widget then shows its text fallback)."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = cell.source.replace(COLAB_BADGE, badge)
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "text/html" in data:
                data["text/html"] = FA_CDN.sub("", data["text/html"])
    return nb


# ----------------------------------------------------------------------------- the site


def site_nav(pages: list[tuple[str, str, str]], current: str) -> str:
    """The reading-order list of pages, the current one marked."""
    items = []
    for href, number, title in pages:
        mark = ' aria-current="page" class="current"' if href == current else ""
        items.append(f'<li><a href="{href}"{mark}><span class="num">{number}</span> {html.escape(title)}</a></li>')
    return "\n".join(items)


def readme_notebook():
    """README.md as a one-cell notebook, its links pointed at the site's pages or the repository."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")

    def link(match):
        target = match.group(2)
        if re.match(r"^[a-z]+:|^#", target):
            return match.group(0)
        nb_page = re.fullmatch(r"notebooks/(\d\d_\w+)\.ipynb", target)
        new = f"{nb_page.group(1)}.html" if nb_page else repo_file_url(target)
        return f"{match.group(1)}({new})"

    text = re.sub(r"(\]\s?)\(([^)\s]+)\)", link, text)
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(text))
    nb.metadata["title"] = "Amazing GANs"
    return nb


def build_site(out: Path) -> dict:
    """out/index.html (the README), out/NN_name.html for every notebook, out/notebooks/*.ipynb to download."""
    start = time.perf_counter()
    copy_static(out, reveal=False)
    (out / "notebooks").mkdir()
    exporter = HTMLExporter(template_name="lab", extra_template_paths=[str(HERE / "templates")],
                            template_file="course_site.html.j2",
                            mathjax_url="_static/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full")
    paths = notebook_paths()
    nbs = {p: nbformat.read(p, as_version=4) for p in paths}
    pages = [("index.html", "", "Amazing GANs: the course")]
    pages += [(f"{p.stem}.html", p.stem[:2], title_of(nbs[p]).split("·", 1)[-1].strip() or p.stem) for p in paths]
    written = []
    for i, (href, _, _title) in enumerate(pages):
        if i == 0:
            nb, course = readme_notebook(), {}
        else:
            path = paths[i - 1]
            nb = offline_copy(nbs[path], "_static/colab-badge.svg")
            nb.metadata["title"] = title_of(nbs[path]) or path.stem
            shutil.copy2(path, out / "notebooks" / path.name)
            course = {"colab": colab_url(path.name), "download": f"notebooks/{path.name}", "name": path.name}
        course |= {
            "nav": site_nav(pages, href),
            "prev": pages[i - 1] if i > 0 else None,
            "next": pages[i + 1] if i + 1 < len(pages) else None,
        }
        body, _ = exporter.from_notebook_node(nb, resources={"course": course})
        (out / href).write_text(body, encoding="utf-8")
        written.append(href)
    return {"pages": written, "seconds": time.perf_counter() - start}


# ----------------------------------------------------------------------------- the slides


def slide_copy(nb):
    """The notebook as a deck shows it: no progress bars (stderr), no NBVAL markers, long code shortened."""
    nb = offline_copy(nb, "_static/colab-badge.svg")
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        lines = [line for line in cell.source.splitlines() if line.strip() != "# NBVAL_CHECK_OUTPUT"]
        if len(lines) > LONG_CODE:
            lines = lines[:SHOWN_CODE] + [f"# … {len(lines) - SHOWN_CODE} more lines in the notebook"]
        cell.source = "\n".join(lines)
        cell.outputs = [o for o in cell.get("outputs", []) if not (o.output_type == "stream" and o.name == "stderr")]
    return nb


def build_slides(out: Path) -> dict:
    """out/NN_name.slides.html for every notebook, and out/index.html listing them."""
    start = time.perf_counter()
    copy_static(out, reveal=True)
    exporter = SlidesExporter(template_name="reveal", extra_template_paths=[str(HERE / "templates")],
                              template_file="course_slides.html.j2", reveal_url_prefix="_static/reveal",
                              reveal_theme="white", reveal_transition="none", reveal_scroll=True,
                              reveal_number="c/t",
                              mathjax_url="_static/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full")
    decks, items = [], []
    for path in notebook_paths():
        source = nbformat.read(path, as_version=4)
        nb = slide_copy(source)
        nb.metadata["title"] = title_of(source) or path.stem
        body, _ = exporter.from_notebook_node(nb, resources={"course": {"colab": colab_url(path.name)}})
        name = f"{path.stem}.slides.html"
        (out / name).write_text(body, encoding="utf-8")
        decks.append(name)
        items.append(f'<li><a href="{name}">{html.escape(nb.metadata["title"])}</a></li>')
    index = (HERE / "templates" / "slides_index.html").read_text(encoding="utf-8").replace("{{ decks }}", "\n".join(items))
    (out / "index.html").write_text(index, encoding="utf-8")
    return {"decks": decks, "seconds": time.perf_counter() - start}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["site", "slides"])
    parser.add_argument("--out", type=Path, help="output folder (default _build/site or _build/slides)")
    args = parser.parse_args(argv)
    out = (args.out or ROOT / "_build" / args.what).resolve()
    if args.what == "site":
        done = build_site(out)
        print(f"site: {len(done['pages'])} pages in {out} ({done['seconds']:.1f} s); open {out / 'index.html'}")
    else:
        done = build_slides(out)
        print(f"slides: {len(done['decks'])} decks in {out} ({done['seconds']:.1f} s); open {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
