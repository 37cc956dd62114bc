"""The COCO keypoint evaluator against pycocotools' COCOeval, to the last bit, and its edge cases."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

from course_lib.evaluate import main
from course_lib.keypoints import COCO_SIGMAS, coco_category
from course_lib.metrics import (
    SUMMARY_KEYS,
    KeypointEvalParams,
    coco_keypoint_eval,
    evaluate_coco_keypoints,
    format_coco_summary,
    greedy_match,
)
from course_lib.metrics.random_cases import random_keypoint_case

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402


def _pycocotools(gt: dict, dt: list) -> tuple[dict, str, COCOeval]:
    """pycocotools' ten numbers, the text it prints, and the evaluator (inputs left untouched)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(dt))
        evaluator = COCOeval(coco_gt, coco_dt, iouType="keypoints")
        evaluator.evaluate()
        evaluator.accumulate()
        start = len(printed.getvalue())
        evaluator.summarize()
    return dict(zip(SUMMARY_KEYS, evaluator.stats.tolist())), printed.getvalue()[start:], evaluator


def _ours(gt, dt, **kwargs) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return coco_keypoint_eval(gt, dt, **kwargs)


def _assert_same_as_pycocotools(gt: dict, dt: list) -> dict:
    expected, _, _ = _pycocotools(gt, dt)
    got = _ours(gt, dt)
    assert got == expected  # exact equality of every float
    return got


# --------------------------------------------------------------------------- hand-made people
def _person(x: float, y: float, height: float, rng: np.random.Generator) -> np.ndarray:
    """A 17-keypoint figure ``(17, 2)`` standing at (x, y)."""
    offsets = rng.uniform(-0.25, 0.25, (17, 2)) * [0.5, 2.0]
    return np.array([x, y]) + height * offsets


def _gt_annotation(ann_id, image_id, keypoints, flags=None, area=None, crowd=0, **extra):
    flags = np.full(17, 2) if flags is None else np.asarray(flags)
    keypoints = np.where(flags[:, None] > 0, keypoints, 0)
    x0, y0 = keypoints[flags > 0].min(axis=0) if (flags > 0).any() else (0, 0)
    x1, y1 = keypoints[flags > 0].max(axis=0) if (flags > 0).any() else (10, 10)
    ann = {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "keypoints": np.column_stack([keypoints, flags]).ravel().tolist(),
        "num_keypoints": int((flags > 0).sum()),
        "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
        "area": float((x1 - x0) * (y1 - y0) * 0.6) if area is None else area,
        "iscrowd": crowd,
    }
    ann.update(extra)
    return ann


def _result(image_id, keypoints, score, **extra):
    result = {
        "image_id": image_id,
        "category_id": 1,
        "keypoints": np.column_stack([keypoints, np.ones(17)]).ravel().tolist(),
        "score": score,
    }
    result.update(extra)
    return result


def _dataset(annotations, image_ids=(1, 2, 3)):
    return {
        "images": [{"id": i, "width": 640, "height": 480} for i in image_ids],
        "annotations": annotations,
        "categories": [coco_category()],
    }


@pytest.fixture
def scene():
    """Three images: people of every size, a crowd, an unlabelled person, an empty image."""
    rng = np.random.default_rng(10)
    people = {
        1: [_person(100, 100, 200, rng), _person(300, 120, 80, rng), _person(500, 300, 40, rng)],
        2: [_person(200, 200, 150, rng)],
    }
    anns = [
        _gt_annotation(1, 1, people[1][0], area=20000.0),  # large
        _gt_annotation(2, 1, people[1][1], flags=rng.choice([0, 1, 2], 17), area=5000.0),  # medium
        _gt_annotation(3, 1, people[1][2], area=800.0),  # small: only in "all"
        _gt_annotation(4, 2, people[2][0], area=12000.0),
        _gt_annotation(5, 2, np.zeros((17, 2)), flags=np.zeros(17), crowd=1, area=9000.0),
        _gt_annotation(6, 2, np.zeros((17, 2)), flags=np.zeros(17), area=900.0),
    ]
    anns[4]["bbox"] = [400, 50, 120, 80]
    anns[5]["bbox"] = [20, 400, 30, 30]
    return _dataset(anns), people, rng


