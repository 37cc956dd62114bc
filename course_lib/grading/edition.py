"""What students get, and what a graded notebook's kernel gets: editions of the course library.

The repository is the instructor's edition: solutions, hidden tests, every reference answer.
Two other editions are made from it:

* the **student edition** (:func:`write_student_edition`, ``python -m course_lib.grading
  release --student-dir DIR``): the released notebooks, the course library, the data scripts,
  the demos and the README, but no ``solutions/``, no ``tests/``, and check modules with their
  hidden checks removed (every ``hidden_<exercise>`` function, the ``REFERENCES`` table, and
  every helper that only they use);
* the **grading library** (:func:`write_grading_library`): what a submitted notebook's kernel
  imports while it is graded.  It is the student edition's library, and in addition the
  course's own implementation of each exercise *of the notebook being graded* (the functions
  its check module lists in ``REFERENCES``) has its body replaced by
  ``raise ReferenceUnavailable(...)``.  The code is not there to be called, copied or
  reloaded; after an exercise has been judged the grader sends the real code back
  (:func:`function_source`, ``remote.restore``), because later exercises may build on it.

Both are plain copies of the files with some line ranges replaced, so that the student
edition still reads like the original (comments and layout kept).
"""

from __future__ import annotations

import ast
import inspect
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

HIDDEN_PREFIX = "hidden_"
REFERENCE_PREFIX = "reference_"
REFERENCES_TABLE = "REFERENCES"
# what the student edition holds, relative to the repository's root
STUDENT_EDITION = ("README.md", "LICENSE", "Makefile", "requirements.txt", "environment.yml", "pyproject.toml",
                   ".gitignore", "course_lib", "data_scripts", "notebooks", "demos", "bench")
_SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info")


@dataclass(frozen=True)
class Reference:
    """A course function that answers an exercise: where it lives and its source."""

    module: str  # "course_lib.heatmaps"
    qualname: str  # "decode_argmax", or "Residual.forward" for a method
    path: Path  # the file that defines it

    @property
    def name(self) -> str:
        return f"{self.module}.{self.qualname}"


def reference_of(function: Callable) -> Reference:
    """The :class:`Reference` of a plain function or method (as listed in a check module's
    ``REFERENCES``)."""
    function = getattr(function, "__func__", function)
    path = inspect.getsourcefile(function)
    if path is None or "<" in function.__qualname__:
        raise ValueError(f"{function!r} is not a top-level function or method of a module file")
    return Reference(function.__module__, function.__qualname__, Path(path).resolve())


# -- rewriting one module ----------------------------------------------------------------------------

def strip_hidden_tests(text: str) -> str:
    """The module without its hidden checks: every top-level ``hidden_*`` function, the
    ``REFERENCES`` table, and the top-level definitions that only they use.

    What stays: imports and other module-level statements, every public name that is not a
    ``hidden_`` / ``reference_`` function, and everything those use (a visible check keeps the
    reference implementation it compares with).
    """
    tree = ast.parse(text)
    defined = {name: node for node in tree.body for name in _defined_names(node)}
    roots: set[str] = set()
    for node in tree.body:
        names = _defined_names(node)
        if not names:
            roots |= _used_names(node)
        elif any(_is_root(name) for name in names):
            roots |= set(names)
    kept = _closure(roots, defined)
    dropped = [node for node in tree.body if _defined_names(node) and not (set(_defined_names(node)) & kept)]
    return _tidy(_remove(text, dropped))


def _defined_names(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
        return [t.id for t in node.targets]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def _is_root(name: str) -> bool:
    return not (name.startswith(("_", HIDDEN_PREFIX, REFERENCE_PREFIX)) or name == REFERENCES_TABLE)


def _used_names(node: ast.AST) -> set[str]:
    return {child.id for child in ast.walk(node) if isinstance(child, ast.Name)}


def _closure(roots: set[str], defined: dict[str, ast.stmt]) -> set[str]:
    kept, queue = set(), list(roots)
    while queue:
        name = queue.pop()
        if name in kept or name not in defined:
            continue
        kept.add(name)
        queue += sorted(_used_names(defined[name]) - kept)
    return kept


def _start_line(node: ast.stmt) -> int:
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno] + [d.lineno for d in decorators])


def _remove(text: str, nodes: Iterable[ast.stmt]) -> str:
    lines = text.splitlines(keepends=True)
    for node in sorted(nodes, key=_start_line, reverse=True):
        del lines[_start_line(node) - 1: node.end_lineno]
    return "".join(lines)


def _tidy(text: str) -> str:
    """At most two blank lines in a row (what removing definitions leaves behind)."""
    return re.sub(r"\n{4,}", "\n\n\n", text).rstrip("\n") + "\n"


