"""Copied answers: the same function as the course's solution, its reference, or another student's.

Two answers count as the same when their syntax trees are equal after normalising what a copy
usually changes: every name (the function's, its parameters', its variables', the modules it
imports) is replaced by its order of first appearance, and docstrings, comments, type
annotations and formatting are ignored.  Attribute names (``np.mean``, ``x.shape``) and
constants stay, so an answer written independently rarely matches one that was not::

    def flip(keypoints, width):          def mirror(p, w):
        out = keypoints.copy()     ==        q = p.copy()       # same tree, other names
        out[:, 0] = width - 1 - out[:, 0]    q[:, 0] = w - 1 - q[:, 0]
        return out                           return q

Functions with fewer than :data:`MIN_NODES` syntax nodes are never compared: a two-line
answer is written the same way by many students who never saw each other's work.  A match
flags the notebook with the reason (the instructor decides); it never changes the points.
"""

from __future__ import annotations

import ast
import hashlib
from collections import defaultdict

MIN_NODES = 50


def fingerprint(source: str, name: str) -> str | None:
    """A hash of the normalised syntax tree of the last top-level function or class ``name`` in
    ``source``; ``None`` if there is none, it does not parse, or it is shorter than
    :data:`MIN_NODES` nodes."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    definitions = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                       ast.ClassDef)) and node.name == name]
    if not definitions:
        return None
    node = _Normaliser().visit(definitions[-1])
    if sum(1 for _ in ast.walk(node)) < MIN_NODES:
        return None
    return hashlib.sha256(ast.dump(node, annotate_fields=False).encode("utf-8")).hexdigest()


def function_fingerprint(source: str) -> str | None:
    """The fingerprint of the one function defined in ``source`` (a method's source, dedented)."""
    import textwrap

    source = textwrap.dedent(source)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    names = [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return fingerprint(source, names[0]) if names else None


class _Normaliser(ast.NodeTransformer):
    """Names -> ``_0``, ``_1``... in order of first appearance; no docstrings, no annotations."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def _rename(self, name: str) -> str:
        return self.names.setdefault(name, f"_{len(self.names)}")

    def _strip(self, node: ast.AST) -> ast.AST:
        body = getattr(node, "body", None)
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.name = self._rename(node.name)
        node.returns = None
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        self._strip(node)
        self.generic_visit(node)
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.name = self._rename(node.name)
        self._strip(node)
        self.generic_visit(node)
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = self._rename(node.arg)
        node.annotation = None
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = self._rename(node.id)
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST:
        target = self.visit(node.target)
        value = self.visit(node.value) if node.value is not None else None
        if value is None:
            return ast.Pass()
        return ast.Assign(targets=[target], value=value)

    def visit_alias(self, node: ast.alias) -> ast.AST:
        node.name = self._rename(node.name)
        node.asname = self._rename(node.asname) if node.asname else None
        return node

    def visit_Expr(self, node: ast.Expr) -> ast.AST | None:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return None  # a bare string: a comment in disguise
        self.generic_visit(node)
        return node


def find_copies(answers: dict[str, str], references: dict[str, str]) -> dict[str, list[str]]:
    """Which answers are copies, and of what.

    Args:
        answers: ``{student: fingerprint}`` of one exercise (students whose answer is too short
            or missing left out).
        references: ``{description: fingerprint}`` of the course's own versions (its solution,
            its reference implementation), e.g. ``{"the course's solution": ...}``.

    Returns:
        ``{student: [reasons]}`` for every student whose answer matches a reference or another
        student's answer, e.g. ``["the same code as the course's solution"]`` or
        ``["the same code as bob's answer"]``.
    """
    flags: dict[str, list[str]] = defaultdict(list)
    by_print: dict[str, list[str]] = defaultdict(list)
    for student, print_ in answers.items():
        by_print[print_].append(student)
    for description, print_ in references.items():
        for student in by_print.get(print_, []):
            flags[student].append(f"the same code as {description}")
    for students in by_print.values():
        if len(students) > 1:
            for student in students:
                others = ", ".join(s for s in sorted(students) if s != student)
                flags[student].append(f"the same code as the answer of {others}")
    return dict(flags)
