"""``course_lib.inference`` and ``python -m course_lib.predict`` on scikit-image's photographs, a video and fixtures."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import skimage.data
import torch

from course_lib import geometry, inference, models, predict, weights

ASTRONAUT_BOX = [150.0, 20.0, 260.0, 490.0]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = models.build("simplebaseline_tiny")
    return weights.save_model(tmp_path_factory.mktemp("ckpt") / "sb_tiny.pt", model, "simplebaseline_tiny")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "coffee", "chelsea"):
        cv2.imwrite(str(folder / f"{name}.png"), cv2.cvtColor(getattr(skimage.data, name)(), cv2.COLOR_RGB2BGR))
    return folder


def run(*args) -> int:
    return predict.main([str(a) for a in args] + ["--quiet"])


# ============================================================================ the official pipeline, transcribed
def official_affine(center, scale, output_wh, inverse=False):
    """``get_affine_transform`` of ``lib/utils/transforms.py``: three float32 point pairs, rotation 0."""
    src_w, (dst_w, dst_h) = scale[0] * 200.0, output_wh
    src = np.zeros((3, 2), np.float32)
    dst = np.zeros((3, 2), np.float32)
    src[0], src[1] = center, center + np.array([0, src_w * -0.5])
    dst[0], dst[1] = [dst_w * 0.5, dst_h * 0.5], [dst_w * 0.5, dst_h * 0.5 - dst_w * 0.5]
    for points in (src, dst):
        direction = points[0] - points[1]
        points[2] = points[1] + np.array([-direction[1], direction[0]], np.float32)
    return cv2.getAffineTransform(dst, src) if inverse else cv2.getAffineTransform(src, dst)


def official_box_to_cs(box, aspect_ratio):
    """``_box2cs`` of ``lib/dataset/coco.py`` (pixel_std 200, padding 1.25, float32)."""
    x, y, w, h = box
    center = np.array([x + w * 0.5, y + h * 0.5], np.float32)
    if w > aspect_ratio * h:
        h = w * 1.0 / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return center, np.array([w / 200.0, h / 200.0], np.float32) * 1.25


def official_keypoints(model, image_rgb, boxes, flip_test, color="rgb"):
    """The validate() path: crop, normalise, (flip, flip_back, shift, average), get_max_preds + quarter step, transform_preds."""
    height, width = model.input_size
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    image = image_rgb[..., ::-1] if color == "bgr" else image_rgb
    out = []
    for box in boxes:
        c, s = official_box_to_cs(box, width / height)
        crop = cv2.warpAffine(np.ascontiguousarray(image), official_affine(c, s, (width, height)), (width, height),
                              flags=cv2.INTER_LINEAR)
        tensor = torch.from_numpy(((crop / 255.0 - mean) / std).transpose(2, 0, 1)).float()[None]
        with torch.no_grad():
            output = model(tensor).numpy()
            if flip_test:
                flipped = model(tensor.flip(3)).numpy()[:, :, :, ::-1].copy()
                for a, b in ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)):
                    flipped[:, [a, b]] = flipped[:, [b, a]]
                flipped[:, :, :, 1:] = flipped.copy()[:, :, :, 0:-1]
                output = (output + flipped) * 0.5
        hm = output[0]
        k, h, w = hm.shape
        flat = hm.reshape(k, -1)
        idx, maxvals = np.argmax(flat, 1), np.amax(flat, 1)
        coords = np.stack([idx % w, np.floor(idx / w)], 1).astype(np.float32) * (maxvals > 0)[:, None]
        for p in range(k):
            px, py = int(math.floor(coords[p, 0] + 0.5)), int(math.floor(coords[p, 1] + 0.5))
            if 1 < px < w - 1 and 1 < py < h - 1:
                coords[p] += np.sign([hm[p][py][px + 1] - hm[p][py][px - 1], hm[p][py + 1][px] - hm[p][py - 1][px]]) * .25
        trans = official_affine(c, s, (w, h), inverse=True)
        out.append(np.array([trans @ np.array([x, y, 1.0]) for x, y in coords]))
    return np.stack(out)


@pytest.mark.parametrize("flip_test", [False, True])
@pytest.mark.parametrize("preset, color", [("simplebaseline_tiny", "bgr"), ("hrnet_tiny", "rgb")])
def test_keypoints_equal_the_official_pipeline(preset, color, flip_test):
    torch.manual_seed(1)
    model = models.build(preset).eval()
    with torch.no_grad():
        for module in model.modules():  # He initialisation everywhere: distinct peaks, not the official near-zero maps
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                torch.nn.init.kaiming_normal_(module.weight)
        model.final_layer.bias[[3, 9]] = -1e3  # two maps without a positive maximum: position 0 officially
    image = skimage.data.astronaut()
    boxes = [ASTRONAUT_BOX, [33.3, 17.7, 101.1, 250.9], [300.5, 260.25, 180.0, 90.0]]
    estimator = inference.PoseEstimator(model, preset, color=color, flip_test=flip_test)
    people = inference.estimate(estimator, image, boxes)
    expected = official_keypoints(model, image, boxes, flip_test, color)
    assert np.abs(people.keypoints - expected).max() < 0.01
    assert (people.scores[:, [3, 9]] < 0).all() and (people.scores > 0).mean() > 0.5


def test_a_keypoint_without_a_positive_maximum_sits_at_heatmap_position_zero():
    maps = torch.randn(2, 3, 16, 12)
    maps[0, 1] = -torch.rand(16, 12) - 0.1
    v, u = torch.meshgrid(torch.arange(16.0), torch.arange(12.0), indexing="ij")
    maps[1, 2] = torch.exp(-((u - 5.2) ** 2 + (v - 7) ** 2) / 8)
    for decoder in ("argmax", "quarter_offset", "dark"):
        points, scores = inference.decode(maps, decoder)
        assert points[0, 1].tolist() == [0.0, 0.0] and scores[0, 1] < 0
        assert abs(points[1, 2, 0] - 5.2) <= 0.25 and abs(points[1, 2, 1] - 7) <= 0.25
    with pytest.raises(ValueError, match="decoder"):
        inference.decode(maps, "median")


# ============================================================================ the command
def test_predict_one_photograph_with_a_box(tmp_path, checkpoint, photos):
    assert run("--weights", checkpoint, "--image", photos / "astronaut.png", "--box", *ASTRONAUT_BOX,
               "--out", tmp_path, "--flip-test") == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results) == 1 and results[0]["file_name"] == "astronaut.png" and results[0]["category_id"] == 1
    assert len(results[0]["keypoints"]) == 51 and results[0]["bbox"] == ASTRONAUT_BOX
    xy = np.array(results[0]["keypoints"]).reshape(17, 3)[:, :2]
    center, scale = geometry.box_to_center_scale(np.array(ASTRONAUT_BOX), 0.75)
    assert (np.abs(xy - center) <= scale / 2 + 1).all()  # inside the crop, in original-image pixels
    drawn = cv2.imread(str(tmp_path / "astronaut_pose.png"))
    assert drawn.shape == (512, 512, 3) and (drawn != cv2.imread(str(photos / "astronaut.png"))).any()


def test_predict_a_folder_with_a_detections_file(tmp_path, checkpoint, photos):
    detections = [{"file_name": "coffee.png", "category_id": 1, "bbox": [10, 20, 200, 300], "score": 0.9},
                  {"file_name": "coffee.png", "category_id": 1, "bbox": [300, 20, 200, 300], "score": 0.4},
                  {"file_name": "coffee.png", "category_id": 18, "bbox": [0, 0, 50, 50], "score": 0.9},
                  {"file_name": "chelsea.png", "category_id": 1, "bbox": [100, 50, 150, 200], "score": 0.7}]
    (tmp_path / "det.json").write_text(json.dumps(detections))
    assert run("--model", "simplebaseline_tiny", "--weights", checkpoint, "--images", photos,
               "--detections", tmp_path / "det.json", "--out", tmp_path / "out", "--decoder", "dark") == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["file_name"] for r in results] == ["chelsea.png", "coffee.png", "coffee.png"]
    assert [r["bbox"] for r in results][1:] == [[10, 20, 200, 300], [300, 20, 200, 300]]
    scores = [np.array(r["keypoints"][2::3]) for r in results]
    for result, box_score, kp in zip(results, (0.7, 0.9, 0.4), scores):
        confident = kp[kp > 0.2]
        assert result["score"] == pytest.approx(box_score * (confident.mean() if confident.size else 0), abs=1e-4)
    assert sorted(p.name for p in (tmp_path / "out").glob("*_pose.png")) == [
        "astronaut_pose.png", "chelsea_pose.png", "coffee_pose.png"]


def test_predict_a_video_written_by_opencv(tmp_path, checkpoint):
    image = cv2.resize(skimage.data.astronaut(), (256, 256))
    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (256, 256))
    for shift in range(5):
        writer.write(cv2.cvtColor(np.roll(image, 4 * shift, axis=1), cv2.COLOR_RGB2BGR))
    writer.release()
    assert run("--weights", checkpoint, "--video", tmp_path / "clip.avi", "--box", 70, 10, 130, 240,
               "--out", tmp_path / "out") == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["frame"] for r in results] == [0, 1, 2, 3, 4] and {r["file_name"] for r in results} == {"clip.avi"}
    capture = cv2.VideoCapture(str(tmp_path / "out" / "clip_pose.avi"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    capture.release()
    assert run("--weights", checkpoint, "--video", tmp_path / "clip.avi", "--box", 70, 10, 130, 240,
               "--max-frames", 2, "--out", tmp_path / "two") == 0
    assert len(json.loads((tmp_path / "two" / "results.json").read_text())) == 2


def test_the_synthetic_detector_finds_boxes_in_image_pixels(tmp_path, checkpoint, photos, monkeypatch):
    from course_lib.models.detector import PersonDetector

    torch.manual_seed(0)
    detector = PersonDetector.tiny().eval()
    with torch.no_grad():
        detector.size_out.bias.fill_(12.0)  # 12 cells: boxes of 48 detector pixels, 112 photo pixels
    image = skimage.data.coffee()  # 400 x 600
    boxes, scores = inference.detect_synthetic(detector, image, threshold=0.0)
    assert len(boxes) > 0 and (scores >= 0).all()
    assert (boxes[:, :2] >= -0.5).all() and (boxes[:, 0] + boxes[:, 2] <= 599.5 + 1e-9).all()
    assert (boxes[:, 1] + boxes[:, 3] <= 399.5 + 1e-9).all() and np.median(boxes[:, 2]) > 60
    torch.save(detector.state_dict(), tmp_path / "detector.pt")
    loaded = inference.synthetic_detector(path=tmp_path / "detector.pt", train=False)
    assert torch.equal(loaded.state_dict()["heatmap_out.weight"], detector.state_dict()["heatmap_out.weight"])
    with pytest.raises(FileNotFoundError):
        inference.synthetic_detector(path=tmp_path / "missing.pt", train=False)
    monkeypatch.setattr(inference, "synthetic_detector", lambda: detector)
    assert run("--weights", checkpoint, "--image", photos / "coffee.png", "--detector", "synthetic",
               "--detection-threshold", 0, "--out", tmp_path / "out") == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["bbox"] for r in results] == [[round(float(v), 2) for v in box] for box in boxes]


def test_clear_errors(tmp_path, checkpoint, photos, capsys):
    (tmp_path / "broken.jpg").write_text("not an image")
    assert run("--weights", checkpoint, "--image", tmp_path / "broken.jpg", "--box", 0, 0, 10, 10, "--out", tmp_path) == 1
    assert "broken.jpg could not be read" in capsys.readouterr().err
    assert run("--weights", checkpoint, "--image", photos / "astronaut.png", "--box", 600, 10, 50, 50,
               "--out", tmp_path) == 1
    assert "outside the image of 512 x 512" in capsys.readouterr().err
    assert run("--weights", checkpoint, "--image", photos / "astronaut.png", "--box", 10, 10, 0, 50,
               "--out", tmp_path) == 1
    assert "positive width and height" in capsys.readouterr().err
    assert run("--model", "hrnet_tiny", "--weights", checkpoint, "--image", photos / "astronaut.png",
               "--box", 10, 10, 50, 50, "--out", tmp_path) == 1
    assert "simplebaseline_tiny checkpoint, not hrnet_tiny" in capsys.readouterr().err
    torch.save(models.build("hrnet_tiny").state_dict(), tmp_path / "hrnet_tiny.pth")
    assert run("--model", "simplebaseline_tiny", "--weights", tmp_path / "hrnet_tiny.pth", "--image",
               photos / "astronaut.png", "--box", 10, 10, 50, 50, "--out", tmp_path) == 1
    assert "do not fit simplebaseline_tiny" in capsys.readouterr().err
    assert run("--weights", checkpoint, "--webcam", 97, "--box", 10, 10, 50, 50, "--out", tmp_path) == 1
    assert "--webcam 97 could not be opened" in capsys.readouterr().err
    assert run("--weights", checkpoint, "--video", tmp_path / "none.mp4", "--box", 10, 10, 50, 50, "--out", tmp_path) == 1
    assert "does not exist" in capsys.readouterr().err
    assert run("--weights", checkpoint, "--images", tmp_path / "empty", "--box", 1, 1, 5, 5, "--out", tmp_path) == 1
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "det.json").write_text(json.dumps({"bbox": [1, 2, 3, 4]}))
    assert run("--weights", checkpoint, "--image", photos / "astronaut.png", "--detections", tmp_path / "det.json",
               "--out", tmp_path) == 1
    assert "must be a list" in capsys.readouterr().err
    assert run("--model", "hrnet_w32", "--image", photos / "astronaut.png", "--box", 1, 1, 5, 5, "--out", tmp_path) == 1
    assert "--weights is needed for 'hrnet_w32'" in capsys.readouterr().err
    try:
        import torchvision  # noqa: F401
    except ImportError:
        assert run("--weights", checkpoint, "--image", photos / "astronaut.png", "--detector", "torchvision",
                   "--out", tmp_path) == 1
        assert "needs torchvision" in capsys.readouterr().err


def test_a_bad_box_or_image_fails_before_any_model_is_loaded(tmp_path, photos, capsys, monkeypatch):
    """No weights file and a preset that would have to be trained: the box is checked first."""

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the inputs were checked")

    monkeypatch.setattr(inference, "load_estimator", no_model)
    assert run("--model", "simplebaseline_tiny", "--image", photos / "astronaut.png", "--box", 600, 10, 50, 50,
               "--out", tmp_path) == 1
    assert "outside the image of 512 x 512" in capsys.readouterr().err
    assert run("--model", "simplebaseline_tiny", "--image", tmp_path / "missing.jpg", "--box", 1, 1, 5, 5,
               "--out", tmp_path) == 1
    assert "missing.jpg" in capsys.readouterr().err


def test_quiet_also_silences_the_first_training_of_a_tiny_preset(tmp_path, photos, monkeypatch):
    from course_lib import zoo

    calls = []

    def fake_pretrained(name, *, train=True, progress=True, **kwargs):
        calls.append(progress)
        return models.build(name, seed=0).eval()

    monkeypatch.setattr(zoo, "pretrained", fake_pretrained)
    arguments = ("--model", "simplebaseline_tiny", "--image", photos / "astronaut.png", "--box", 130, 20, 230, 480)
    assert predict.main([str(a) for a in arguments] + ["--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert predict.main([str(a) for a in arguments] + ["--out", str(tmp_path / "b")]) == 0
    assert calls == [False, True]


def test_each_release_keeps_its_own_colour_order(tmp_path):
    state = models.build("simplebaseline_tiny").state_dict()
    official = {k.removeprefix("backbone."): v for k, v in state.items()}
    mmpose = {k if k.startswith("backbone.") else f"keypoint_head.{k}": v for k, v in state.items()}
    torch.save(official, tmp_path / "official.pth")
    torch.save({"state_dict": mmpose, "meta": {"epoch": 1}}, tmp_path / "mmpose.pth")
    estimator = inference.load_estimator("simplebaseline_tiny", tmp_path / "official.pth")
    assert (estimator.color, estimator.weight_format) == ("bgr", "official")
    estimator = inference.load_estimator("simplebaseline_tiny", tmp_path / "mmpose.pth", flip_test=True)
    assert (estimator.color, estimator.weight_format, estimator.flip_test) == ("rgb", "mmpose", True)
    assert torch.equal(estimator.model.final_layer.weight, state["final_layer.weight"])
    with pytest.raises(ValueError, match="--model is needed"):
        inference.load_estimator(None, tmp_path / "official.pth")


def test_the_prediction_browser_works_on_a_folder_of_photographs(photos):
    from course_lib import widgets

    model = models.build("simplebaseline_tiny").eval()
    demo = widgets.prediction_browser(model, photos, joint="left_wrist")
    assert demo.state["file"] == "astronaut.png" and demo.state["keypoints"].shape == (17, 2)
    assert demo.state["heatmap"].shape == (24, 16) and demo.state["joint"] == 9
    demo.controls["index"].value = 2
    assert demo.state["file"] == "coffee.png"
    with pytest.raises(ValueError, match="holds no image"):
        widgets.prediction_browser(model, photos / "..")


def test_an_mpii_checkpoint_predicts_its_own_sixteen_joints(tmp_path, photos):
    model = models.build("hrnet_tiny", num_keypoints=16)
    checkpoint = weights.save_model(tmp_path / "mpii.pt", model, "hrnet_tiny", keypoint_set="mpii")
    assert run("--weights", checkpoint, "--image", photos / "chelsea.png", "--box", 50, 20, 300, 280,
               "--flip-test", "--out", tmp_path / "out") == 0
    (result,) = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(result["keypoints"]) == 16 * 3 and (tmp_path / "out" / "chelsea_pose.png").is_file()

