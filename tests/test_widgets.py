"""The interactive demos, driven from code: move a control, check the numbers shown against the library.

No browser here (tests/test_browser.py has one).  Every expected value is computed
independently of the demo: loop versions of the operations, pycocotools-exact OKS, the
formulas of the chapters, or the model run by hand.
"""

import io
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import ipywidgets
import nbformat
import numpy as np
import pytest
import torch
from PIL import Image

from course_lib import heatmaps as hm
from course_lib import ops, training, widgets
from course_lib.data import CocoKeypoints, astronaut, make_synthetic
from course_lib.geometry import crop_to_image
from course_lib.keypoints import COCO_KEYPOINTS, COCO_SIGMAS
from course_lib.metrics import object_keypoint_similarity


def _png_size(data: bytes) -> tuple[int, int]:
    data = bytes(data)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(data)).size


def _controls_shown(demo: widgets.Demo) -> set:
    """Every widget inside the demo's boxes (so that the page shows each control)."""
    found, todo = set(), list(demo.children)
    while todo:
        child = todo.pop()
        found.add(id(child))
        todo.extend(getattr(child, "children", ()))
    return found


def _check_frame(demo: widgets.Demo) -> None:
    assert isinstance(demo, ipywidgets.VBox)
    shown = _controls_shown(demo)
    assert all(id(control) in shown for control in demo.controls.values())
    assert id(demo.picture) in shown and id(demo.readout) in shown
    width, height = _png_size(demo.picture.value)
    assert width >= 600 and height >= 300
    assert "problem" not in demo.state


# ============================================================================ heatmap explorer
def _independent_errors(x: float, y: float, sigma: float, stride: int, unbiased: bool, size: tuple[int, int]) -> dict:
    """Target made by the loop version, decoded by each decoder, error in input pixels."""
    target, _ = hm.gaussian_heatmaps_loop(np.array([[x / stride, y / stride]]), np.array([2]), size, sigma, unbiased)
    maps = target  # (1, H, W)
    decoded = {
        "argmax": hm.decode_argmax(maps)[0][0],
        "quarter_offset": hm.decode_quarter_offset(maps)[0][0],
        "dark": hm.decode_dark(maps, sigma=sigma)[0][0],
        "soft_argmax": hm.soft_argmax(maps, temperature=0.05)[0][0],
    }
    return {name: math.hypot(p[0] * stride - x, p[1] * stride - y) for name, p in decoded.items()}, target[0]


def test_heatmap_explorer_shows_the_decoders_errors():
    demo = widgets.heatmap_explorer()
    _check_frame(demo)
    cases = [(17.85, 40.1, 1.5, 2, True), (33.4, 30.7, 2.0, 8, True), (10.0, 50.25, 3.0, 1, False),
             (29.3, 26.6, 2.0, 4, False)]
    for x, y, sigma, stride, unbiased in cases:
        before = bytes(demo.picture.value)
        with demo.hold():
            demo.controls["sigma"].value = sigma
            demo.controls["stride"].value = stride
            demo.controls["unbiased"].value = unbiased
            demo.controls["x"].value = x
        demo.controls["y"].value = y  # the last change redraws
        size = (64 // stride, 64 // stride)
        expected, target = _independent_errors(x, y, sigma, stride, unbiased, size)
        assert demo.state["heatmap_size"] == size
        np.testing.assert_allclose(demo.state["target"], target, atol=1e-6)
        for name, error in expected.items():
            assert demo.state["errors"][name] == pytest.approx(error, abs=1e-4)
            assert demo.state["errors_heatmap"][name] == pytest.approx(error / stride, abs=1e-4)
            assert f"{error:.3f}" in demo.readout.value
        assert bytes(demo.picture.value) != before
        # argmax is at most half a heatmap pixel off on each axis
        assert demo.state["errors"]["argmax"] <= stride * math.sqrt(2) / 2 + 1e-6


def test_heatmap_explorer_dark_recovers_subpixel_positions_from_unbiased_targets():
    demo = widgets.heatmap_explorer(x=30.3, y=33.9, stride=4, unbiased=True)
    assert demo.state["errors"]["dark"] < 0.05 * 4
    assert demo.state["errors"]["argmax"] > demo.state["errors"]["dark"]
    demo.controls["unbiased"].value = False  # MSRA rounds the centre: DARK reads the rounded centre
    rounded = np.array([int(30.3 / 4 + 0.5), int(33.9 / 4 + 0.5)]) * 4
    assert demo.state["errors"]["dark"] == pytest.approx(np.hypot(*(rounded - [30.3, 33.9])), abs=1e-3)


def test_heatmap_explorer_decoder_choice_highlights_one_row():
    demo = widgets.heatmap_explorer()
    demo.controls["decoder"].value = "dark"
    assert "font-weight:bold" in demo.readout.value
    demo.controls["decoder"].value = "all"
    assert "font-weight:bold" not in demo.readout.value


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"stride": 3}, "stride"),
        ({"sigma": 0}, "sigma"),
        ({"x": 70.0}, "x must be"),
        ({"y": float("nan")}, "y must be"),
        ({"input_size": (60, 64)}, "input_size"),
        ({"decoder": "median"}, "decoder"),
    ],
)
def test_heatmap_explorer_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        widgets.heatmap_explorer(**kwargs)


