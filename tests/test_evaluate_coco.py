"""``python -m course_lib.evaluate_coco`` on a small COCO val folder and detections file in the real formats."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from course_lib import evaluate_coco, inference, keypoints, metrics, models, weights
from course_lib.data import ASTRONAUT_ANNOTATIONS

SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10.0


@pytest.fixture(scope="module")
def val2017(tmp_path_factory):
    """``data_scripts/coco.py``'s layout: annotations.json (COCO person keypoints) and images/000000000NNN.jpg."""
    root = tmp_path_factory.mktemp("coco") / "val2017"
    (root / "images").mkdir(parents=True)
    astronaut = json.loads(ASTRONAUT_ANNOTATIONS.read_text())
    person = dict(astronaut["annotations"][0], image_id=139, id=1)
    other = dict(person, id=2, image_id=285, keypoints=[v * 0.8 if i % 3 < 2 else v for i, v in enumerate(person["keypoints"])],
                 bbox=[10.8, 10.8, 276.8, 398.4], area=person["area"] * 0.64)
    images = []
    for image_id, name in ((139, "astronaut"), (285, "coffee"), (632, "chelsea")):
        picture = getattr(skimage.data, name)()
        file_name = f"{image_id:012d}.jpg"
        cv2.imwrite(str(root / "images" / file_name), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
        images.append({"id": image_id, "file_name": file_name, "height": picture.shape[0], "width": picture.shape[1]})
    (root / "annotations.json").write_text(json.dumps({"images": images, "annotations": [person, other],
                                                       "categories": [keypoints.coco_category()]}))
    detections = [
        {"image_id": 139, "category_id": 1, "bbox": [13.5, 13.5, 346.0, 498.0], "score": 0.9},
        {"image_id": 285, "category_id": 1, "bbox": [10.0, 10.0, 280.0, 400.0], "score": 0.8},
        {"image_id": 139, "category_id": 1, "bbox": [13.5, 13.5, 346.0, 498.0], "score": 0.9},  # a duplicate, same score
        {"image_id": 139, "category_id": 1, "bbox": [250.0, 300.0, 200.0, 200.0], "score": 0.3},
        {"image_id": 632, "category_id": 1, "bbox": [100.0, 50.0, 200.0, 250.0], "score": 0.6},  # nobody there
        {"image_id": 139, "category_id": 3, "bbox": [0.0, 0.0, 50.0, 50.0], "score": 0.99},  # a car
        {"image_id": 999, "category_id": 1, "bbox": [0.0, 0.0, 50.0, 50.0], "score": 0.5},  # not in the annotations
    ]
    (root / "detections.json").write_text(json.dumps(detections))
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = models.build("hrnet_tiny")
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight)
        model.final_layer.weight.mul_(0.05)
    return weights.save_model(tmp_path_factory.mktemp("ckpt") / "hrnet_tiny.pt", model, "hrnet_tiny")


def official_evaluate(records):
    """``coco.py::evaluate`` and ``nms.py::oks_nms`` transcribed: rescoring (in_vis_thre 0.2), NMS 0.9, output order."""
    kpts = {}
    for record in records:
        kpts.setdefault(record["image_id"], []).append(dict(record, keypoints=record["keypoints"].copy()))
    out = []
    for image_id, img_kpts in kpts.items():
        for person in img_kpts:
            confident = [s for s in person["keypoints"][:, 2] if s > 0.2]
            person["score"] = person["box_score"] * (sum(confident) / len(confident) if confident else 0)
        scores = np.array([p["score"] for p in img_kpts])
        flat = np.array([p["keypoints"].flatten() for p in img_kpts])
        areas = np.array([p["area"] for p in img_kpts])
        order = np.argsort(scores, kind="stable")[::-1]  # the NumPy of the time kept equal scores in index order
        keep = []
        while order.size > 0:
            i = order[0]
            keep.append(i)
            ious = []
            for d in flat[order[1:]]:
                e = ((d[0::3] - flat[i][0::3]) ** 2 + (d[1::3] - flat[i][1::3]) ** 2) / (SIGMAS * 2) ** 2
                ious.append(np.sum(np.exp(-(e / ((areas[i] + areas[order[len(ious) + 1]]) / 2 + np.spacing(1)) / 2))) / 17)
            order = order[np.where(np.array(ious) <= 0.9)[0] + 1]
        out += [{"image_id": image_id, "category_id": 1, "keypoints": img_kpts[k]["keypoints"].ravel().tolist(),
                 "score": img_kpts[k]["score"]} for k in keep]
    return out


