"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def default_data() -> Path:
    """The course's default synthetic data (made by `make data`; made here if missing)."""
    from course_lib.data import ensure_default_data

    return ensure_default_data()


@pytest.fixture(scope="module")
def one_thread():
    """Run a module of small-tensor tests on one thread.

    For tensors this small, one thread is faster than two, and far faster on a machine shared
    with other work, where two threads wait for each other. Modules ask for it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
