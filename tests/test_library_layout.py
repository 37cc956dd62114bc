"""How the library reads: small functions, one module per job, one place for each piece of logic."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import numpy as np

import course_lib

LIBRARY = Path(course_lib.__file__).resolve().parent
LONGEST = 60  # lines of code in one function, docstring, comments and blank lines aside
# Drawn in one piece, to be split where that module is reworked.
KNOWN_LONG = {"viz.py:draw_pose"}


def _code_lines(source: str) -> set[int]:
    lines = set()
    skipped = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skipped:
            lines.update(range(token.start[0], token.end[0] + 1))
    return lines


def _long_functions(path: Path) -> list[tuple[str, int]]:
    source = path.read_text(encoding="utf-8")
    code, tree = _code_lines(source), ast.parse(source)
    long = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        docstring = ast.get_docstring(node) or ""
        body = set(range(node.lineno, node.end_lineno + 1))
        if node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant):
            body -= set(range(node.body[0].lineno, node.body[0].end_lineno + 1))
        length = len(body & code)
        if length > LONGEST and "is long because" not in docstring:
            long.append((f"{path.relative_to(LIBRARY)}:{node.name}", length))
    return long


def test_no_function_is_longer_than_a_page_unless_it_says_why():
    long = [item for path in sorted(LIBRARY.rglob("*.py")) for item in _long_functions(path)]
    assert [item for item in long if item[0] not in KNOWN_LONG] == []


def test_training_is_split_by_job_and_the_notebooks_names_still_work():
    from course_lib import prediction, runtime, schedules, scoring, top_down, training

    assert training.resolve_device is runtime.resolve_device and training.budget is runtime.budget
    assert training.learning_rate is schedules.learning_rate and training.EpochBatches is schedules.EpochBatches
    assert training.predict is prediction.predict and training.Predictions is prediction.Predictions
    assert training.evaluate is scoring.evaluate and training.score_predictions is scoring.score_predictions
    assert training.top_down_data is top_down.top_down_data and training.model_sizes is top_down.model_sizes
    for step in ("train_step", "save_checkpoint", "load_checkpoint", "run_batches", "fit"):
        assert callable(getattr(training, step))


def test_coco_dicts_are_the_metrics_own_conversions():
    from course_lib import metrics
    from course_lib.prediction import Predictions
    from course_lib.scoring import coco_dicts

    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 100, (3, 17, 2))
    visibility = rng.choice([0, 1, 2], (3, 17))
    boxes, areas = np.tile([[5.0, 5.0, 90.0, 90.0]], (3, 1)), np.full(3, 4000.0)
    p = Predictions(gt + 1, rng.random((3, 17)), gt, visibility, boxes, areas, None, np.arange(3), np.arange(3))
    ground_truth, results = coco_dicts(p)
    assert ground_truth == metrics.ground_truth_to_coco(gt, visibility, boxes, areas, np.arange(1, 4))
    assert results == metrics.results_to_coco(p.keypoints, p.scores, p.scores.mean(axis=1), np.arange(1, 4))
