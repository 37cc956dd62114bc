"""The top-down multi-person pipeline: scenes, detections, crops back to the image, scoring, OKS-NMS, COCO."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from course_lib import geometry, metrics
from course_lib import multi_person as mp
from course_lib.data import make_synthetic
from course_lib.models.detector import PersonDetector, train_detector

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def scene_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multi")
    make_synthetic(folder, images=4, size=(128, 128), persons=(2, 3), seed=5)
    return folder


@pytest.fixture(scope="module")
def scenes(scene_folder):
    return mp.load_scenes(scene_folder)


class CentrePeaks(nn.Module):
    """A 'pose network' whose K heatmaps all peak at the centre of the heatmap (a Gaussian)."""

    input_size, stride, num_keypoints = (64, 48), 4, 17

    def forward(self, images):
        h, w = self.input_size[0] // self.stride, self.input_size[1] // self.stride
        v, u = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
        peak = torch.exp(-((u - w / 2) ** 2 + (v - h / 2) ** 2) / (2 * 2.0**2))  # (h, w)
        return peak.expand(images.shape[0], self.num_keypoints, h, w).clone()


class FixedDetector(nn.Module):
    """A 'detector' whose outputs put given boxes at their centre cells (stride 4)."""

    stride = 4

    def __init__(self, boxes_per_image, size):
        super().__init__()
        self.outputs = []
        h, w = size[0] // 4, size[1] // 4
        for boxes in boxes_per_image:
            heat = torch.full((1, h, w), -10.0)
            box_size = torch.zeros(2, h, w)
            offset = torch.zeros(2, h, w)
            for x, y, bw, bh in boxes:
                cx, cy = (x + bw / 2) / 4, (y + bh / 2) / 4
                u, v = int(cx), int(cy)
                heat[0, v, u] = 5.0
                box_size[:, v, u] = torch.tensor([bw / 4, bh / 4])
                offset[:, v, u] = torch.tensor([cx - u, cy - v])
            self.outputs.append((heat, box_size, offset))
        self.calls = 0

    def forward(self, images):
        batch = self.outputs[self.calls:self.calls + len(images)]
        self.calls += len(images)
        return {"heatmap": torch.stack([b[0] for b in batch]), "size": torch.stack([b[1] for b in batch]),
                "offset": torch.stack([b[2] for b in batch])}


def test_load_scenes_reads_images_boxes_and_cuts_the_ground_truth(scenes, scene_folder):
    assert scenes.images.shape == (4, 128, 128, 3) and scenes.images.dtype == np.uint8
    assert len(scenes.boxes) == 4 and all(b.shape[1] == 4 for b in scenes.boxes)
    assert sum(len(b) for b in scenes.boxes) == len(scenes.ground_truth["annotations"])
    assert scenes.tensors().shape == (4, 3, 128, 128)
    keypoints, visibility = scenes.people(0)
    assert keypoints.shape == (len(scenes.boxes[0]), 17, 2) and visibility.shape == keypoints.shape[:2]
    two = mp.load_scenes(scene_folder, limit=2)
    assert len(two) == 2 and {a["image_id"] for a in two.ground_truth["annotations"]} <= {1, 2}
    with pytest.raises(ValueError, match="limit"):
        mp.load_scenes(scene_folder, limit=0)


def test_estimate_poses_maps_crop_centres_back_to_box_centres(scenes):
    detections = mp.ground_truth_detections(scenes)
    poses = mp.estimate_poses(CentrePeaks(), scenes, detections, decoder="argmax", device="cpu")
    boxes = np.concatenate(scenes.boxes)
    assert len(poses) == len(boxes)
    centres = boxes[:, :2] + boxes[:, 2:] / 2
    assert np.allclose(poses.keypoints, centres[:, None, :], atol=1e-3)
    assert np.allclose(poses.box_scores, 1.0)
    _, scale = geometry.box_to_center_scale(boxes, 48 / 64)
    assert np.allclose(poses.areas, scale[:, 0] * scale[:, 1])
    assert poses.image_ids.tolist() == [int(i) for i, b in zip(scenes.image_ids, scenes.boxes) for _ in b]


def test_no_detections_give_no_poses(scenes):
    empty = [(np.zeros((0, 4)), np.zeros(0)) for _ in range(len(scenes))]
    poses = mp.estimate_poses(CentrePeaks(), scenes, empty, device="cpu")
    assert len(poses) == 0 and poses.keypoints.shape == (0, 17, 2)


def test_perfect_poses_score_ap_one_and_oks_nms_removes_duplicates(scenes):
    keypoints, image_ids = [], []
    for n in range(len(scenes)):
        points, _ = scenes.people(n)
        keypoints.append(points)
        image_ids += [int(scenes.image_ids[n])] * len(points)
    keypoints = np.concatenate(keypoints)
    count = len(keypoints)
    boxes = np.concatenate(scenes.boxes)
    poses = mp.Poses(keypoints, np.ones((count, 17)), np.linspace(1, 0.5, count), boxes,
                     boxes[:, 2] * boxes[:, 3] * 1.5, np.array(image_ids))
    assert mp.evaluate_poses(poses, scenes.ground_truth)["AP"] == pytest.approx(1.0)
    # add a slightly moved copy of every pose, scored just below it: OKS-NMS must remove each copy
    copies = mp.Poses(keypoints + 0.3, np.ones((count, 17)), poses.box_scores - 0.01, boxes, poses.areas,
                      np.array(image_ids))
    both = mp.Poses(*(np.concatenate([getattr(poses, f), getattr(copies, f)])
                      for f in ("keypoints", "keypoint_scores", "box_scores", "boxes", "areas", "image_ids")))
    kept = mp.pose_nms(both, both.box_scores, 0.9)
    assert sorted(kept.tolist()) == list(range(count))
    without_nms = mp.evaluate_poses(both, scenes.ground_truth, scoring="box", nms_threshold=None)
    assert without_nms["AP"] < 0.9  # each copy is a false positive ranked among the true poses
    assert mp.evaluate_poses(both, scenes.ground_truth, scoring="box")["AP"] == pytest.approx(1.0)


def test_pose_scores():
    poses = mp.Poses(np.zeros((2, 3, 2)), np.array([[0.1, 0.5, 0.9], [0.05, 0.1, 0.15]]), np.array([0.8, 0.6]),
                     np.zeros((2, 4)), np.ones(2), np.ones(2, int))
    assert mp.pose_scores(poses, "box").tolist() == [0.8, 0.6]
    assert np.allclose(mp.pose_scores(poses, "keypoints"), [0.5, 0.1])
    assert np.allclose(mp.pose_scores(poses, "box x keypoints"), [0.8 * 0.7, 0.0])
    assert np.allclose(mp.pose_scores(poses), metrics.grmi_rescore(poses.box_scores, poses.keypoint_scores))
    with pytest.raises(ValueError, match="method"):
        mp.pose_scores(poses, "iou")


def test_crop_predictions_to_coco_by_hand_and_against_the_affine_map():
    results = mp.crop_predictions_to_coco(np.array([[[8.0, 12.0], [0.0, 0.0]]]), np.array([[0.9, 0.5]]),
                                          np.array([0.8]), np.array([[100.0, 50.0]]), np.array([[32.0, 48.0]]),
                                          (24, 16), np.array([7]))
    assert results == [{"image_id": 7, "category_id": 1, "keypoints": [100.0, 50.0, 0.9, 84.0, 26.0, 0.5],
                        "score": 0.8}]
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 16, size=(3, 17, 2))
    centers, scales = rng.uniform(0, 300, size=(3, 2)), rng.uniform(30, 200, size=(3, 2))
    results = mp.crop_predictions_to_coco(points, np.ones((3, 17)), np.ones(3), centers, scales, (16, 12), [1, 2, 3])
    for p, result in enumerate(results):
        expected = geometry.crop_to_image(points[p], centers[p], scales[p], 0.0, (16, 12))
        assert np.allclose(np.reshape(result["keypoints"], (17, 3))[:, :2], expected)


def test_detect_people_decodes_boxes_and_clips_them(scenes):
    truth = [np.array([[10.0, 20.0, 40.0, 80.0], [60.0, 8.0, 36.0, 100.0]]), np.array([[100.0, 90.0, 40.0, 60.0]])]
    detector = FixedDetector(truth, (128, 128))
    detections = mp.detect_people(detector, torch.zeros(2, 3, 128, 128), batch_size=1)
    boxes, scores = detections[0]
    assert len(boxes) == 2 and np.all(scores > 0.99)
    order = np.argsort(boxes[:, 0])
    assert np.allclose(boxes[order], truth[0], atol=1e-4)
    clipped, _ = detections[1]  # the second box sticks out of the 128 x 128 image: clipped at 127.5
    assert np.allclose(clipped, [[100.0, 90.0, 27.5, 37.5]], atol=1e-4)
    # the clipped box keeps 27.5 x 37.5 of 40 x 60 pixels: IoU 0.43 < 0.5, so 2 of 3 people are found
    assert mp.detection_recall(detections, mp.Scenes(scenes.images[:2], scenes.image_ids[:2], truth, {})) == 2 / 3


def test_box_iou_by_hand():
    iou = mp.box_iou(np.array([[0.0, 0.0, 10.0, 10.0]]), np.array([[5.0, 0.0, 10.0, 10.0], [20.0, 20.0, 5.0, 5.0]]))
    assert np.allclose(iou, [[50 / 150, 0.0]])


def test_train_detector_runs_with_a_progress_bar_on_the_chosen_device(capsys):
    torch.manual_seed(0)
    detector = PersonDetector(width=4)
    images = torch.randn(3, 3, 64, 64)
    boxes = [np.array([[10.0, 10.0, 20.0, 30.0]]), np.zeros((0, 4)), np.array([[30.0, 5.0, 20.0, 40.0]])]
    losses = train_detector(detector, images, boxes, steps=2, batch_size=2, device="cpu", progress=True)
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert next(detector.parameters()).device.type == "cpu" and not detector.training
    assert "training the detector" in capsys.readouterr().err


def test_bad_input(scenes):
    with pytest.raises(ValueError, match="detections"):
        mp.crop_samples(scenes, [])
    poses = mp.Poses(np.zeros((2, 17, 2)), np.ones((2, 17)), np.ones(2), np.ones((2, 4)), np.ones(2), np.ones(2, int))
    with pytest.raises(ValueError, match="scores"):
        mp.pose_nms(poses, np.ones(3))
    with pytest.raises(ValueError, match="threshold"):
        mp.pose_nms(poses, np.ones(2), threshold=0)
    with pytest.raises(ValueError, match="images"):
        mp.detect_people(FixedDetector([], (64, 64)), torch.zeros(2, 1, 64, 64))


def test_best_oks_is_one_for_exact_poses_and_zero_without_people(scenes):
    keypoints, visibility = scenes.people(0)
    count = len(keypoints)
    image_id = int(scenes.image_ids[0])
    poses = mp.Poses(np.concatenate([keypoints, keypoints[:1] + 500.0]), np.ones((count + 1, 17)),
                     np.ones(count + 1), np.ones((count + 1, 4)), np.ones(count + 1),
                     np.array([image_id] * count + [image_id]))
    oks = mp.best_oks(poses, scenes.ground_truth)
    assert np.allclose(oks[:count], 1.0) and oks[count] < 1e-6
    nobody = poses.select(np.array([0]))
    nobody.image_ids[:] = 10**6
    assert mp.best_oks(nobody, scenes.ground_truth).tolist() == [0.0]