def stub_functions(text: str, qualnames: dict[str, str]) -> str:
    """The module with the body of each named function replaced by ``raise ReferenceUnavailable``.

    ``qualnames`` maps a qualified name in this module (``"decode_argmax"``,
    ``"Residual.forward"``) to the name the error reports.  The signature and docstring stay.
    """
    tree = ast.parse(text)
    lines = text.splitlines(keepends=True)
    found = {qualname: node for qualname, node in _functions(tree)}
    missing = sorted(set(qualnames) - set(found))
    if missing:
        raise ValueError(f"no function {', '.join(missing)} in the module")
    for qualname in sorted(qualnames, key=lambda q: found[q].lineno, reverse=True):
        node = found[qualname]
        body = node.body[1:] if _has_docstring(node) else node.body
        indent = " " * (node.body[0].col_offset if node.body[0].lineno > node.lineno else node.col_offset + 4)
        stub = [f"{indent}raise __import__('course_lib.grading.remote', fromlist=['ReferenceUnavailable'])"
                f".ReferenceUnavailable({qualnames[qualname]!r})\n"]
        if _uses_class_cell(node):
            stub.append(f"{indent}__class__  # the original needs this cell (zero-argument super())\n")
        if node.body[0].lineno == node.lineno:  # a one-line function: keep its header, stub below it
            header = lines[node.lineno - 1][: node.body[0].col_offset].rstrip()
            lines[node.lineno - 1: node.end_lineno] = [header + "\n"] + stub
        elif body:
            lines[body[0].lineno - 1: node.end_lineno] = stub
        else:
            lines[node.end_lineno: node.end_lineno] = stub
    return "".join(lines)


def _functions(tree: ast.Module, prefix: str = ""):
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, prefix + node.name + ".")


def _has_docstring(node: ast.AST) -> bool:
    first = node.body[0] if node.body else None
    return isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)


def _uses_class_cell(node: ast.AST) -> bool:
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and child.id == "__class__":
            return True
        if isinstance(child, ast.Call) and isinstance(child.func, ast.Name) and child.func.id == "super" and not child.args:
            return True
    return False


def function_source(reference: Reference) -> str:
    """The source of the function (its ``def`` line to its end, decorators left out)."""
    text = reference.path.read_text(encoding="utf-8")
    found = dict(_functions(ast.parse(text)))
    if reference.qualname not in found:
        raise ValueError(f"no function {reference.qualname} in {reference.path}")
    node = found[reference.qualname]
    return "".join(text.splitlines(keepends=True)[node.lineno - 1: node.end_lineno])


# -- whole editions ---------------------------------------------------------------------------------------

def defines_hidden_tests(text: str) -> bool:
    """True if the module defines a top-level ``hidden_*`` function (a check module)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return False
    return any(isinstance(node, ast.FunctionDef) and node.name.startswith(HIDDEN_PREFIX) for node in tree.body)


def copy_library(source: Path, destination: Path, *, stubs: dict[Path, dict[str, str]] | None = None) -> None:
    """Copy a package folder (or one module file) with check modules stripped of hidden tests
    and, in the files named in ``stubs``, the named functions stubbed out (:func:`stub_functions`)."""
    stubs = {path.resolve(): names for path, names in (stubs or {}).items()}
    if source.is_dir():
        shutil.copytree(source, destination, ignore=_SKIPPED)
        files = sorted(destination.rglob("*.py"))
        originals = [source / file.relative_to(destination) for file in files]
    else:
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
        files, originals = [destination], [source]
    for copied, original in zip(files, originals):
        text = copied.read_text(encoding="utf-8")
        changed = text
        if original.resolve() in stubs:
            changed = stub_functions(changed, stubs[original.resolve()])
        if defines_hidden_tests(changed):
            changed = strip_hidden_tests(changed)
        if changed != text:
            copied.write_text(changed, encoding="utf-8")


def write_grading_library(destination: Path, packages: Iterable[Path], references: Iterable[Reference]) -> Path:
    """The library a graded notebook's kernel imports (see the module docstring): each package
    folder or module file in ``packages`` copied into ``destination`` with hidden tests removed
    and every function in ``references`` stubbed.  Returns ``destination``."""
    stubs: dict[Path, dict[str, str]] = {}
    for reference in references:
        stubs.setdefault(reference.path, {})[reference.qualname] = reference.name
    destination.mkdir(parents=True, exist_ok=True)
    packages = [Path(p).resolve() for p in packages]
    for path in stubs:
        if not any(path == p or p in path.parents for p in packages):
            raise ValueError(f"{path} is not part of the course library copied for grading")
    for package in packages:
        copy_library(package, destination / package.name, stubs=stubs)
    return destination


def write_student_edition(destination: str | Path, root: str | Path, notebooks: str | Path | None = None) -> list[Path]:
    """Write the student edition of the course at ``root`` into ``destination`` (which must not
    exist or be empty), with the released notebooks from ``notebooks`` (default
    ``root/notebooks``); returns the top-level paths written."""
    destination, root = Path(destination), Path(root)
    notebooks = Path(notebooks) if notebooks is not None else root / "notebooks"
    if destination.exists() and any(destination.iterdir()):
        raise FileExistsError(f"{destination} is not empty: give a new folder for the student edition")
    destination.mkdir(parents=True, exist_ok=True)
    written = []
    for name in STUDENT_EDITION:
        source = notebooks if name == "notebooks" else root / name
        if not source.exists():
            continue
        if name == "course_lib":
            copy_library(source, destination / name)
        elif source.is_dir():
            shutil.copytree(source, destination / name, ignore=_SKIPPED)
        else:
            shutil.copy2(source, destination / name)
        written.append(destination / name)
    return written
