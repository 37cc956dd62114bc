"""The synthetic people, their COCO files, the COCO keypoint reader and the astronaut fixture."""

import copy
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from course_lib import data, synthetic
from course_lib.keypoints import COCO_KEYPOINTS, COCO_PCP_LIMBS, coco_category

REPO = Path(__file__).resolve().parents[1]
# pycocotools' mask.decode trips a NumPy 2 deprecation warning inside pycocotools itself.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
SINGLE = {"images": 40, "size": (96, 96), "persons": (1, 1), "seed": 7}
MULTI = {"images": 10, "size": (160, 160), "persons": (2, 4), "seed": 8}


@pytest.fixture(scope="module")
def single_set(tmp_path_factory) -> Path:
    return data.make_synthetic(tmp_path_factory.mktemp("single"), **SINGLE)


@pytest.fixture(scope="module")
def multi_set(tmp_path_factory) -> Path:
    return data.make_synthetic(tmp_path_factory.mktemp("multi"), **MULTI)


def _hashes(folder: Path) -> dict:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*")) if path.is_file()
    }


# --------------------------------------------------------------------------- determinism
def test_same_arguments_give_byte_identical_files_and_another_seed_differs(tmp_path):
    spec = {"images": 5, "size": (64, 80), "persons": (1, 2)}
    first = _hashes(data.make_synthetic(tmp_path / "a", seed=3, **spec).parent)
    second = _hashes(data.make_synthetic(tmp_path / "b", seed=3, **spec).parent)
    other = _hashes(data.make_synthetic(tmp_path / "c", seed=4, **spec).parent)
    assert len(first) == 6  # 5 images and the annotations
    assert first == second
    assert set(other) == set(first)
    assert all(other[name] != first[name] for name in first)


def test_any_image_can_be_regenerated_alone(single_set):
    coco = json.loads(single_set.read_text())
    for image in coco["images"][::13]:
        index = image["id"] - 1
        expected, people = data.synthetic_scene(SINGLE["seed"], index, SINGLE["size"], SINGLE["persons"])
        written = cv2.cvtColor(cv2.imread(str(single_set.parent / "images" / image["file_name"])), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(written, expected)  # PNG is lossless
        annotations = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        assert [a["keypoints"][2::3] for a in annotations] == [p["visibility"].tolist() for p in people]


# --------------------------------------------------------------------------- COCO validity
def test_pycocotools_loads_the_file_and_scores_ground_truth_as_perfect(multi_set, capsys):
    gt = COCO(str(multi_set))
    assert gt.getCatIds() == [1]
    assert len(gt.getImgIds()) == MULTI["images"]
    annotations = gt.loadAnns(gt.getAnnIds())
    results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0} for a in annotations]
    evaluation = COCOeval(gt, gt.loadRes(results), "keypoints")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)  # AP: the ground truth matches itself