# --------------------------------------------------------------------------- equality with pycocotools
def test_perfect_predictions_score_one(scene):
    gt, people, _ = scene
    dt = [_result(i, p, 0.9) for i, poses in people.items() for p in poses]
    got = _assert_same_as_pycocotools(gt, dt)
    assert got["AP"] == pytest.approx(1.0) and got["AR"] == pytest.approx(1.0)


def test_noisy_duplicated_and_spurious_predictions(scene):
    gt, people, rng = scene
    dt = []
    for image_id, poses in people.items():
        for pose in poses:
            for noise in (2.0, 6.0, 15.0):
                dt.append(_result(image_id, pose + rng.normal(0, noise, (17, 2)), float(rng.random())))
        dt.append(_result(image_id, _person(600, 50, 60, rng), 0.99))
    dt.append(_result(3, _person(50, 50, 100, rng), 0.5))  # an image without people
    _assert_same_as_pycocotools(gt, dt)


def test_detections_in_crowd_and_unlabelled_regions_are_ignored(scene):
    gt, people, rng = scene
    inside_crowd = np.full((17, 2), [450.0, 90.0]) + rng.normal(0, 5, (17, 2))
    inside_enlarged_box = np.full((17, 2), [35.0, 415.0]) + rng.normal(0, 2, (17, 2))
    dt = [_result(2, people[2][0], 0.5), _result(2, inside_crowd, 0.9), _result(2, inside_crowd + 1, 0.8),
          _result(2, inside_enlarged_box, 0.95)]
    got = _assert_same_as_pycocotools(gt, dt)
    assert got["AP"] > 0.1  # the ignored detections are not false positives


def test_more_than_twenty_detections_per_image_keep_the_best_twenty():
    rng = np.random.default_rng(11)
    pose = _person(200, 200, 150, rng)
    gt = _dataset([_gt_annotation(1, 1, pose)], image_ids=(1,))
    junk = [_result(1, _person(500, 400, 30, rng), 0.9 + i / 1000) for i in range(20)]
    dt = junk + [_result(1, pose, 0.5)]  # the true pose is the 21st best: never seen
    got = _assert_same_as_pycocotools(gt, dt)
    assert got["AR"] == 0.0
    dt = junk[:19] + [_result(1, pose, 0.5)]
    assert _assert_same_as_pycocotools(gt, dt)["AR"] == 1.0


def test_ties_in_score_and_in_oks():
    rng = np.random.default_rng(12)
    a = _person(200, 200, 100, rng)
    b = a.copy()
    b[:, 0] += 8.0  # b is a shifted by 8 px
    gt = _dataset([_gt_annotation(1, 1, a, area=5000.0), _gt_annotation(2, 1, b, area=5000.0),
                   _gt_annotation(3, 2, a, area=5000.0)], image_ids=(1, 2))
    halfway = (a + b) / 2  # equally far from a and from b
    # The halfway detection, first, ties between the two people: pycocotools gives it the later
    # one (b), leaving a for the second detection, which only a can take at high thresholds.
    dt = [_result(1, halfway, 0.9), _result(1, a, 0.8), _result(2, a, 0.9), _result(2, b, 0.9)]
    got = _assert_same_as_pycocotools(gt, dt)
    reversed_gt = _dataset([gt["annotations"][1], gt["annotations"][0], gt["annotations"][2]], image_ids=(1, 2))
    assert _assert_same_as_pycocotools(reversed_gt, dt) != got  # the tie-break matters


def test_area_range_bounds_are_included():
    rng = np.random.default_rng(13)
    anns, dt = [], []
    for i, area in enumerate([32**2 - 1, 32**2, 96**2, 96**2 + 1, 1e10]):
        pose = _person(100 + 100 * i, 200, np.sqrt(area) if area < 1e9 else 300, rng)
        anns.append(_gt_annotation(i + 1, 1, pose, area=float(area)))
        dt.append(_result(1, pose + rng.normal(0, 1, (17, 2)), float(rng.random())))
    _assert_same_as_pycocotools(_dataset(anns, image_ids=(1,)), dt)