# ============================================================================ ROI explorer
def test_roi_explorer_outputs_match_the_loop_versions():
    demo = widgets.roi_explorer()
    _check_frame(demo)
    features = torch.from_numpy(demo.state["features"])[None, None]  # (1, 1, H, W)
    keys = ("x1", "y1", "x2", "y2", "output_size", "spatial_scale", "sampling_ratio", "aligned")
    settings = [
        dict(zip(keys, values))
        for values in [
            (1.6, 2.3, 9.4, 7.8, 3, 1.0, 2, False),
            (0.5, 1.2, 5.1, 10.7, 4, 1.0, -1, True),
            (3.0, 2.0, 15.5, 30.2, 2, 0.25, 3, False),
            (4.2, 4.2, 4.4, 4.3, 5, 0.5, 1, True),
        ]
    ]
    for setting in settings:
        demo.controls["spatial_scale"].value = setting["spatial_scale"]  # the box sliders' range follows
        with demo.hold():
            for key, value in setting.items():
                demo.controls[key].value = value
        demo.refresh()
        box = torch.tensor([[0.0, setting["x1"], setting["y1"], setting["x2"], setting["y2"]]])
        args = (setting["output_size"], setting["spatial_scale"])
        expected_align = ops.roi_align_loop(features, box, *args, setting["sampling_ratio"], setting["aligned"])[0, 0]
        expected_pool = ops.roi_pool_loop(features, box, *args)[0, 0]
        np.testing.assert_allclose(demo.state["roi_align"], expected_align.numpy(), atol=1e-5)
        np.testing.assert_allclose(demo.state["roi_pool"], expected_pool.numpy(), atol=0)
        np.testing.assert_allclose(demo.state["difference"], (expected_align - expected_pool).numpy(), atol=1e-5)
        # the drawn sampling points are where ROIAlign reads: their bilinear mean is each bin's output
        points = torch.as_tensor(demo.state["sampling_points"])  # (h, w, s_h, s_w, 2)
        values = ops.bilinear_sample(features, points[None])[0, 0]  # (h, w, s_h, s_w)
        np.testing.assert_allclose(values.mean(dim=(-2, -1)).numpy(), demo.state["roi_align"], atol=1e-5)
        assert f"ROIAlign {demo.state['roi_align'].mean():.3f}" in demo.readout.value
        assert f"ROIPool {expected_pool.mean():.3f}" in demo.readout.value