def test_the_command_scores_the_detections_as_the_official_code(tmp_path, val2017, checkpoint, capsys):
    assert evaluate_coco.main(["--weights", str(checkpoint), "--data", str(val2017), "--detections",
                               str(val2017 / "detections.json"), "--flip-test", "--out", str(tmp_path / "r.json"),
                               "--json"]) == 0
    captured = capsys.readouterr()
    stats = json.loads(captured.out.strip().splitlines()[-1])
    assert set(stats) >= {"AP", "AP50", "AR"} and 0 <= stats["AP"] <= 1
    assert "1 detections are on images" in captured.err and "--all-images" in captured.err
    results = json.loads((tmp_path / "r.json").read_text())

    estimator = inference.load_estimator(None, checkpoint, flip_test=True)
    detections, outside = evaluate_coco.person_detections(val2017 / "detections.json", {139, 285, 632})
    assert outside == 1 and [len(v) for v in detections.values()] == [3, 1, 1]
    file_names = {i: f"{i:012d}.jpg" for i in (139, 285, 632)}
    records = evaluate_coco.estimate_all(estimator, val2017, detections, file_names, progress=False)
    expected = official_evaluate(records)
    assert [r["image_id"] for r in results] == [r["image_id"] for r in expected]
    for ours, theirs in zip(results, expected):
        assert ours["score"] == pytest.approx(theirs["score"], abs=1e-12)
        assert np.allclose(ours["keypoints"], theirs["keypoints"], atol=1e-9)
    assert len(results) < len(records)  # the duplicate is gone
    assert stats == metrics.coco_keypoint_eval(json.loads((val2017 / "annotations.json").read_text()), results)


def test_equal_scores_keep_the_later_pose_and_the_truth_scores_one(val2017):
    truth = json.loads((val2017 / "annotations.json").read_text())
    records = []
    for annotation in truth["annotations"]:
        xy = np.array(annotation["keypoints"], float).reshape(17, 3)
        triplets = np.concatenate([xy[:, :2], np.where(xy[:, 2:] > 0, 0.9, 0.1)], axis=1)
        for shift in (0.0, 0.5):  # a near duplicate with the same score
            records.append({"image_id": annotation["image_id"], "box_score": 1.0, "area": annotation["area"],
                            "keypoints": triplets + [shift, 0, 0]})
    results = evaluate_coco.rescore_and_suppress(records)
    assert len(results) == 2
    assert results[0]["keypoints"][0] == records[1]["keypoints"][0, 0]  # the later of two equal scores
    expected = official_evaluate(records)
    assert [r["keypoints"] for r in results] == [r["keypoints"] for r in expected]
    assert [r["score"] for r in results] == pytest.approx([r["score"] for r in expected], abs=1e-12)
    assert metrics.coco_keypoint_eval(truth, results)["AP"] == pytest.approx(1.0)


def test_clear_errors(tmp_path, val2017, checkpoint, capsys):
    assert evaluate_coco.main(["--weights", str(checkpoint), "--data", str(tmp_path), "--detections",
                               str(val2017 / "detections.json")]) == 1
    assert "no annotations.json" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text(json.dumps([{"image_id": 139, "bbox": [1, 2, 3, 4]}]))
    assert evaluate_coco.main(["--weights", str(checkpoint), "--data", str(val2017), "--detections",
                               str(tmp_path / "bad.json")]) == 1
    assert "needs image_id, bbox and score" in capsys.readouterr().err
    (tmp_path / "elsewhere.json").write_text(json.dumps([{"image_id": 5, "category_id": 1, "bbox": [1, 2, 3, 4],
                                                          "score": 1.0}]))
    assert evaluate_coco.main(["--weights", str(checkpoint), "--data", str(val2017), "--detections",
                               str(tmp_path / "elsewhere.json")]) == 1
    assert "no person detection on the images" in capsys.readouterr().err