def test_results_with_boxes_take_their_area_from_the_box(scene):
    gt, people, rng = scene
    dt = [_result(1, pose + rng.normal(0, 3, (17, 2)), 0.5 + 0.1 * k, bbox=[0, 0, 10 * (k + 1), 100], area=7.0)
          for k, pose in enumerate(people[1])]
    _assert_same_as_pycocotools(gt, dt)
    for result in dt:
        result["bbox"] = []  # an empty box: loadRes falls back to the keypoints' extent
    _assert_same_as_pycocotools(gt, dt)


def test_pycocotools_quirks_are_reproduced(scene):
    gt, people, rng = scene
    gt = copy.deepcopy(gt)
    gt["annotations"][0]["id"] = 0  # a match to id 0 reads as no match
    gt["annotations"][1]["ignore"] = 1  # overwritten by pycocotools: not ignored
    gt["annotations"][2]["num_keypoints"] = 0  # ignored although its keypoints are labelled
    gt["annotations"][3]["iscrowd"] = False
    gt["annotations"].append(_gt_annotation(99, 77, people[1][0]))  # image 77 is not listed
    dt = [_result(i, p + rng.normal(0, 2, (17, 2)), float(rng.random())) for i, ps in people.items() for p in ps]
    dt.append(dict(_result(1, people[1][0], 0.7), category_id=5))  # unknown category
    with pytest.warns(UserWarning, match="id 0"), pytest.warns(UserWarning, match="skipped"):
        coco_keypoint_eval(gt, dt)
    _assert_same_as_pycocotools(gt, dt)


def test_multiple_categories_are_averaged_like_pycocotools():
    gt, dt = random_keypoint_case(14, num_images=15, num_categories=3)
    _assert_same_as_pycocotools(gt, dt)
    gt["categories"].append({"id": 9, "name": "nobody"})  # a category without annotations
    _assert_same_as_pycocotools(gt, dt)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"result_boxes": True},
        {"num_categories": 2},
        {"crowd_rate": 0.4, "unlabelled_rate": 0.3},
        {"max_detections": 40, "tie_rate": 1.0},
        {"max_people": 1, "num_images": 40},
    ],
    ids=["default", "boxes", "two-categories", "crowds", "crowded-ties", "single-person"],
)
def test_random_cases_equal_pycocotools(options):
    for seed in range(12):
        gt, dt = random_keypoint_case(100 + seed, **options)
        if dt:
            _assert_same_as_pycocotools(gt, dt)


def test_fuzz_many_seeds():
    rng = np.random.default_rng(15)
    for seed in range(120):
        gt, dt = random_keypoint_case(
            seed,
            num_images=int(rng.integers(1, 12)),
            max_people=int(rng.integers(0, 7)),
            max_detections=int(rng.integers(1, 30)),
            crowd_rate=float(rng.uniform(0, 0.3)),
            unlabelled_rate=float(rng.uniform(0, 0.3)),
            tie_rate=float(rng.uniform(0, 1)),
            result_boxes=bool(rng.random() < 0.2),
            num_categories=int(rng.integers(1, 3)),
        )
        if dt:
            _assert_same_as_pycocotools(gt, dt)


def test_greedy_match_loop_agrees_with_pycocotools_per_image():
    gt, dt = random_keypoint_case(16, num_images=25, crowd_rate=0.2, unlabelled_rate=0.2)
    _, _, evaluator = _pycocotools(gt, dt)
    params = KeypointEvalParams()
    checked = 0
    for result in evaluator.evalImgs:
        if result is None or result["aRng"] != [0, 1e10] or not len(evaluator.ious[result["image_id"], 1]):
            continue
        gts = evaluator._gts[result["image_id"], 1]  # annotation order
        oks = evaluator.ious[result["image_id"], 1]  # (D, G), detections sorted by score
        ignore = np.array([bool(g["ignore"]) for g in gts])
        crowd = np.array([bool(g["iscrowd"]) for g in gts])
        ids = np.array([g["id"] for g in gts] + [0])  # index -1: no match
        for t, threshold in enumerate(params.oks_thresholds):
            matches = greedy_match(oks, ignore, crowd, threshold)
            np.testing.assert_array_equal(ids[matches], result["dtMatches"][t])
        checked += 1
    assert checked > 10


