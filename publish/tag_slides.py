"""Give a notebook's cells the course's default slide types, where a cell has none yet.

    python publish/tag_slides.py notebooks/13_scaling_up.ipynb      # writes the notebook, outputs untouched
    python publish/tag_slides.py --check notebooks/*.ipynb           # lists the cells still without a type

The convention (PRESENTING.md, "Slide metadata"): the title cell, every `## ` section and the summary start a
slide; a `### ` subsection starts a subslide; a code cell that draws (an image or the training animation) starts
a subslide of its own; other code cells with output (shapes, metrics) continue the slide they follow; the setup
and parameters cells, code without output and the exercises are skipped; the commentary on a result (a markdown cell right
after a code cell's output), and any other markdown cell longer than LONG_NOTES lines, goes into the presenter notes. A type set by hand is never changed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

LONG_NOTES = 12  # a plain markdown cell longer than this is read by the presenter, not shown
COMMENTARY = ("Read ", "What to look for", "How to read", "The lines above", "Compare ")


def _text(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _draws(cell) -> bool:
    return any(key in output.get("data", {}) for output in cell.get("outputs", []) for key in ("image/png", "text/html"))


def default_type(cell, in_exercises: bool, first_code: bool, after_output: bool = False) -> str:
    """The slide type the convention gives this cell (`after_output`: it follows a code cell's output)."""
    text = _text(cell).strip()
    if cell["cell_type"] == "markdown":
        if text.startswith("# ") or text.startswith("## "):
            return "skip" if in_exercises and not text.startswith("## Exercises") else "slide"
        if in_exercises:
            return "skip"
        if text.startswith("### "):
            return "subslide"
        if after_output or text.startswith(COMMENTARY) or len(text.splitlines()) > LONG_NOTES:
            return "notes"
        return "-"
    tags = cell.get("metadata", {}).get("tags", [])
    if (in_exercises or first_code or "parameters" in tags or not cell.get("outputs")
            or text.startswith('print(f"profile') or "utils.exercise(" in text):
        return "skip"
    return "subslide" if _draws(cell) else "-"


def tag(nb: dict) -> int:
    """Set the default slide type on every cell without one; returns how many cells changed."""
    changed, in_exercises, seen_code, previous = 0, False, False, None
    for cell in nb["cells"]:
        text = _text(cell).strip()
        if cell["cell_type"] == "markdown" and text.startswith("## "):
            in_exercises = text.startswith("## Exercises")
        if cell["cell_type"] == "markdown" and text.startswith("## References"):
            in_exercises = False
        first_code = cell["cell_type"] == "code" and not seen_code
        seen_code = seen_code or cell["cell_type"] == "code"
        slideshow = cell.setdefault("metadata", {}).get("slideshow", {})
        if "slide_type" not in slideshow:
            after_output = previous is not None and previous["cell_type"] == "code" and bool(previous.get("outputs"))
            kind = default_type(cell, in_exercises, first_code, after_output)
            cell["metadata"]["slideshow"] = {**slideshow, "slide_type": kind}
            changed += 1
        previous = cell
    return changed


def untyped(nb: dict) -> list[int]:
    return [i for i, c in enumerate(nb["cells"]) if "slide_type" not in c.get("metadata", {}).get("slideshow", {})]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="only list cells without a slide type")
    args = parser.parse_args(argv)
    missing = 0
    for path in args.notebooks:
        nb = json.loads(path.read_text(encoding="utf-8"))
        if args.check:
            cells = untyped(nb)
            missing += len(cells)
            print(f"{path}: {len(cells)} cells without a slide type" + (f" ({cells[:10]}...)" if cells else ""))
            continue
        changed = tag(nb)
        # nbformat's own layout (sorted keys, one-space indent, UTF-8, final newline): only the new keys differ
        path.write_text(json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"{path}: {changed} cells given a slide type")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
