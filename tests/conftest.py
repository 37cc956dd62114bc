"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def default_data() -> Path:
    """The course's default synthetic data (made by `make data`; made here if missing)."""
    from course_lib.data import ensure_default_data

    return ensure_default_data()