def test_file_layout_and_category(single_set):
    coco = json.loads(single_set.read_text())
    assert single_set.name == "annotations.json"
    assert [image["file_name"] for image in coco["images"]] == [f"{i:06d}.png" for i in range(1, SINGLE["images"] + 1)]
    assert all((single_set.parent / "images" / image["file_name"]).is_file() for image in coco["images"])
    assert all((image["height"], image["width"]) == SINGLE["size"] for image in coco["images"])
    category = coco["categories"][0]
    assert {k: v for k, v in category.items() if k != "pcp_limbs"} == coco_category()
    assert category["pcp_limbs"] == {name: [a + 1, b + 1] for name, (a, b) in COCO_PCP_LIMBS.items()}
    assert coco["info"]["synthetic"] == {"images": 40, "size": [96, 96], "persons": [1, 1], "seed": 7, "side_tints": True}
    ids = [a["id"] for a in coco["annotations"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("which", ["single", "multi"])
def test_every_annotation_is_consistent(which, single_set, multi_set):
    path = single_set if which == "single" else multi_set
    coco = json.loads(path.read_text())
    height, width = (SINGLE if which == "single" else MULTI)["size"]
    for annotation in coco["annotations"]:
        values = np.asarray(annotation["keypoints"], dtype=float).reshape(17, 3)
        xy, v = values[:, :2], values[:, 2]
        assert annotation["category_id"] == 1 and annotation["iscrowd"] == 0
        assert annotation["num_keypoints"] == np.count_nonzero(v > 0)
        assert set(v.tolist()) <= {0, 1, 2}
        assert np.all(xy[v == 0] == 0)
        # Labelled keypoints lie in the image (pixel centres at integers: x in [-0.5, W - 0.5)).
        labelled = xy[v > 0]
        assert np.all((labelled >= -0.5) & (labelled < [width - 0.5, height - 0.5]))

        # The segmentation, decoded by pycocotools, is the visible silhouette that bbox and area describe.
        mask = mask_utils.decode(annotation["segmentation"]).astype(bool)
        assert mask.shape == (height, width)
        assert annotation["area"] == mask.sum() == mask_utils.area(annotation["segmentation"])
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        x, y, w, h = annotation["bbox"]
        assert [x, y, w, h] == [cols[0] - 0.5, rows[0] - 0.5, cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1]
        assert 0 < annotation["area"] <= w * h

        # Visible keypoints are on the visible silhouette, hence inside the box.
        visible = xy[v == 2]
        assert np.all((visible >= [x, y]) & (visible <= [x + w, y + h]))
        pixels = np.floor(visible + 0.5).astype(int)
        assert mask[pixels[:, 1], pixels[:, 0]].all()

        # The head box: a square around the labelled face keypoints.
        hx, hy, hw, hh = annotation["head_box"]
        assert hw == hh > 0
        face = xy[:5][v[:5] > 0]
        assert np.all((face >= [hx, hy]) & (face <= [hx + hw, hy + hh]))


def test_visibility_semantics_hidden_and_cut_keypoints_occur(single_set):
    coco = json.loads(single_set.read_text())
    hidden_elsewhere = 0  # v=1 keypoints whose pixel shows something other than the person
    cut = 0
    for annotation in coco["annotations"]:
        values = np.asarray(annotation["keypoints"], dtype=float).reshape(17, 3)
        v = values[:, 2]
        cut += np.any(v == 0)
        mask = mask_utils.decode(annotation["segmentation"]).astype(bool)
        pixels = np.floor(values[v == 1, :2] + 0.5).astype(int)
        hidden_elsewhere += int((~mask[pixels[:, 1], pixels[:, 0]]).sum())
        assert annotation["num_keypoints"] >= 8  # a single person is never mostly gone
    assert hidden_elsewhere >= 10, "occluders should hide some labelled keypoints (v=1)"
    assert cut >= 2, "some people should be cut by the border (v=0)"


def test_multi_person_scenes_have_the_requested_counts(multi_set):
    coco = json.loads(multi_set.read_text())
    counts = [sum(a["image_id"] == image["id"] for a in coco["annotations"]) for image in coco["images"]]
    assert all(MULTI["persons"][0] <= c <= MULTI["persons"][1] for c in counts)
    assert len(set(counts)) > 1
    heights = [a["bbox"][3] for a in coco["annotations"]]
    assert max(heights) > 2.5 * min(heights), "people should come at different scales"
    overlapping = 0
    for image in coco["images"]:
        masks = [mask_utils.decode(a["segmentation"]) for a in coco["annotations"] if a["image_id"] == image["id"]]
        boxes = [a["bbox"] for a in coco["annotations"] if a["image_id"] == image["id"]]
        overlapping += any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
        assert np.max(np.sum(masks, axis=0)) <= 1, "visible silhouettes never share a pixel"
    assert overlapping >= 2


def _overlap(a, b) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _limb_colour_difference(side_tints: bool) -> tuple[float, float]:
    """Mean (red - blue) sampled along the middle of visible left limbs and of visible right limbs."""
    sums = {"left": [], "right": []}
    for index in range(30):
        image, people = data.synthetic_scene(11, index, (96, 96), (1, 1), side_tints)
        for person in people:
            xy, v = person["keypoints"], person["visibility"]
            for name, (a, b) in COCO_PCP_LIMBS.items():
                if "torso" in name or v[a] != 2 or v[b] != 2 or np.linalg.norm(xy[a] - xy[b]) < 4:
                    continue
                points = xy[a] + np.linspace(0.3, 0.7, 5)[:, None] * (xy[b] - xy[a])
                pixels = np.floor(points + 0.5).astype(int)
                colour = image[pixels[:, 1], pixels[:, 0]].astype(float)
                sums[name.split("_")[0]].append(np.mean(colour[:, 0] - colour[:, 2]))
    return float(np.mean(sums["left"])), float(np.mean(sums["right"]))


def test_side_tints_change_colours_only():
    tinted, people = data.synthetic_scene(3, 2, (64, 64), (2, 3), side_tints=True)
    plain, plain_people = data.synthetic_scene(3, 2, (64, 64), (2, 3), side_tints=False)
    assert not np.array_equal(tinted, plain)
    for a, b in zip(people, plain_people, strict=True):
        np.testing.assert_array_equal(a["keypoints"], b["keypoints"])
        np.testing.assert_array_equal(a["mask"], b["mask"])


def test_left_and_right_limbs_differ_in_colour_only_with_side_tints():
    left, right = _limb_colour_difference(side_tints=True)
    assert left > 100 and right < -100, "left limbs carry the orange tint, right limbs the blue"
    left, right = _limb_colour_difference(side_tints=False)
    assert abs(left - right) < 60


def test_left_right_tints_are_orange_and_blue():
    assert synthetic.LEFT_TINT[0] > synthetic.LEFT_TINT[2] and synthetic.RIGHT_TINT[2] > synthetic.RIGHT_TINT[0]


# --------------------------------------------------------------------------- kinematics and visibility rule
def _still_pose(**changes) -> synthetic.Pose:
    zero = (0.0, 0.0)
    fields = dict(kind="standing", yaw=0.0, torso_lean=0.0, torso_side=0.0, head_yaw=0.0, head_pitch=0.0, head_roll=0.0,
                  shoulder_flexion=zero, shoulder_abduction=zero, arm_rotation=zero, elbow=zero, hip_flexion=zero,
                  hip_abduction=zero, knee=zero, ankle=zero)
    fields.update(changes)
    return synthetic.Pose(**fields)


def test_forward_kinematics_follows_the_proportions():
    body = synthetic.BodyProportions()
    points, _ = synthetic.skeleton_3d(_still_pose(), body)
    # Arms and legs hang straight down from shoulders and hips.
    np.testing.assert_allclose(points["left_shoulder"][0] - points["right_shoulder"][0], body.shoulder_width)
    np.testing.assert_allclose(points["left_hip"], [body.hip_width / 2, 0, 0])
    np.testing.assert_allclose(points["left_wrist"] - points["left_shoulder"], [0, -(body.upper_arm + body.forearm), 0], atol=1e-12)
    np.testing.assert_allclose(points["right_ankle"] - points["right_hip"], [0, -(body.thigh + body.shank), 0], atol=1e-12)
    assert points["nose"][1] > points["left_shoulder"][1] > points["left_hip"][1] > points["left_knee"][1]


def test_elbows_bend_forward_and_knees_backward():
    body = synthetic.BodyProportions()
    points, _ = synthetic.skeleton_3d(_still_pose(elbow=(90.0, 90.0), knee=(90.0, 90.0)), body)
    for side in ("left", "right"):
        np.testing.assert_allclose(points[f"{side}_wrist"] - points[f"{side}_elbow"], [0, 0, body.forearm], atol=1e-12)
        np.testing.assert_allclose(points[f"{side}_ankle"] - points[f"{side}_knee"], [0, 0, -body.shank], atol=1e-12)


def test_abduction_raises_each_arm_outward():
    points, _ = synthetic.skeleton_3d(_still_pose(shoulder_abduction=(90.0, 90.0)))
    assert points["left_elbow"][0] > points["left_shoulder"][0] > 0 > points["right_shoulder"][0] > points["right_elbow"][0]
    np.testing.assert_allclose(points["left_elbow"][1], points["left_shoulder"][1])


def test_projection_puts_the_persons_left_on_the_image_right_when_facing_the_camera():
    points, _ = synthetic.skeleton_3d(_still_pose())
    front, near = synthetic.project_points(points, yaw=0.0, roll=0.0)
    back, _ = synthetic.project_points(points, yaw=180.0, roll=0.0)
    assert front["left_shoulder"][0] > front["right_shoulder"][0]
    assert back["left_shoulder"][0] < back["right_shoulder"][0]
    assert front["nose"][1] < front["left_hip"][1]  # image y points down
    assert near["nose"] > near["head"]  # the face is toward the camera
    side, near = synthetic.project_points(points, yaw=90.0, roll=0.0)  # turned to face the image right
    assert near["left_shoulder"] < near["right_shoulder"]
    upside_down, _ = synthetic.project_points(points, yaw=0.0, roll=180.0)
    np.testing.assert_allclose(upside_down["left_ankle"], -front["left_ankle"], atol=1e-12)


def test_visibility_rule_on_a_hand_built_scene():
    """v=0 outside the image, v=2 on one's own part, v=1 under an occluder, another part, or behind the torso."""
    canvas = synthetic._Canvas(20, 30)
    base = 1
    part = {name: base + i for i, name in enumerate(synthetic.PARTS)}
    canvas.ids[:, :] = part["torso"]
    canvas.ids[5, 10] = part["left_upper_arm"]  # left shoulder's own part
    canvas.ids[6, 20] = synthetic._OCCLUDER_ID  # right shoulder under an occluder
    canvas.ids[15, 10] = part["left_forearm"]  # left knee under the arm
    xy = {name: np.array([2.0, 2.0]) for name in synthetic.FACE_POINTS}
    xy |= {"left_shoulder": np.array([10.3, 4.6]), "right_shoulder": np.array([20.0, 6.0]),
           "left_elbow": np.array([-0.7, 3.0]), "right_elbow": np.array([29.6, 3.0]),
           "left_knee": np.array([9.8, 15.2]), "right_knee": np.array([12.0, 19.49]),
           "left_hip": np.array([3.0, 10.0]), "right_hip": np.array([4.0, 12.0])}
    for name in COCO_KEYPOINTS:
        xy.setdefault(name, np.array([1.0, 1.0]))
    body = synthetic.BodyProportions()
    # Both hips show the torso: the near one (level with the pelvis) is seen, the far one is behind the body.
    near = {"neck": 0.0, "pelvis": 0.0, "left_hip": 0.0, "right_hip": -0.9 * body.hip_width / 2}
    person = synthetic._Person(_still_pose(), body, xy, near, 100.0, np.eye(3), 1.0)
    keypoints, visibility = synthetic._keypoint_visibility(canvas, person, base)
    flags = dict(zip(COCO_KEYPOINTS, visibility.tolist()))
    assert flags["left_shoulder"] == 2
    assert flags["right_shoulder"] == 1
    assert flags["left_elbow"] == 0 and flags["right_elbow"] == 0  # x = -0.7 and x = 29.6 fall outside [-0.5, 29.5)
    assert flags["left_knee"] == 1
    assert flags["right_knee"] == 1  # y = 19.49 rounds into the last row: inside, on the torso
    assert flags["nose"] == 1  # the face's pixel shows the torso
    assert flags["left_hip"] == 2 and flags["right_hip"] == 1
    np.testing.assert_array_equal(keypoints[COCO_KEYPOINTS.index("left_elbow")], [0, 0])


# --------------------------------------------------------------------------- argument checks
@pytest.mark.parametrize(
    "changes, argument",
    [
        ({"images": 0}, "images"), ({"images": -3}, "images"), ({"images": 2.5}, "images"), ({"images": True}, "images"),
        ({"images": "3"}, "images"), ({"size": (16, 128)}, "size"), ({"size": (128,)}, "size"), ({"size": 128}, "size"),
        ({"size": (128.0, 128)}, "size"), ({"persons": (0, 1)}, "persons"), ({"persons": (3, 2)}, "persons"),
        ({"persons": (1, 51)}, "persons"), ({"persons": (1.5, 2)}, "persons"), ({"seed": -1}, "seed"), ({"seed": 0.5}, "seed"),
        ({"side_tints": "yes"}, "side_tints"),
    ],
)
def test_generator_rejects_impossible_arguments_naming_them(tmp_path, changes, argument):
    arguments = {"images": 2, "size": (64, 64), "persons": (1, 1), "seed": 0} | changes
    with pytest.raises((TypeError, ValueError), match=argument):
        data.make_synthetic(tmp_path / "out", **arguments)
    assert not (tmp_path / "out" / "annotations.json").exists()


def test_generator_refuses_an_existing_file_as_out_dir(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    with pytest.raises(ValueError, match="out_dir"):
        data.make_synthetic(target, 1, (64, 64))
    assert target.read_text() == "keep me"


# --------------------------------------------------------------------------- the command line
def test_command_line_end_to_end(tmp_path):
    out = tmp_path / "cli"
    command = [sys.executable, str(REPO / "data_scripts" / "make_synthetic.py"), "--out", str(out), "--images", "3",
               "--size", "64", "72", "--persons", "1", "2", "--seed", "5"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "images/s" in done.stdout
    reference = data.make_synthetic(tmp_path / "api", 3, (64, 72), (1, 2), 5)
    assert _hashes(out) == _hashes(reference.parent)


def test_command_line_reports_bad_arguments(tmp_path, capsys):
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("make_synthetic_cli", REPO / "data_scripts" / "make_synthetic.py")
    cli = module_from_spec(spec)
    spec.loader.exec_module(cli)
    for argv, argument in [(["--images", "0"], "images"), (["--images", "2", "--persons", "3", "1"], "persons"),
                           (["--images", "x"], "--images"), (["--images", "2", "--size", "8", "8"], "size")]:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["--out", str(tmp_path / "bad"), *argv])
        assert exit_info.value.code == 2
        assert argument in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--images", "2"])  # no --out
    assert "--out" in capsys.readouterr().err


# --------------------------------------------------------------------------- default data
def test_ensure_default_data_makes_missing_splits_and_skips_complete_ones(tmp_path, capsys):
    splits = {
        "tiny/train": {"images": 3, "size": (48, 48), "persons": (1, 1), "seed": 1},
        "tiny/scenes": {"images": 2, "size": (64, 64), "persons": (2, 3), "seed": 2},
    }
    root = data.ensure_default_data(tmp_path / "synthetic", splits, verbose=True)
    assert root == tmp_path / "synthetic"
    assert (root / ".complete").is_file()
    assert "images/s" in capsys.readouterr().out
    for name, spec in splits.items():
        assert data.split_is_complete(root / name, spec)
        assert len(json.loads((root / name / "annotations.json").read_text())["images"]) == spec["images"]

    stamp = (root / "tiny/train/annotations.json").stat().st_mtime_ns
    data.ensure_default_data(root, splits)
    assert (root / "tiny/train/annotations.json").stat().st_mtime_ns == stamp  # complete: not made again

    (root / "tiny/scenes/images/000002.png").unlink()  # an interrupted or damaged split
    assert not data.split_is_complete(root / "tiny/scenes", splits["tiny/scenes"])
    data.ensure_default_data(root, splits)
    assert data.split_is_complete(root / "tiny/scenes", splits["tiny/scenes"])

    changed = copy.deepcopy(splits)
    changed["tiny/train"]["images"] = 4  # new arguments make the old split incomplete
    assert not data.split_is_complete(root / "tiny/train", changed["tiny/train"])
    data.ensure_default_data(root, changed)
    assert len(json.loads((root / "tiny/train/annotations.json").read_text())["images"]) == 4


def test_default_splits_are_well_formed():
    assert set(data.DEFAULT_SPLITS) == {"single/train", "single/val", "multi/train", "multi/val"}
    seeds = [spec["seed"] for spec in data.DEFAULT_SPLITS.values()]
    assert len(set(seeds)) == len(seeds)
    assert data.DEFAULT_SPLITS["single/train"]["persons"] == (1, 1)
    assert data.DEFAULT_SPLITS["multi/train"]["persons"][1] > 1
    assert data.default_split_dir("single/val") == data.DATA_ROOT / "synthetic" / "single" / "val"
    with pytest.raises(ValueError, match="name"):
        data.default_split_dir("nonsense")


# --------------------------------------------------------------------------- the reader
def test_coco_keypoints_items(single_set):
    coco = json.loads(single_set.read_text())
    dataset = data.CocoKeypoints(single_set)
    assert len(dataset) == len(coco["annotations"])
    assert dataset.image_dir == single_set.parent / "images"
    assert dataset.keypoint_names == list(COCO_KEYPOINTS)
    assert dataset.image_ids == [image["id"] for image in coco["images"]]
    item = dataset[3]
    annotation = coco["annotations"][3]
    assert item["image"].dtype == np.uint8 and item["image"].shape == (96, 96, 3)
    assert item["keypoints"].dtype == np.float32 and item["keypoints"].shape == (17, 2)
    assert item["visibility"].dtype == np.int64 and item["visibility"].shape == (17,)
    assert item["box"].dtype == np.float32 and item["box"].shape == (4,)
    assert item["head_box"].dtype == np.float32 and item["head_box"].shape == (4,)
    assert isinstance(item["area"], float) and item["area"] == annotation["area"]
    assert (item["image_id"], item["annotation_id"]) == (annotation["image_id"], annotation["id"])
    np.testing.assert_allclose(item["keypoints"], np.reshape(annotation["keypoints"], (17, 3))[:, :2], atol=1e-4)
    # RGB order: the same pixels synthetic_scene drew (OpenCV reads BGR).
    expected, _ = data.synthetic_scene(SINGLE["seed"], item["image_id"] - 1, SINGLE["size"], SINGLE["persons"])
    np.testing.assert_array_equal(item["image"], expected)


def test_coco_keypoints_per_image_access_and_loader(multi_set):
    dataset = data.CocoKeypoints(multi_set, cache_images=True)
    image_id = dataset.image_ids[2]
    raw = dataset.annotations_for(image_id)
    assert raw and all(a["image_id"] == image_id for a in raw)
    image = dataset.load_image(image_id)
    image[:] = 0  # a copy: the cache stays intact
    assert dataset.load_image(image_id).any()
    assert [dataset[i]["annotation_id"] for i in range(len(dataset)) if dataset[i]["image_id"] == image_id] == [a["id"] for a in raw]
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
    assert batch["image"].shape == (4, 160, 160, 3) and batch["keypoints"].shape == (4, 17, 2)
    assert batch["visibility"].dtype == torch.int64


def test_coco_keypoints_filters_and_transform(multi_set):
    coco = json.loads(multi_set.read_text())
    coco["annotations"][0]["iscrowd"] = 1
    many = 10
    enough = [a for a in coco["annotations"][1:] if a["num_keypoints"] >= many]
    dataset = data.CocoKeypoints(coco, image_dir=multi_set.parent / "images", min_keypoints=many)
    assert [dataset[i]["annotation_id"] for i in range(len(dataset))] == [a["id"] for a in enough]
    with_crowd = data.CocoKeypoints(coco, image_dir=multi_set.parent / "images", min_keypoints=0, include_crowd=True)
    assert len(with_crowd) == len(coco["annotations"])
    flipped = data.CocoKeypoints(coco, multi_set.parent / "images", transform=lambda item: item["image"][:, ::-1])
    np.testing.assert_array_equal(flipped[0], with_crowd[1]["image"][:, ::-1])
    without_folder = data.CocoKeypoints(coco)
    with pytest.raises(ValueError, match="image_dir"):
        without_folder[0]
    with pytest.raises(ValueError, match="min_keypoints"):
        data.CocoKeypoints(coco, min_keypoints=-1)


def _minimal_coco() -> dict:
    keypoints = []
    for i in range(17):
        keypoints += [10.0 + i, 20.0, 2]
    return {
        "images": [{"id": 1, "file_name": "a.png", "height": 64, "width": 64}],
        "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "keypoints": keypoints, "bbox": [5, 5, 30, 30],
                         "area": 300.0, "iscrowd": 0, "num_keypoints": 17}],
        "categories": [coco_category()],
    }


def _broken(change) -> dict:
    coco = _minimal_coco()
    change(coco["annotations"][0])
    return coco


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda a: a.update(keypoints=a["keypoints"][:-3]), "keypoints has 48 values, expected 3 \\* 17 = 51"),
        (lambda a: a.pop("image_id"), "missing field 'image_id'"),
        (lambda a: a.pop("keypoints"), "missing field 'keypoints'"),
        (lambda a: a.pop("bbox"), "missing field 'bbox'"),
        (lambda a: a["keypoints"].__setitem__(4, "a"), "non-numeric"),
        (lambda a: a["keypoints"].__setitem__(4, None), "non-numeric"),
        (lambda a: a["keypoints"].__setitem__(0, float("nan")), "NaN"),
        (lambda a: a["bbox"].__setitem__(1, "5"), "non-numeric"),
        (lambda a: a.update(bbox=[5, 5, -1, 30]), "negative size"),
        (lambda a: a.update(bbox=[5, 5, 30]), "bbox must be"),
        (lambda a: a["keypoints"].__setitem__(2, 3), "visibility flags"),
        (lambda a: a.update(image_id=99), "image_id 99 is not in 'images'"),
        (lambda a: a.update(area="big"), "area"),
    ],
)
def test_reader_rejects_malformed_annotations_naming_the_id(change, problem):
    with pytest.raises(ValueError, match=f"annotation 7: .*{problem}"):
        data.load_coco_keypoints(_broken(change))