def test_roi_explorer_pool_bins_are_the_cells_roi_pool_takes_the_maximum_of():
    demo = widgets.roi_explorer(box=(0.7, 1.4, 8.6, 9.9), output_size=4)
    feature_map = demo.state["features"]
    for i, (r0, r1) in enumerate(demo.state["pool_rows"]):
        for j, (c0, c1) in enumerate(demo.state["pool_cols"]):
            assert demo.state["roi_pool"][i, j] == feature_map[r0:r1, c0:c1].max()
    # by hand: X1 = round(0.7) = 1, X2 = round(8.6) = 9, 9 cells in 4 bins of 2.25
    assert demo.state["pool_cols"].tolist() == [[1, 4], [3, 6], [5, 8], [7, 10]]


def test_roi_explorer_explains_an_impossible_box_and_rescales_its_sliders():
    demo = widgets.roi_explorer()
    picture = bytes(demo.picture.value)
    demo.controls["x2"].value = 1.0  # left of x1 = 1.6
    assert "x2" in demo.state["problem"] and "x2" in demo.readout.value
    assert bytes(demo.picture.value) == picture
    demo.controls["x2"].value = 9.0
    assert "problem" not in demo.state
    demo.controls["spatial_scale"].value = 0.25
    assert demo.controls["x1"].max == pytest.approx(11 / 0.25)
    assert demo.state["box_on_grid"][0] == pytest.approx(1.6 * 0.25)


def test_roi_explorer_accepts_a_given_feature_map():
    feature_map = np.arange(48, dtype=np.float32).reshape(6, 8)
    demo = widgets.roi_explorer(box=(1.0, 1.0, 5.0, 4.0), output_size=2, sampling_ratio=1, features=feature_map)
    # one sample per bin at its centre; the map is linear, so bilinear reading is exact: 8 y + x
    centres_x, centres_y = np.array([2.0, 4.0]), np.array([1.75, 3.25])
    expected = 8 * centres_y[:, None] + centres_x[None, :]
    np.testing.assert_allclose(demo.state["roi_align"], expected, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"box": (5.0, 1.0, 2.0, 4.0)}, ValueError, "x2 >= x1"),
        ({"box": (1.0, 2.0)}, ValueError, "box"),
        ({"spatial_scale": 0.3}, ValueError, "spatial_scale"),
        ({"sampling_ratio": 0}, ValueError, "sampling_ratio"),
        ({"output_size": 0}, ValueError, "output_size"),
        ({"feature_size": (0, 4)}, ValueError, "feature_size"),
        ({"features": np.zeros((3, 3, 3))}, ValueError, "features"),
        ({"features": "map"}, TypeError, "features"),
        ({"box": (1.0, 1.0, 40.0, 4.0)}, ValueError, "x2"),
    ],
)
def test_roi_explorer_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        widgets.roi_explorer(**kwargs)


# ============================================================================ OKS explorer
def _oks_by_hand(pred, gt, visibility, area, sigmas) -> tuple[float, np.ndarray]:
    """COCO's formula written out: mean over labelled keypoints of exp(-d^2 / (2 s^2 k^2))."""
    d2 = ((pred - gt) ** 2).sum(axis=-1)
    similarity = np.exp(-d2 / (2 * area * (2 * sigmas) ** 2))
    labelled = visibility > 0
    return float(similarity[labelled].mean()), similarity


