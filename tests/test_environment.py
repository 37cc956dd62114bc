"""The set-up files agree with each other: requirements.txt, environment.yml, pyproject."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import re
from pathlib import Path

import pytest
import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _requirements(python_version: str) -> dict[str, str]:
    env = dict(default_environment(), python_version=python_version, python_full_version=python_version + ".0")
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        if req.marker is None or req.marker.evaluate(env):
            assert req.name.lower() not in pins, f"{req.name} pinned twice for Python {python_version}"
            pins[req.name.lower()] = str(req.specifier)
    return pins


def _conda_environment() -> tuple[str, dict[str, str]]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    pins = {}
    for line in pip_section:
        req = Requirement(line)
        pins[req.name.lower()] = str(req.specifier)
    return python.split("=", 1)[1], pins


def test_every_requirement_is_pinned_exactly():
    for version in ("3.10", "3.11", "3.12"):
        for name, spec in _requirements(version).items():
            assert re.fullmatch(r"==[\w.+]+", spec), f"{name} is not pinned exactly for Python {version}: {spec!r}"


def test_environment_yml_matches_requirements():
    python, conda_pins = _conda_environment()
    assert conda_pins == _requirements(python)


def test_torch_pinned_and_opencv_headless():
    pins = _requirements("3.11")
    assert pins["torch"] == "==2.13.0"
    assert "opencv-python-headless" in pins
    assert "opencv-python" not in pins
    assert "torchvision" not in pins, "torchvision is optional: it must not be required"


def test_torchvision_is_only_imported_inside_try():
    """torchvision cannot load with the CPU build of torch here: import it only inside try."""
    offenders = []
    for path in sorted((ROOT / "course_lib").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        guarded = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Try):
                for inner in node.body:
                    for sub in ast.walk(inner):
                        guarded.add(id(sub))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n.split(".")[0] == "torchvision" for n in names) and id(node) not in guarded:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"unguarded torchvision imports: {offenders}"


@pytest.mark.parametrize("user_id, root", [("0", True), ("1000", False)])
def test_make_lab_passes_allow_root_to_jupyter_only_as_root_and_says_so(tmp_path, user_id, root):
    """``make lab`` with a stand-in ``jupyter`` that prints its arguments, as root and not."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    fake = tmp_path / "jupyter"
    fake.write_text('#!/bin/sh\necho "jupyter $*"\n')
    fake.chmod(0o755)
    env = {key: value for key, value in os.environ.items() if key not in ("DISPLAY", "WAYLAND_DISPLAY", "MAKEFLAGS")}
    result = subprocess.run(["make", "-s", "lab", "-o", "setup", f"BIN={tmp_path}", f"USER_ID={user_id}"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    (command,) = [line for line in result.stdout.splitlines() if line.startswith("jupyter lab")]
    assert ("--allow-root" in command.split()) == root
    assert ("Running as root" in result.stdout) == root
