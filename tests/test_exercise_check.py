"""utils.exercise: a tick when the check passes, a skip line while the gap is blank, the assert's message otherwise."""

import pytest

import utils


def blank():
    raise NotImplementedError("exercise 1: write this")


def test_a_passing_check_prints_a_tick(capsys):
    with utils.exercise(3):
        assert 1 + 1 == 2
    assert capsys.readouterr().out == "✓ Exercise 3: correct.\n"


def test_a_blank_gap_is_skipped_with_one_line_and_the_notebook_goes_on(capsys, monkeypatch):
    monkeypatch.delenv("COURSE_EXERCISES", raising=False)
    with utils.exercise(2):
        blank()
        raise AssertionError("never reached")
    out = capsys.readouterr().out
    assert out.startswith("✗ Exercise 2 is still blank") and out.count("\n") == 1


def test_strict_mode_fails_a_blank_gap(monkeypatch):
    monkeypatch.setenv("COURSE_EXERCISES", "strict")
    with pytest.raises(utils.ExerciseBlank, match="Exercise 1 is still blank") as failure:
        with utils.exercise(1):
            blank()
    assert isinstance(failure.value, AssertionError) and isinstance(failure.value.__cause__, NotImplementedError)


def test_a_wrong_answer_fails_with_the_checks_own_message(capsys):
    with pytest.raises(AssertionError, match="expected shape \\(4, 1\\), got \\(4,\\)"):
        with utils.exercise(1):
            shape = (4,)
            assert shape == (4, 1), f"expected shape (4, 1), got {shape}"
    assert "✓" not in capsys.readouterr().out
