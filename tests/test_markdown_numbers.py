"""Every number in a notebook's prose is one its cells print, or one its code states.

A measured number written into markdown goes stale the moment a re-run changes it. So each number in a
markdown cell must appear in the notebook's stored outputs (printed by a cell) or in its code (a parameter, a
constant). Exempt: numbers inside LaTeX maths and inline code, small counts (0 to 12), years, headings'
section numbers, the References section, and the short per-notebook list of facts quoted from the papers and
tutorials below, each with its source.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

# Numbers the prose quotes from a paper, a talk or a tutorial (not measured here), per notebook.
QUOTED = {
    "03_autoencoders": {"256"},                # PixelRNN's 256-way softmax per pixel (van den Oord et al. 2016)
    "04_vanilla_gan": {"60000", "200", "100",  # the seed tutorial: 200 epochs of the 60,000 MNIST digits, batches of 100
                       "20"},                  # LeCun, as the tutorial quotes him: "... in the last 20 years"
    "05_dcgan": {"202599"},                    # CelebA's image count (Liu et al. 2015)
    "06_ebgan": {"159000", "60000"},
    "09_gan_pitfalls": {"3033042", "130000", "2.74"},  # the seed talk's slides on its LSUN-bedroom run           # the seed talk's slides: margin 8 trained 159,000 steps; 60,000 digits
}

NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?")


def prose(text):
    """Markdown without maths, inline code, links' targets, HTML tags and the References section."""
    text = re.split(r"^#+ *References\b", text, flags=re.M)[0]
    text = re.sub(r"\$\$.*?\$\$|\$[^$\n]+\$", " ", text, flags=re.S)
    text = re.sub(r"```.*?```|`[^`\n]*`", " ", text, flags=re.S)
    text = re.sub(r"\]\([^)]*\)|<[^>]+>|https?://\S+", " ", text)
    return re.sub(r"^#+ *\d+(\.\d+)?\.? ", "# ", text, flags=re.M)


def canonical(whole, fraction):
    return whole.replace(",", "") + (f".{fraction}" if fraction else "")


def numbers(text):
    return {canonical(m[1], m[2]) for m in NUMBER.finditer(text)}


def needs_a_source(number):
    value = float(number)
    return not ((value <= 12 and "." not in number) or (1900 <= value <= 2100 and "." not in number))


def sources(nb):
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    text = []
    for cell in code:
        text.append("".join(cell["source"]))
        for out in cell.get("outputs", []):
            text.append("".join(out.get("text", "")))
            for kind, value in out.get("data", {}).items():
                if kind.startswith("text/") and kind != "text/html":
                    text.append("".join(value))
    found = set()
    for number in numbers("\n".join(text)):
        found.add(number)
        if "." in number:  # a printed 0.123 also supports the prose's 0.12, and 12.34 supports 12.3
            whole, fraction = number.split(".")
            found.update(f"{whole}.{fraction[:k]}" for k in range(1, len(fraction)))
            found.add(str(round(float(number))))
        found.update(re.findall(r"\d+", number))
    found.update(re.sub(r"e[+-]?0*", "e", n) for n in re.findall(r"\d+(?:\.\d+)?e[+-]?\d+", "\n".join(text)))
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_numbers_in_the_prose_are_printed_or_stated_by_the_code(path):
    nb = json.loads(path.read_text())
    known = sources(nb) | set(QUOTED.get(path.stem, ()))
    unsupported = {}
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        missing = sorted(n for n in numbers(prose("".join(cell["source"]))) if needs_a_source(n) and n not in known)
        if missing:
            unsupported[f"cell {i}"] = missing
    assert not unsupported, (
        "numbers in the prose that no cell prints and no code states; print them from a cell, or add a "
        f"quoted fact to QUOTED with its source: {unsupported}")
