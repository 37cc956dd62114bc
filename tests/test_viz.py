"""Pictures: poses, boxes, sample grids, heatmap overlays (drawn off screen with Agg)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from course_lib import data, viz  # noqa: E402
from course_lib.keypoints import COCO_KEYPOINTS, COCO_SKELETON, MPII_KEYPOINTS, MPII_SKELETON  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _pose(seed: int = 0):
    rng = np.random.default_rng(seed)
    keypoints = rng.uniform(0, 100, (17, 2))
    visibility = rng.integers(0, 3, 17)
    return keypoints, visibility


def _limbs(ax) -> list[Line2D]:
    return [line for line in ax.lines if len(line.get_xdata()) == 2]


def test_draw_pose_draws_one_line_per_labelled_limb_and_one_point_per_labelled_joint():
    keypoints, visibility = _pose()
    ax = viz.draw_pose(keypoints, visibility)
    drawn = [(a, b) for a, b in COCO_SKELETON if visibility[a] > 0 and visibility[b] > 0]
    dashed = [(a, b) for a, b in drawn if min(visibility[a], visibility[b]) == 1]
    lines = _limbs(ax)
    assert len(lines) == len(drawn)
    assert sum(line.get_linestyle() == "--" for line in lines) == len(dashed)
    filled, hollow = ax.collections
    assert len(filled.get_offsets()) == np.sum(visibility == 2)
    assert len(hollow.get_offsets()) == np.sum(visibility == 1)
    np.testing.assert_allclose(filled.get_offsets(), keypoints[visibility == 2])
    assert len(hollow.get_facecolors()) == 0  # hollow markers
    assert ax.yaxis_inverted()  # image coordinates without an image


def test_draw_pose_colours_left_right_and_centre():
    keypoints = np.random.default_rng(1).uniform(0, 50, (17, 2))
    ax = viz.draw_pose(keypoints)
    by_pair = dict(zip(COCO_SKELETON, _limbs(ax)))
    index = {name: i for i, name in enumerate(COCO_KEYPOINTS)}
    left_arm = (index["left_shoulder"], index["left_elbow"])
    right_leg = (index["right_knee"], index["right_hip"])
    shoulders = (index["left_shoulder"], index["right_shoulder"])
    assert to_hex(by_pair[left_arm].get_color()) == viz.SIDE_COLOURS["left"]
    assert to_hex(by_pair[right_leg].get_color()) == viz.SIDE_COLOURS["right"]
    assert to_hex(by_pair[shoulders].get_color()) == viz.SIDE_COLOURS["center"]
    assert viz.keypoint_sides(MPII_KEYPOINTS, 16)[MPII_KEYPOINTS.index("pelvis")] == "center"


def test_draw_pose_several_people_and_other_keypoint_sets():
    people = np.random.default_rng(2).uniform(0, 50, (3, 17, 2))
    ax = viz.draw_pose(people)
    assert len(_limbs(ax)) == 3 * len(COCO_SKELETON)
    assert len(ax.collections[0].get_offsets()) == 3 * 17
    mpii = np.random.default_rng(3).uniform(0, 50, (16, 2))
    ax = viz.draw_pose(mpii, skeleton=MPII_SKELETON, names=MPII_KEYPOINTS)
    assert len(_limbs(ax)) == len(MPII_SKELETON)


def test_draw_pose_keeps_the_image_limits():
    ax = viz.show_image(np.zeros((40, 60, 3), dtype=np.uint8))
    limits = (ax.get_xlim(), ax.get_ylim())
    viz.draw_pose(np.full((17, 2), 500.0), ax=ax)  # far outside the image
    assert (ax.get_xlim(), ax.get_ylim()) == limits


def test_draw_pose_rejects_bad_input():
    with pytest.raises(ValueError, match="keypoints"):
        viz.draw_pose(np.zeros((17, 3)))
    with pytest.raises(ValueError, match="visibility"):
        viz.draw_pose(np.zeros((17, 2)), np.ones(16))
    with pytest.raises(ValueError, match="skeleton"):
        viz.draw_pose(np.zeros((5, 2)), skeleton=[(0, 7)])
    with pytest.raises(ValueError, match="NaN"):
        viz.draw_pose(np.full((17, 2), np.nan))
    with pytest.raises(ValueError, match="names"):
        viz.draw_pose(np.zeros((5, 2)), skeleton=[(0, 1)], names=["a"])


def test_show_image_accepts_arrays_and_model_tensors():
    image = np.random.default_rng(4).integers(0, 256, (8, 10, 3), dtype=np.uint8)
    ax = viz.show_image(data.image_to_tensor(image))
    np.testing.assert_array_equal(ax.images[0].get_array(), image)
    ax = viz.show_image(image)
    np.testing.assert_array_equal(ax.images[0].get_array(), image)
    with pytest.raises(ValueError, match="image"):
        viz.show_image(np.zeros((4, 4, 5)))


def test_draw_box_adds_the_coco_rectangle():
    ax = viz.draw_box([10, 20, 30, 40], label="person")
    rectangle = ax.patches[0]
    assert (rectangle.get_x(), rectangle.get_y(), rectangle.get_width(), rectangle.get_height()) == (10, 20, 30, 40)
    assert ax.texts[0].get_text() == "person"
    with pytest.raises(ValueError, match="box"):
        viz.draw_box([1, 2, 3])


def test_show_samples_grid(tmp_path):
    dataset = data.CocoKeypoints(data.make_synthetic(tmp_path / "set", 6, (64, 64), seed=3))
    fig = viz.show_samples(dataset, n=5, cols=3)
    with_images = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 6 and len(with_images) == 5
    assert all(len(ax.patches) == 1 for ax in with_images)  # the boxes
    assert with_images[0].get_title() == f"image {dataset[0]['image_id']}"
    items = [dataset[i] for i in (4, 1)]
    fig = viz.show_samples(items, cols=4, show_box=False)
    assert sum(bool(ax.images) for ax in fig.axes) == 2
    with pytest.raises(ValueError, match="n must"):
        viz.show_samples(dataset, n=0)
    with pytest.raises(TypeError, match="items"):
        viz.show_samples([np.zeros((4, 4, 3))])


def test_overlay_heatmap_follows_the_stride_convention():
    image = np.zeros((128, 96, 3), dtype=np.uint8)
    heatmaps = np.zeros((17, 32, 24))
    heatmaps[3, 10, 5] = 1.0
    ax = viz.overlay_heatmap(image, heatmaps)
    overlay = ax.images[1]
    stride = 4  # 128 / 32 and 96 / 24: heatmap pixel u has its centre at x = 4 u
    assert overlay.get_extent() == pytest.approx([-stride / 2, (24 - 0.5) * stride, (32 - 0.5) * stride, -stride / 2])
    np.testing.assert_array_equal(overlay.get_array(), heatmaps.max(axis=0))
    assert ax.get_xlim() == (-0.5, 95.5) and ax.get_ylim() == (127.5, -0.5)
    with pytest.raises(ValueError, match="heatmap"):
        viz.overlay_heatmap(image, np.zeros((2, 3, 4, 5)))


def test_show_heatmaps_one_panel_per_keypoint():
    heatmaps = np.random.default_rng(5).random((17, 16, 12))
    fig = viz.show_heatmaps(heatmaps)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 17
    assert [ax.get_title() for ax in panels] == list(COCO_KEYPOINTS)
    fig = viz.show_heatmaps(heatmaps[:5], image=np.zeros((64, 48, 3), dtype=np.uint8), cols=2)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 5 and all(len(ax.images) == 2 for ax in panels)
    assert [ax.get_title() for ax in panels] == ["0", "1", "2", "3", "4"]  # names of another set: numbered
    with pytest.raises(ValueError, match="heatmaps"):
        viz.show_heatmaps(np.zeros((16, 12)))


def test_astronaut_drawn():
    item = data.astronaut()
    ax = viz.show_image(item["image"])
    viz.draw_pose(item["keypoints"], item["visibility"], ax=ax)
    visibility = item["visibility"]
    assert len(_limbs(ax)) == sum(visibility[a] > 0 and visibility[b] > 0 for a, b in COCO_SKELETON)
