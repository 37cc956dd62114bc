"""What the grading tests assert about a check: it fails, and its message carries the right hint."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from course_lib.grading.checks import CheckFailed


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