def test_reader_rejects_malformed_files(tmp_path):
    with pytest.raises(ValueError, match="index 0 .*missing field 'id'"):
        data.load_coco_keypoints(_broken(lambda a: a.pop("id")))
    coco = _minimal_coco()
    coco["annotations"].append(copy.deepcopy(coco["annotations"][0]))
    with pytest.raises(ValueError, match="annotation 7: duplicate"):
        data.load_coco_keypoints(coco)
    with pytest.raises(ValueError, match="'images'"):
        data.load_coco_keypoints({"annotations": [], "categories": []})
    with pytest.raises(ValueError, match="categories"):
        data.load_coco_keypoints({"images": [], "annotations": [], "categories": [{"id": 1}]})
    with pytest.raises(FileNotFoundError):
        data.load_coco_keypoints(tmp_path / "missing.json")
    with pytest.raises(TypeError, match="path_or_dict"):
        data.load_coco_keypoints(42)


def test_reader_accepts_any_number_of_keypoints():
    coco = _minimal_coco()
    coco["categories"][0]["keypoints"] = ["a", "b", "c"]
    coco["annotations"][0]["keypoints"] = [1, 2, 2, 3, 4, 1, 0, 0, 0]
    dataset = data.CocoKeypoints(coco)  # no image folder: the images are not needed here
    assert dataset.keypoint_names == ["a", "b", "c"]
    assert len(dataset) == 1
    assert data.load_coco_keypoints(_minimal_coco())["annotations"][0]["id"] == 7


