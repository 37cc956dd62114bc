"""What the grading tests share: a check fails with the right hint; whether to grade in the sandbox."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from course_lib.grading.checks import CheckFailed
from course_lib.grading.sandbox import bubblewrap_problem

# Tests that grade a whole notebook to check its points use the sandbox where bubblewrap works
# (CI installs it) and grade without it elsewhere: the points do not depend on it.  The tests of
# what the sandbox itself prevents skip where it is missing.
SANDBOX = not bubblewrap_problem()


def assert_check_fails(check: Callable[[Any], None], answer: Any, *fragments: str) -> str:
    """Run ``check(answer)``, expect `CheckFailed`, and require every fragment in its message.

    Returns the message, for tests that look at it further.
    """
    with pytest.raises(CheckFailed) as failure:
        check(answer)
    message = str(failure.value)
    for fragment in fragments:
        assert fragment in message, message
    return message
