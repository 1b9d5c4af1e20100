"""Every exercise, both ways: its check fails while the gap is blank and passes with the solution.

An exercise is a code cell whose gap raises NotImplementedError, followed at once by its check cell,
`with utils.exercise(N): ...`. Its solution is the section `# %% Exercise N` of solutions/<notebook>.py,
which replaces the gap cell. A check runs after the notebook's setup cell and the cells tagged
`exercise-context` (the definitions it needs), so these tests take seconds, not a training run.
"""

import contextlib
import io
import json
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WITH_EXERCISES = [p for p in NOTEBOOKS if p.stem[:2] != "00"]  # 00 checks the setup; it has two as a first taste
CHECK = re.compile(r"^with utils\.exercise\((\d+)\):", re.M)


def source(cell):
    return "".join(cell["source"])


@cache
def cells_of(path):
    return json.loads(path.read_text())["cells"]


def exercises(path):
    """{number: (gap source, check source, stored check output)} in the notebook's order."""
    cells = cells_of(path)
    found = {}
    for before, cell in zip(cells, cells[1:]):
        match = CHECK.search(source(cell)) if cell["cell_type"] == "code" else None
        if match:
            assert before["cell_type"] == "code", f"exercise {match[1]}: the check must follow its gap cell at once"
            stored = "".join("".join(o.get("text", "")) for o in cell.get("outputs", []))
            found[int(match[1])] = (source(before), source(cell), stored)
    return found


def context(path):
    """The setup cell and the cells tagged exercise-context, in order."""
    cells = [c for c in cells_of(path) if c["cell_type"] == "code"]
    return [source(cells[0])] + [source(c) for c in cells[1:] if "exercise-context" in c["metadata"].get("tags", [])]


def solutions(stem):
    path = ROOT / "solutions" / f"{stem}.py"
    assert path.is_file(), f"solutions/{stem}.py is missing"
    parts = re.split(r"^# %% Exercise (\d+)\s*$", path.read_text(), flags=re.M)
    return {int(number): text.strip() + "\n" for number, text in zip(parts[1::2], parts[2::2])}


CASES = [(p, n) for p in NOTEBOOKS for n in exercises(p)]


def run(path, *cells):
    """Execute cells in one fresh namespace from the course folder; return what they printed."""
    namespace = {"__name__": "__main__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for cell in (*context(path), *cells):
            exec(compile(cell, f"<{path.stem}>", "exec"), namespace)
    return out.getvalue()


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.stem)
def test_every_notebook_from_01_has_two_code_exercises_with_solutions(path):
    found = exercises(path)
    assert len(found) >= 2, f"{path.stem} has {len(found)} code exercises; the course asks for at least two"
    assert sorted(found) == list(range(1, len(found) + 1)), f"exercises are numbered 1, 2, ... in order: {sorted(found)}"
    solved = solutions(path.stem)
    assert sorted(solved) == sorted(found), f"solutions/{path.stem}.py answers {sorted(solved)}, not {sorted(found)}"
    for number, (gap, _, _) in found.items():
        assert "raise NotImplementedError" in gap, f"exercise {number}: the gap raises NotImplementedError"
        assert "NotImplementedError" not in solved[number], f"exercise {number}: the solution fills the gap"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_stored_notebook_shows_each_gap_blank_and_its_check_skipped(path):
    for number, (_, _, stored) in exercises(path).items():
        assert f"Exercise {number} is still blank" in stored, \
            f"exercise {number}: the stored notebook shows the blank gap's check skipped, not a filled answer"


@pytest.mark.parametrize("path,number", CASES, ids=[f"{p.stem}-{n}" for p, n in CASES])
def test_check_fails_blank_and_passes_solved(path, number, monkeypatch):
    import utils

    monkeypatch.setenv("COURSE_EXERCISES", "strict")
    monkeypatch.chdir(ROOT / "notebooks")
    gap, check, _ = exercises(path)[number]
    with pytest.raises(utils.ExerciseBlank, match=f"Exercise {number} is still blank"):
        run(path, gap, check)
    printed = run(path, solutions(path.stem)[number], check)
    assert f"✓ Exercise {number}: correct." in printed, printed