# --------------------------------------------------------------------------- the astronaut
def test_astronaut_annotation():
    item = data.astronaut()
    assert item["image"].shape == (512, 512, 3) and item["image"].dtype == np.uint8
    xy, v = item["keypoints"], item["visibility"]
    assert xy.shape == (17, 2) and v.dtype == np.int64
    assert {0, 1, 2} <= set(v.tolist())
    index = {name: i for i, name in enumerate(COCO_KEYPOINTS)}
    # She faces the camera: her left is on the right of the image; eyes above the nose, shoulders below.
    for part in ("eye", "ear", "shoulder"):
        assert xy[index[f"left_{part}"], 0] > xy[index["nose"], 0] > xy[index[f"right_{part}"], 0]
    assert xy[index["left_eye"], 1] < xy[index["nose"], 1] < xy[index["left_shoulder"], 1]
    assert all(v[index[f"{side}_{part}"]] == 0 for side in ("left", "right") for part in ("hip", "knee", "ankle"))
    x, y, w, h = item["box"]
    labelled = xy[v > 0]
    assert np.all((labelled >= [x, y]) & (labelled <= [x + w, y + h]))
    hx, hy, hw, hh = item["head_box"]
    assert np.all((xy[:5] >= [hx, hy]) & (xy[:5] <= [hx + hw, hy + hh]))
    assert 0 < item["area"] < w * h