def test_oks_explorer_shows_object_keypoint_similarity():
    person = astronaut()
    demo = widgets.oks_explorer()
    _check_frame(demo)
    gt, visibility, area = person["keypoints"].astype(float), person["visibility"], float(person["area"])
    assert demo.state["oks"] == 1.0

    displacement = np.zeros((17, 2))
    demo.controls["dx"].value = 12.0  # nose (the default keypoint)
    displacement[0] = (12.0, 0.0)
    demo.controls["keypoint"].value = 6  # right shoulder
    assert demo.controls["dx"].value == 0.0  # each keypoint keeps its own displacement
    demo.controls["dy"].value = -20.0
    displacement[6] = (0.0, -20.0)
    pred = gt + displacement
    expected = object_keypoint_similarity(pred, gt, visibility, area)
    assert demo.state["oks"] == expected  # bit-identical: the same function
    by_hand, similarity = _oks_by_hand(pred, gt, visibility, area, COCO_SIGMAS)
    assert demo.state["oks"] == pytest.approx(by_hand, rel=1e-9)
    labelled = visibility > 0
    np.testing.assert_allclose(demo.state["similarities"][labelled], similarity[labelled], rtol=1e-9)
    assert np.isnan(demo.state["similarities"][~labelled]).all()
    assert f"{expected:.4f}" in demo.readout.value
    np.testing.assert_allclose(demo.state["pred"], pred)

    # all keypoints together, on top of their own displacements
    demo.controls["together"].value = True
    assert demo.controls["dy"].value == 0.0
    demo.controls["dx"].value = 5.0
    pred = gt + displacement + [5.0, 0.0]
    assert demo.state["oks"] == object_keypoint_similarity(pred, gt, visibility, area)

    # a smaller person and a larger k_i for the right shoulder
    demo.controls["area"].value = area / 4
    demo.controls["k"].value = 0.2
    sigmas = np.array(COCO_SIGMAS)
    sigmas[6] = 0.1
    np.testing.assert_allclose(demo.state["sigmas"], sigmas)
    expected = object_keypoint_similarity(pred, gt, visibility, demo.state["area"], sigmas)
    assert demo.state["oks"] == pytest.approx(expected)
    assert demo.state["area"] == pytest.approx(area / 4, rel=1e-2)  # the slider's log steps

    demo.controls["reset"].click()
    assert demo.state["oks"] == 1.0 and demo.controls["dx"].value == 0.0
    assert demo.state["sigmas"][6] == 0.1  # reset moves keypoints only


def test_oks_rings_are_where_the_similarity_is_reached():
    demo = widgets.oks_explorer(area=40000.0, keypoint="left_shoulder")
    k = 2 * COCO_SIGMAS[5]
    for similarity, radius in demo.state["rings"].items():
        assert math.exp(-(radius**2) / (2 * 40000.0 * k**2)) == pytest.approx(similarity, rel=1e-9)
    # moving the keypoint exactly onto its 0.5 ring gives a similarity of 0.5
    demo.controls["dx"].value = round(demo.state["rings"][0.5] * 2) / 2  # the slider's 0.5 px steps
    distance = demo.controls["dx"].value
    assert demo.state["similarities"][5] == pytest.approx(math.exp(-(distance**2) / (2 * 40000.0 * k**2)))
    assert abs(demo.state["similarities"][5] - 0.5) < 0.01


def test_oks_explorer_on_a_synthetic_person_with_its_own_sigmas():
    rng = np.random.default_rng(3)
    person = {"image": np.zeros((80, 60, 3), np.uint8), "keypoints": rng.uniform(10, 50, (4, 2)),
              "visibility": np.array([2, 0, 1, 2]), "area": 900.0}
    sigmas = np.array([0.05, 0.06, 0.07, 0.08])
    demo = widgets.oks_explorer(person, sigmas=sigmas, keypoint=3)
    demo.controls["dx"].value = 3.0
    pred = person["keypoints"] + [[0, 0], [0, 0], [0, 0], [3.0, 0]]
    expected = object_keypoint_similarity(pred, person["keypoints"], person["visibility"], 900.0, sigmas)
    assert demo.state["oks"] == expected
    assert [label for label, _ in demo.controls["keypoint"].options] == ["keypoint 0", "keypoint 2", "keypoint 3"]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"person": {"image": np.zeros((4, 4, 3))}}, TypeError, "person"),
        ({"area": -5.0}, ValueError, "area"),
        ({"keypoint": "left_wrist"}, ValueError, "not labelled"),
        ({"keypoint": 17}, ValueError, "keypoint"),
        ({"keypoint": "elbow"}, ValueError, "keypoint"),
        ({"sigmas": np.ones(5)}, ValueError, "sigmas"),
        ({"sigmas": -np.ones(17)}, ValueError, "sigmas"),
    ],
)
def test_oks_explorer_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        widgets.oks_explorer(**kwargs)