def test_evaluation_keeps_pycocotools_precision_and_recall_arrays():
    gt, dt = random_keypoint_case(17, num_images=10)
    _, _, evaluator = _pycocotools(gt, dt)
    evaluation = evaluate_coco_keypoints(gt, dt)
    assert np.array_equal(evaluation.precision, evaluator.eval["precision"][..., 0])
    assert np.array_equal(evaluation.recall, evaluator.eval["recall"][..., 0])


def test_params_equal_pycocotools():
    from pycocotools.cocoeval import Params

    theirs, ours = Params(iouType="keypoints"), KeypointEvalParams()
    assert np.array_equal(ours.oks_thresholds, theirs.iouThrs)
    assert np.array_equal(ours.recall_thresholds, theirs.recThrs)
    assert np.array_equal(ours.sigmas, theirs.kpt_oks_sigmas)
    assert [ours.max_detections] == theirs.maxDets
    assert [[lo, hi] for _, lo, hi in ours.area_ranges] == theirs.areaRng
    assert list(ours.area_labels) == theirs.areaRngLbl


def test_inputs_are_not_modified_and_paths_and_dicts_work(tmp_path, scene):
    gt, people, _ = scene
    dt = [_result(i, p, 0.9, area=1.0) for i, ps in people.items() for p in ps]
    gt_copy, dt_copy = copy.deepcopy(gt), copy.deepcopy(dt)
    expected = coco_keypoint_eval(gt, dt)
    assert gt == gt_copy and dt == dt_copy
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps({"annotations": dt}))
    assert coco_keypoint_eval(tmp_path / "gt.json", str(tmp_path / "dt.json")) == expected


def test_no_detections_gives_zeros_with_a_warning(scene):
    gt, _, _ = scene
    with pytest.warns(UserWarning, match="no detections"):
        stats = coco_keypoint_eval(gt, [])
    assert stats == dict.fromkeys(SUMMARY_KEYS, 0.0)
    large_only = _dataset([gt["annotations"][0]])  # nobody of medium size: that bucket is empty
    with pytest.warns(UserWarning):
        stats = coco_keypoint_eval(large_only, [])
    assert stats["APm"] == -1.0 and stats["ARm"] == -1.0 and stats["AP"] == 0.0 and stats["APl"] == 0.0


# --------------------------------------------------------------------------- bad input
def _bad_dt(change):
    def make(scene_data):
        gt, people, _ = scene_data
        dt = [_result(1, people[1][k], 0.5) for k in range(3)]
        change(dt)
        return gt, dt

    return make


def _bad_gt(change):
    def make(scene_data):
        gt, people, _ = scene_data
        gt = copy.deepcopy(gt)
        change(gt)
        return gt, [_result(1, people[1][0], 0.5)]

    return make