def test_astronaut_fixture_is_valid_coco():
    gt = COCO(str(data.ASTRONAUT_ANNOTATIONS))
    annotation = gt.loadAnns(gt.getAnnIds())[0]
    assert annotation["num_keypoints"] == np.count_nonzero(np.asarray(annotation["keypoints"][2::3]) > 0)
    assert annotation["area"] == pytest.approx(float(mask_utils.area(gt.annToRLE(annotation))))


# --------------------------------------------------------------------------- image <-> tensor
def test_image_tensor_round_trip():
    image = np.random.default_rng(0).integers(0, 256, (2, 8, 6, 3), dtype=np.uint8)
    tensor = data.image_to_tensor(image)
    assert tensor.shape == (2, 3, 8, 6)
    np.testing.assert_array_equal(data.tensor_to_image(tensor), image)


# --------------------------------------------------------------------------- bad input is named where it is
@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda c: c["annotations"][0].update(iscrowd="0"), r"annotation 7: iscrowd must be 0 or 1, got '0'"),
        (lambda c: c["annotations"][0].update(id="7"), r"annotation at index 0: id must be an integer, got '7'"),
        (lambda c: c["annotations"][0].update(image_id="1"), r"annotation 7: image_id must be an integer, got '1'"),
        (lambda c: c["images"][0].update(id="1"), r"image at index 0: id must be an integer, got '1'"),
        (lambda c: c["images"][0].pop("file_name"), r"image 1: missing field 'file_name'"),
    ],
)
def test_reader_rejects_ids_crowd_flags_and_file_names_it_cannot_use(change, problem):
    coco = _minimal_coco()
    change(coco)
    with pytest.raises(ValueError, match=problem):
        data.load_coco_keypoints(coco)


