"""Chapter 08's additions to the metrics: interpolated AP of one list, arrays <-> COCO dicts,
pycocotools itself, and the every-metric comparison with its two controlled changes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from course_lib import metrics
from course_lib.metrics import compare
from course_lib.metrics.random_cases import random_keypoint_case


# --------------------------------------------------------------------------- interpolated precision
def _brute_force_ap(recall, precision, levels):
    values = [max([p for r, p in zip(recall, precision) if r >= level], default=0.0) for level in levels]
    return np.array(values)


@pytest.mark.parametrize("seed", range(6))
def test_interpolated_precision_is_the_best_precision_at_any_higher_recall(seed):
    rng = np.random.default_rng(seed)
    hits = rng.random(int(rng.integers(1, 50))) < 0.6
    num_gt = max(int(hits.sum()) + int(rng.integers(0, 5)), 1)
    recall = np.cumsum(hits) / num_gt
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    levels = np.linspace(0, 1, 101)
    assert np.array_equal(metrics.interpolated_precision(recall, precision), _brute_force_ap(recall, precision, levels))
    assert metrics.average_precision(recall, precision) == pytest.approx(_brute_force_ap(recall, precision, levels).mean())


def test_average_precision_of_a_single_threshold_equals_pycocotools():
    """One image per person and one detection each: COCO's AP at OKS 0.5 is the list's AP."""
    rng = np.random.default_rng(0)
    n = 40
    gt = rng.uniform(20, 200, size=(n, 17, 2))
    pred = gt + rng.normal(0, 4, size=(n, 17, 2))
    visible = np.full((n, 17), 2)
    boxes = np.tile([0.0, 0.0, 60.0, 120.0], (n, 1))
    areas = np.full(n, 3000.0)
    scores = rng.random(n)
    truth = metrics.ground_truth_to_coco(gt, visible, boxes, areas)
    results = metrics.results_to_coco(pred, np.ones((n, 17)), scores, np.arange(1, n + 1))
    expected = metrics.pycocotools_keypoint_eval(truth, results)["AP50"]
    oks = metrics.object_keypoint_similarity(pred, gt, visible, areas)
    hit = (oks >= 0.5)[np.argsort(-scores, kind="mergesort")]
    recall = np.cumsum(hit) / n
    precision = np.cumsum(hit) / np.arange(1, n + 1)
    assert metrics.average_precision(recall, precision) == pytest.approx(expected, abs=1e-12)


def test_interpolated_precision_bad_input():
    with pytest.raises(ValueError, match="recall must never decrease"):
        metrics.interpolated_precision([0.5, 0.2], [1.0, 1.0])
    with pytest.raises(ValueError, match="precision"):
        metrics.interpolated_precision([0.5, 0.6], [1.0])
    with pytest.raises(ValueError, match="recall"):
        metrics.interpolated_precision([np.nan], [1.0])
    assert metrics.average_precision([], []) == 0.0


# --------------------------------------------------------------------------- COCO dicts and pycocotools
def test_arrays_to_coco_round_trip_through_pycocotools(tmp_path):
    rng = np.random.default_rng(1)
    gt = rng.uniform(0, 300, size=(6, 17, 2))
    visible = rng.choice([0, 1, 2], size=(6, 17))
    visible[:, 0] = 2
    boxes = np.tile([10.0, 10.0, 100.0, 200.0], (6, 1))
    areas = rng.uniform(500, 20000, size=6)
    image_ids = np.array([3, 3, 5, 5, 5, 8])
    truth = metrics.ground_truth_to_coco(gt, visible, boxes, areas, image_ids)
    assert [image["id"] for image in truth["images"]] == [3, 5, 8]
    assert [a["id"] for a in truth["annotations"]] == [1, 2, 3, 4, 5, 6]
    first = truth["annotations"][0]
    assert first["num_keypoints"] == int((visible[0] > 0).sum())
    unlabelled = np.flatnonzero(visible[0] == 0)
    if unlabelled.size:
        assert first["keypoints"][3 * unlabelled[0]:3 * unlabelled[0] + 3] == [0.0, 0.0, 0.0]
    results = metrics.results_to_coco(gt + 1.0, rng.random((6, 17)), rng.random(6), image_ids)
    assert results[2]["keypoints"][:2] == [gt[2, 0, 0] + 1.0, gt[2, 0, 1] + 1.0]
    (tmp_path / "gt.json").write_text(json.dumps(truth))
    (tmp_path / "dt.json").write_text(json.dumps(results))
    ours = metrics.coco_keypoint_eval(tmp_path / "gt.json", tmp_path / "dt.json")
    theirs = metrics.pycocotools_keypoint_eval(tmp_path / "gt.json", tmp_path / "dt.json")
    assert ours == theirs
    assert ours["AP"] > 0.5


def test_pycocotools_wrapper_leaves_its_inputs_alone_and_agrees_on_random_cases():
    gt, dt = random_keypoint_case(seed=11, num_images=30)
    before = json.dumps([gt, dt])
    assert metrics.pycocotools_keypoint_eval(gt, dt) == metrics.coco_keypoint_eval(gt, dt)
    assert json.dumps([gt, dt]) == before


def test_coco_dicts_bad_input():
    with pytest.raises(ValueError, match="visibility"):
        metrics.ground_truth_to_coco(np.zeros((2, 17, 2)), np.zeros((3, 17)), np.zeros((2, 4)), np.ones(2))
    with pytest.raises(ValueError, match="scores"):
        metrics.results_to_coco(np.zeros((2, 17, 2)), np.zeros((2, 17)), np.zeros(3), np.ones(2))


# --------------------------------------------------------------------------- every metric
def _people(rng, n=30, scale=100.0):
    gt = rng.uniform(0, 1, size=(n, 17, 2)) * scale + 50
    pred = gt + rng.normal(0, 0.03 * scale, size=(n, 17, 2))
    visible = rng.choice([1, 2], size=(n, 17))
    boxes = np.concatenate([gt.min(axis=1), gt.max(axis=1) - gt.min(axis=1)], axis=1)
    head_boxes = np.concatenate([gt[:, 0] - 0.1 * scale, np.full((n, 2), 0.2 * scale)], axis=1)
    areas = boxes[:, 2] * boxes[:, 3] * 0.5
    return compare.scored_people(pred, gt, visible, boxes, areas, head_boxes, rng.random(n))


def test_every_metric_matches_the_individual_metrics():
    rng = np.random.default_rng(2)
    people = _people(rng)
    result = compare.every_metric(people)
    assert result["PCK@0.2"] == metrics.pck(people.pred, people.gt, people.visible,
                                            metrics.bbox_size(people.boxes), 0.2).mean
    assert result["PCKh@0.5"] == metrics.pckh(people.pred, people.gt, people.visible, people.head_boxes).mean
    assert result["PCP@0.5"] == metrics.pcp(people.pred, people.gt, people.visible).mean
    oks = metrics.object_keypoint_similarity(people.pred, people.gt, people.visible, people.areas)
    assert result["mean OKS"] == pytest.approx(oks.mean())
    assert result["error (px)"] == pytest.approx(np.linalg.norm(people.pred - people.gt, axis=-1).mean())
    assert set(result) == {"PCK@0.2", "PCKh@0.5", "PDJ@0.2", "PCP@0.5", "PCPm@0.5", "mean OKS", "AP", "AR",
                           "error (px)"}


def test_without_head_boxes_pckh_is_not_a_number_and_the_rest_is_scored():
    people = _people(np.random.default_rng(7))
    bare = compare.scored_people(people.pred, people.gt, people.visible, people.boxes, people.areas)
    result = compare.every_metric(compare.rescale_people(bare, 2.0))
    assert np.isnan(result["PCKh@0.5"]) and 0 < result["PCK@0.2"] <= 1


def test_perfect_predictions_score_one_everywhere_and_zero_pixels():
    people = _people(np.random.default_rng(3))
    result = compare.every_metric(people._replace(pred=people.gt.copy()))
    assert all(result[key] == pytest.approx(1.0) for key in result if key != "error (px)")
    assert result["error (px)"] == 0.0


def test_rescaling_keeps_pixel_errors_and_every_normalised_metric_follows_the_size():
    people = _people(np.random.default_rng(4))
    small, big = compare.rescale_people(people, 0.5), compare.rescale_people(people, 2.0)
    assert np.allclose(small.pred - small.gt, people.pred - people.gt)
    assert np.allclose(small.areas, people.areas / 4)
    base, low, high = (compare.every_metric(p) for p in (people, small, big))
    assert low["error (px)"] == pytest.approx(base["error (px)"]) == pytest.approx(high["error (px)"])
    for key in ("PCK@0.2", "PCKh@0.5", "PDJ@0.2", "PCP@0.5", "PCPm@0.5", "mean OKS"):
        assert low[key] <= base[key] <= high[key], key
    assert low["mean OKS"] < base["mean OKS"] < high["mean OKS"]


def test_one_broken_joint_moves_only_that_joint():
    people = _people(np.random.default_rng(5))
    broken = compare.break_one_joint(people, 9, 0.5)
    moved = np.linalg.norm(broken.pred - people.pred, axis=-1)
    assert np.all(moved[:, [k for k in range(17) if k != 9]] == 0)
    assert np.allclose(moved[:, 9], 0.5 * metrics.bbox_size(people.boxes))
    before, after = compare.every_metric(people), compare.every_metric(broken)
    assert after["error (px)"] > before["error (px)"]
    assert before["PCK@0.2"] - after["PCK@0.2"] <= 1 / 17 + 1e-9


def test_compare_bad_input():
    people = _people(np.random.default_rng(6))
    with pytest.raises(ValueError, match="factor"):
        compare.rescale_people(people, 0)
    with pytest.raises(ValueError, match="joint"):
        compare.break_one_joint(people, 17)
    with pytest.raises(ValueError, match="areas"):
        compare.scored_people(people.pred, people.gt, people.visible, people.boxes, -people.areas, people.head_boxes)
    with pytest.raises(ValueError, match="head_boxes"):
        compare.scored_people(people.pred, people.gt, people.visible, people.boxes, people.areas, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="labelled"):
        compare.every_metric(people._replace(visible=np.zeros_like(people.visible)))