# ============================================================================ prediction browser
class TinyHeatmapNet(torch.nn.Module):
    """An untrained stand-in for a pose network: stride 4, 17 heatmaps."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layers = torch.nn.Sequential(torch.nn.AvgPool2d(4), torch.nn.Conv2d(3, 17, 3, padding=1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    annotations = make_synthetic(folder, images=4, size=(64, 64), seed=1)
    return annotations.parent


def test_prediction_browser_shows_the_models_prediction_and_heatmap(tiny_split):
    data = training.top_down_data(tiny_split, (64, 48), (16, 12))
    model = TinyHeatmapNet()
    demo = widgets.prediction_browser(model, data, joint="left_wrist")
    _check_frame(demo)
    people = json.loads((tiny_split / "annotations.json").read_text())["annotations"]
    for index, joint in ((0, 9), (2, 0), (3, 16)):
        with demo.hold():
            demo.controls["joint"].value = joint
        demo.controls["index"].value = index
        item = data[index]
        with torch.no_grad():
            heatmap = model(item["image"][None])[0, joint].numpy()  # (16, 12), the model run by hand
        np.testing.assert_allclose(demo.state["heatmap"], heatmap, atol=1e-5)
        u, _ = hm.decode_dark(heatmap[None], sigma=2.0)
        pred = crop_to_image(u, item["center"].numpy(), item["scale"].numpy(), item["rotation"].numpy(), (16, 12))[0]
        np.testing.assert_allclose(demo.state["pred"], pred, atol=1e-3)
        x, y, v = people[index]["keypoints"][3 * joint: 3 * joint + 3]
        w, h = people[index]["bbox"][2:]
        assert demo.state["visible"] == v
        error = math.hypot(pred[0] - x, pred[1] - y)
        if v > 0:
            assert demo.state["error"] == pytest.approx(error, abs=1e-2)
            assert demo.state["within_pck"] == (error <= 0.2 * max(w, h))
            assert f"{demo.state['error']:.2f}" in demo.readout.value
        else:
            assert math.isnan(demo.state["error"]) and not demo.state["within_pck"]
        assert demo.state["pck_radius"] == pytest.approx(0.2 * max(w, h), rel=1e-6)
        assert COCO_KEYPOINTS[joint] in demo.readout.value


def test_prediction_browser_worst_first_order(tiny_split):
    data = training.top_down_data(tiny_split, (64, 48), (16, 12))
    demo = widgets.prediction_browser(TinyHeatmapNet(), data, decoder="argmax")
    errors = demo.state["predictions"].errors
    demo.controls["order"].value = "worst"
    assert demo.state["item"] == int(np.nanargmax(np.nanmean(errors, axis=1)))
    assert demo.state["mean_error"] == pytest.approx(np.nanmax(np.nanmean(errors, axis=1)))


def test_prediction_browser_without_heatmaps_for_a_regressor(tiny_split):
    data = torch.utils.data.Subset(training.top_down_data(tiny_split, (64, 48), (16, 12)), [1, 2])

    class Regressor(torch.nn.Module):
        def forward(self, images):
            return torch.zeros(images.shape[0], 17, 2)  # every joint at the box centre

    demo = widgets.prediction_browser(Regressor(), data)
    assert demo.state["heatmap"] is None
    box = json.loads((tiny_split / "annotations.json").read_text())["annotations"][1]["bbox"]
    center = np.array([box[0] + box[2] / 2, box[1] + box[3] / 2])
    np.testing.assert_allclose(demo.state["pred"], center, atol=0.5)


def test_prediction_browser_rejects_bad_inputs(tiny_split):
    data = training.top_down_data(tiny_split, (64, 48), (16, 12))
    model = TinyHeatmapNet()
    with pytest.raises(TypeError, match="dataset must be a course_lib.top_down.TopDownDataset"):
        widgets.prediction_browser(model, CocoKeypoints(tiny_split / "annotations.json"))
    with pytest.raises(TypeError, match="model"):
        widgets.prediction_browser(lambda x: x, data)
    with pytest.raises(ValueError, match="augment"):
        widgets.prediction_browser(model, training.top_down_data(tiny_split, (64, 48), (16, 12), augment=True))
    with pytest.raises(ValueError, match="empty"):
        widgets.prediction_browser(model, torch.utils.data.Subset(data, []))
    with pytest.raises(ValueError, match="decoder"):
        widgets.prediction_browser(model, data, decoder="median")
    with pytest.raises(ValueError, match="joint"):
        widgets.prediction_browser(model, data, joint="tail")
    with pytest.raises(ValueError, match="index"):
        widgets.prediction_browser(model, data, index=4)

    class SevenJoints(torch.nn.Module):
        def forward(self, images):
            return torch.zeros(images.shape[0], 7, 16, 12)

    with pytest.raises(ValueError, match="7 keypoints"):
        widgets.prediction_browser(SevenJoints(), data)


# ============================================================================ the lecture page
ROOT = Path(__file__).resolve().parents[1]


def test_lecture_page_shows_the_four_demos():
    notebook = nbformat.read(ROOT / "demos" / "lecture.ipynb", as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "pose-course"
    code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    compile(code, "lecture.ipynb", "exec")
    for name in ("heatmap_explorer", "roi_explorer", "oks_explorer", "prediction_browser"):
        assert f"widgets.{name}(" in code
    assert 'zoo.pretrained("simplebaseline_tiny"' in code
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_trains_first_then_serves_the_page_with_voila_on_localhost():
    commands = subprocess.run(["make", "-n", "demo", "DEMO_PORT=18123"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout
    train = commands.index('zoo.pretrained("simplebaseline_tiny")')
    serve = commands.index("voila --no-browser")
    assert train < serve
    assert "--Voila.ip=127.0.0.1" in commands and "--port=18123" in commands
    assert "demos/lecture.ipynb" in commands[serve:]


# ============================================================================ the frame's layout
def test_the_numbers_wrap_below_the_picture_instead_of_being_cut_off():
    """In JupyterLab the notebook column is narrower than the window: picture and numbers must wrap, not clip."""
    demo = widgets.heatmap_explorer()
    row = next(child for child in demo.children if demo.readout in getattr(child, "children", ()))
    assert row.layout.flex_flow == "row wrap" and row.layout.width == "100%"
    assert demo.readout.layout.max_width == "100%" and demo.readout.layout.overflow == "auto"
    assert demo.picture.layout.max_width == "100%"
    # the readout does not shrink below its table (it wraps below the picture instead of clipping)
    grow, shrink, basis = demo.readout.layout.flex.split()
    assert shrink == "0" and basis == "auto" and demo.readout.layout.min_width is None
    # and its table is narrow: the long headers break over two lines
    headers = re.findall(r"<th[^>]*>(.*?)</th>", demo.readout.value)
    assert len(headers) == 4 and all(len(part) <= 10 for h in headers for part in h.split("<br>"))


def test_the_heatmap_explorer_shows_every_decoder_of_the_one_table():
    demo = widgets.heatmap_explorer(unbiased=True)
    assert list(demo.state["decoded"]) == list(hm.DECODERS)
    codec = hm.HeatmapCodec((64, 64), (16, 16), 2.0, "unbiased", decoder="soft_argmax")
    expected = codec.decode(demo.state["target"][None, None])[0][0, 0]
    np.testing.assert_allclose(demo.state["decoded"]["soft_argmax"], expected)