def test_reader_names_a_file_that_is_not_json(tmp_path):
    path = tmp_path / "annotations.json"
    path.write_text("images: [] # YAML, not JSON")
    with pytest.raises(ValueError, match=f"{path} is not a COCO keypoint file: it is not valid JSON"):
        data.CocoKeypoints(path)


def test_missing_image_files_are_found_when_the_data_set_is_made(tmp_path):
    coco = _minimal_coco()
    (tmp_path / "images").mkdir()
    with pytest.raises(FileNotFoundError, match=r"1 of the 1 image files are missing .*image 1: .*a\.png"):
        data.CocoKeypoints(coco, image_dir=tmp_path / "images")
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.zeros((64, 64, 3), np.uint8))
    assert data.CocoKeypoints(coco, image_dir=tmp_path / "images")[0]["image"].shape == (64, 64, 3)


# --------------------------------------------------------------------------- the writer leaves nothing half-done
def _partial_folders(folder: Path) -> list[Path]:
    return [path for path in folder.iterdir() if path.name.endswith(".partial")]


def test_impossible_sizes_are_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match=r"size must be a pair \(H, W\) of integers from 32 to 4096"):
        data.make_synthetic(tmp_path / "huge", 1, (100000, 100000))
    with pytest.raises(ValueError, match=r"persons must be a pair \(min, max\) of integers from 1 to 10, got \(50, 50\)"):
        data.make_synthetic(tmp_path / "crowd", 1, (32, 32), (50, 50))
    assert list(tmp_path.iterdir()) == []