@pytest.mark.parametrize(
    "make, match",
    [
        (_bad_dt(lambda dt: dt[1].pop("score")), r"dt\[1\] has no 'score'"),
        (_bad_dt(lambda dt: dt[2].update(score=float("nan"))), r"dt\[2\]: score must be finite"),
        (_bad_dt(lambda dt: dt[1].update(keypoints=dt[1]["keypoints"][:-3])),
         r"dt\[1\]: keypoints must be a list of 51"),
        (_bad_dt(lambda dt: dt[2]["keypoints"].__setitem__(4, float("nan"))), r"dt\[2\]: keypoints must be finite"),
        (_bad_dt(lambda dt: dt[1].update(image_id=42)), r"dt\[1\]: image_id 42 is not an image"),
        (_bad_dt(lambda dt: dt[0].pop("image_id")), r"dt\[0\] has no 'image_id'"),
        (_bad_dt(lambda dt: dt[2].update(score="high")), r"dt\[2\]: score must hold numbers"),
        (_bad_dt(lambda dt: dt.__setitem__(1, [1, 2])), r"dt\[1\] must be a dict"),
        (_bad_dt(lambda dt: dt[0].update(segmentation={"counts": "x"})), "segmentation"),
        (_bad_gt(lambda gt: gt["annotations"][2].update(area=0)),
         r"gt annotation id 3 \(annotations\[2\]\): area must be > 0"),
        (_bad_gt(lambda gt: gt["annotations"][1].pop("num_keypoints")), r"id 2 .* has no 'num_keypoints'"),
        (_bad_gt(lambda gt: gt["annotations"][0].pop("iscrowd")), r"id 1 .* has no 'iscrowd'"),
        (_bad_gt(lambda gt: gt["annotations"][4].pop("bbox")), r"id 5 .* has no 'bbox'"),
        (_bad_gt(lambda gt: gt["annotations"][3].update(id=1)), r"duplicate id"),
        (_bad_gt(lambda gt: gt["annotations"][3].update(iscrowd=2)), r"iscrowd must be 0 or 1"),
        (_bad_gt(lambda gt: gt["annotations"][0]["keypoints"].pop()), r"id 1 .*keypoints must be a list of 51"),
        (_bad_gt(lambda gt: gt.pop("categories")), r"gt must have a 'categories' list"),
    ],
)
def test_bad_input_names_the_entry(scene, make, match):
    gt, dt = make(scene)
    with pytest.raises(ValueError, match=match):
        coco_keypoint_eval(gt, dt)


def test_labelled_ground_truth_needs_no_box(scene):
    gt, people, _ = scene
    dt = [_result(1, people[1][0], 0.5), _result(1, people[1][1], 0.6)]
    expected, _, _ = _pycocotools(gt, dt)  # pycocotools reads every box, used or not
    without_box = copy.deepcopy(gt)
    del without_box["annotations"][0]["bbox"]
    assert coco_keypoint_eval(without_box, dt) == expected


# --------------------------------------------------------------------------- command line
def test_command_line_prints_pycocotools_table_and_json(tmp_path, capsys):
    gt, dt = random_keypoint_case(18, num_images=8)
    expected, printed, _ = _pycocotools(gt, dt)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dt))
    assert main([str(tmp_path / "gt.json"), str(tmp_path / "dt.json")]) == 0
    assert capsys.readouterr().out == printed
    assert format_coco_summary(expected) + "\n" == printed
    assert main([str(tmp_path / "gt.json"), str(tmp_path / "dt.json"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == expected


def test_command_line_reports_bad_input(tmp_path, capsys):
    (tmp_path / "gt.json").write_text(json.dumps(_dataset([])))
    result = {"image_id": 5, "category_id": 1, "keypoints": [0] * 51, "score": 1}
    (tmp_path / "dt.json").write_text(json.dumps([result]))
    assert main([str(tmp_path / "gt.json"), str(tmp_path / "dt.json")]) == 1
    assert "image_id 5 is not an image" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.json"), str(tmp_path / "dt.json")]) == 1


def test_command_line_runs_as_a_module(tmp_path):
    gt, dt = random_keypoint_case(19, num_images=3)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dt.json").write_text(json.dumps(dt))
    done = subprocess.run(
        [sys.executable, "-m", "course_lib.evaluate", str(tmp_path / "gt.json"), str(tmp_path / "dt.json"), "--json"],
        capture_output=True, text=True, timeout=120, check=True,
    )
    assert set(json.loads(done.stdout)) == set(SUMMARY_KEYS)


def test_custom_sigmas_for_another_keypoint_set():
    rng = np.random.default_rng(20)
    params = KeypointEvalParams(sigmas=COCO_SIGMAS[:14])
    gt = rng.uniform(0, 100, (14, 2))
    data = {
        "images": [{"id": 1}],
        "categories": [{"id": 1}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 3000.0,
                         "num_keypoints": 14, "keypoints": np.column_stack([gt, np.full(14, 2)]).ravel().tolist()}],
    }
    keypoints = np.column_stack([gt, np.ones(14)]).ravel().tolist()
    results = [{"image_id": 1, "category_id": 1, "score": 1.0, "keypoints": keypoints}]
    assert coco_keypoint_eval(data, results, params)["AP"] == pytest.approx(1.0)
