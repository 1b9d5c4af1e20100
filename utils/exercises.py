"""The wrapper around each exercise's check cell.

An exercise is a gap (a function whose body raises NotImplementedError) and, right after it, a check:

    with utils.exercise(1):
        out = leaky_relu(torch.tensor([-2.0, 3.0]))
        assert torch.equal(out, torch.tensor([-0.02, 3.0])), f"expected [-0.02, 3.0], got {out.tolist()}"

A check that passes prints one line with a tick. A wrong answer fails with the assert's own message.
While the gap is still blank the check is skipped with one line saying so, so that the notebook runs top
to bottom; with COURSE_EXERCISES=strict (as the tests run it) a blank gap fails the check instead.
Solutions live in solutions/, one file per notebook.
"""

import os
from contextlib import contextmanager


class ExerciseBlank(AssertionError):
    """A check ran while its exercise's gap still raised NotImplementedError (strict mode only)."""


@contextmanager
def exercise(number: int):
    """Run an exercise's check: a tick when its asserts pass, a skip line while the gap is blank."""
    try:
        yield
    except NotImplementedError as blank:
        message = (f"Exercise {number} is still blank: write your code in the cell above, run that cell, "
                   "then run this check again.")
        if os.environ.get("COURSE_EXERCISES") == "strict":
            raise ExerciseBlank(message) from blank
        print(f"✗ {message}")
        return
    print(f"✓ Exercise {number}: correct.")
