"""COCO's flat keypoint list, the keypoint box, the schematic keypoint sets and the error drawing (chapter 00)."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402

from course_lib import keypoints as kp  # noqa: E402
from course_lib import viz  # noqa: E402
from course_lib.data import ASTRONAUT_ANNOTATIONS  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_coco_to_arrays_reads_triplets():
    keypoints, visibility = kp.coco_to_arrays([10, 20, 2, 0, 0, 0, 30.5, 40.25, 1])
    np.testing.assert_array_equal(keypoints, [[10.0, 20.0], [0.0, 0.0], [30.5, 40.25]])
    np.testing.assert_array_equal(visibility, [2, 0, 1])
    assert keypoints.dtype == np.float64 and visibility.dtype == np.int64


def test_arrays_to_coco_writes_what_pycocotools_reads(tmp_path):
    rng = np.random.default_rng(0)
    keypoints = rng.uniform(0, 100, (17, 2))
    visibility = rng.integers(0, 3, 17)
    values = kp.arrays_to_coco(keypoints, visibility)
    assert len(values) == 51 and all(type(v) is int for v in values[2::3])
    assert (visibility == 0).any()
    for k in np.flatnonzero(visibility == 0):
        assert values[3 * k:3 * k + 3] == [0.0, 0.0, 0]  # COCO stores no position for unlabelled keypoints
    coco = {"images": [{"id": 1, "width": 100, "height": 100}], "categories": [kp.coco_category()],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "keypoints": values, "iscrowd": 0,
                             "num_keypoints": int((visibility > 0).sum()), "area": 100.0, "bbox": [0, 0, 10, 10]}]}
    path = tmp_path / "people.json"
    path.write_text(json.dumps(coco))
    read = np.asarray(COCO(str(path)).loadAnns(1)[0]["keypoints"]).reshape(17, 3)
    labelled = visibility > 0
    np.testing.assert_allclose(read[labelled, :2], keypoints[labelled])
    np.testing.assert_array_equal(read[~labelled], 0)
    back, back_visibility = kp.coco_to_arrays(values)
    np.testing.assert_array_equal(back_visibility, visibility)
    np.testing.assert_allclose(back[labelled], keypoints[labelled])


def test_the_astronaut_round_trips():
    annotation = json.loads(ASTRONAUT_ANNOTATIONS.read_text())["annotations"][0]
    assert kp.arrays_to_coco(*kp.coco_to_arrays(annotation["keypoints"])) == annotation["keypoints"]


def test_keypoint_box_uses_labelled_keypoints_only():
    keypoints = np.array([[10.0, 50.0], [30.0, 20.0], [0.0, 0.0], [25.0, 80.0]])
    np.testing.assert_array_equal(kp.keypoint_box(keypoints, [2, 1, 0, 2]), [10.0, 20.0, 20.0, 60.0])
    np.testing.assert_array_equal(kp.keypoint_box(keypoints, [0, 1, 0, 0]), [30.0, 20.0, 0.0, 0.0])
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 500, (17, 2))
    x, y, w, h = kp.keypoint_box(points, np.full(17, 2))
    assert (points[:, 0] >= x).all() and (points[:, 0] <= x + w).all()
    assert (points[:, 1] >= y).all() and (points[:, 1] <= y + h).all()
    assert np.isclose(points[:, 0], x).any() and np.isclose(points[:, 1], y + h).any()  # tight


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: kp.coco_to_arrays([1, 2, 2, 3]), "3 numbers"),
        (lambda: kp.coco_to_arrays([]), "3 numbers"),
        (lambda: kp.coco_to_arrays([1, 2, 3]), "flags 0, 1 or 2"),
        (lambda: kp.coco_to_arrays([[1, 2, 2]]), "values must have shape"),
        (lambda: kp.coco_to_arrays([1, float("nan"), 2]), "NaN"),
        (lambda: kp.arrays_to_coco(np.zeros((3, 2)), [2, 2]), "visibility must have shape"),
        (lambda: kp.arrays_to_coco(np.zeros((3, 3)), [2, 2, 2]), "keypoints must have shape"),
        (lambda: kp.arrays_to_coco(np.zeros((2, 2)), [2, 5]), "flags 0, 1 or 2"),
        (lambda: kp.keypoint_box(np.zeros((3, 2)), [0, 0, 0]), "no keypoint"),
        (lambda: kp.keypoint_box(np.zeros((3, 2)), [1, 1]), "visibility must have shape"),
        (lambda: kp.template_pose("h36m"), "keypoint_set must be one of"),
    ],
)
def test_bad_input_is_named(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


@pytest.mark.parametrize("name", ["coco", "mpii", "lsp"])
def test_template_poses_are_people_facing_the_camera(name):
    names = kp.KEYPOINT_SETS[name]
    pose = kp.template_pose(name)
    assert pose.shape == (len(names), 2)
    index = {n: i for i, n in enumerate(names)}
    # The person's left is on the right of the picture, and the ankles are below the shoulders.
    assert pose[index["left_shoulder"], 0] > pose[index["right_shoulder"], 0]
    assert pose[index["left_ankle"], 1] > pose[index["left_shoulder"], 1]
    assert ((pose >= 0) & (pose <= [120, 200])).all()


@pytest.mark.parametrize("name", ["coco", "mpii", "lsp"])
def test_draw_keypoint_set_numbers_every_joint(name):
    ax = viz.draw_keypoint_set(name)
    labels = sorted(int(text.get_text()) for text in ax.texts)
    assert labels == list(range(len(kp.KEYPOINT_SETS[name])))
    limbs = [line for line in ax.lines if len(line.get_xdata()) == 2]
    assert len(limbs) == len(kp.SKELETONS[name])
    assert ax.get_title() == f"{name.upper()}-{len(kp.KEYPOINT_SETS[name])}"
    with pytest.raises(ValueError, match="keypoint_set"):
        viz.draw_keypoint_set("posetrack")


def test_draw_errors_joins_truth_and_prediction_for_labelled_joints():
    gt = np.array([[10.0, 10.0], [20.0, 20.0], [30.0, 30.0]])
    pred = gt + [[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]]
    ax = viz.draw_errors(pred, gt, [2, 1, 0], color="red")
    segments = [np.column_stack([line.get_xdata(), line.get_ydata()]) for line in ax.lines]
    assert len(segments) == 2
    np.testing.assert_array_equal(segments[0], [gt[0], pred[0]])
    np.testing.assert_array_equal(segments[1], [gt[1], pred[1]])
    assert ax.yaxis_inverted()
    with pytest.raises(ValueError, match="same shape"):
        viz.draw_errors(pred[:2], gt)
    with pytest.raises(ValueError, match="one flag per joint"):
        viz.draw_errors(pred, gt, [2, 2])