def test_a_failed_run_leaves_no_folder_behind(tmp_path, monkeypatch):
    def broken(seed, index, *args):
        if index == 2:
            raise RuntimeError("disk full")
        return original(seed, index, *args)

    original = synthetic.synthetic_scene
    monkeypatch.setattr(synthetic, "synthetic_scene", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        data.make_synthetic(tmp_path / "out", 4, (64, 64))
    assert list(tmp_path.iterdir()) == []


def test_writing_over_an_earlier_set_leaves_no_stale_image(tmp_path):
    data.make_synthetic(tmp_path / "set", 5, (64, 64), seed=1)
    (tmp_path / "set" / "notes.txt").write_text("mine")
    path = data.make_synthetic(tmp_path / "set", 2, (64, 64), seed=2)
    assert sorted(p.name for p in (tmp_path / "set" / "images").iterdir()) == ["000001.png", "000002.png"]
    assert len(json.loads(path.read_text())["images"]) == 2 and (tmp_path / "set" / "notes.txt").exists()
    assert _partial_folders(tmp_path) == []
    assert _hashes(tmp_path / "set" / "images") == _hashes(data.make_synthetic(tmp_path / "fresh", 2, (64, 64), seed=2)
                                                          .parent / "images")


def test_crowded_scenes_never_write_a_person_without_a_visible_pixel():
    image, people = synthetic.synthetic_scene(0, 9, (32, 32), (10, 10))  # one person ends up hidden entirely
    assert all(person["area"] > 0 and person["bbox"][2] > 0 and person["bbox"][3] > 0 for person in people)
    assert 1 <= len(people) <= 10
