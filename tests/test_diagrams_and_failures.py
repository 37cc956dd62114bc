"""Block diagrams drawn from a model's configuration, and the failure kinds of the gallery."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

from types import SimpleNamespace  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib import failures, models, viz  # noqa: E402
from course_lib.keypoints import COCO_KEYPOINTS  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _texts(ax) -> str:
    return "\n".join(t.get_text() for t in ax.texts) + "\n" + ax.get_title()


def test_a_block_diagram_draws_its_blocks_arrows_and_groups():
    blocks = [viz.Block("a", "image", (0, 0), shape="round"), viz.Block("b", "conv", (3, 0), shape="down"),
              viz.Block("c", "+", (5, 0), (0.6, 0.6), shape="circle")]
    ax = viz.draw_block_diagram(blocks, [("a", "b", "3x64x64"), ("b", "c")], [("stage", ["b", "c"])], title="net")
    assert {"image", "conv", "+", "3x64x64", "stage"} <= set(_texts(ax).split("\n"))
    arrows = [p for p in ax.patches if type(p).__name__ == "FancyArrowPatch"]
    assert len(arrows) == 2 and len(ax.patches) == 3 + 2 + 1  # blocks, arrows, the group's frame
    with pytest.raises(ValueError, match="'x'"):
        viz.draw_block_diagram(blocks, [("a", "x")])
    with pytest.raises(ValueError, match="shape"):
        viz.draw_block_diagram([viz.Block("a", "a", (0, 0), shape="star")], [])
    with pytest.raises(ValueError, match="two blocks"):
        viz.draw_block_diagram(blocks + [blocks[0]], [])


def test_the_cpm_diagram_reads_stages_and_receptive_fields_from_the_model():
    model = models.build("cpm_tiny", num_stages=4)
    text = _texts(viz.draw_cpm(model))
    for field in np.array(model.receptive_fields())[[0, 1, 3]]:
        assert f"field {field} px" in text
    assert "stage 4" in text and "stage 3" not in text and f"stride {model.stride}" in text


def test_the_hourglass_diagram_names_the_revision_it_draws():
    with torch.device("meta"):
        released, early = models.build("hourglass_8"), models.build("hourglass_8", residual_after_hourglass=False)
    assert "released hg.lua" in _texts(viz.draw_stacked_hourglass(released))
    text = _texts(viz.draw_stacked_hourglass(early))
    assert "early hg.lua" in text and "residual + 1x1" not in text and "hourglass 8" in text


def _predictions(pred, gt, image_ids=(0, 1, 2)):
    n = len(gt)
    return SimpleNamespace(keypoints=np.asarray(pred, float), gt_keypoints=np.asarray(gt, float),
                           gt_visibility=np.full((n, 17), 2), boxes=np.tile([0.0, 0.0, 100.0, 100.0], (n, 1)),
                           image_ids=np.asarray(image_ids))


def test_failure_kinds_are_computed_from_the_predictions():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 100, (3, 17, 2))
    pred = gt.copy()
    pred[0, [9, 10]] = gt[0, [10, 9]]  # wrists swapped
    pred[1, 3] += [20.0, 0.0]  # an ear placed loosely
    pred[2, 15] = gt[1, 15]  # an ankle on the person of another image: a miss here
    worst = failures.worst_predictions(_predictions(pred, gt), 3)
    kinds = {f.index: f.kind for f in worst}
    assert kinds[0] == failures.SWAP and kinds[1] == failures.JITTER
    assert worst[0].describe(COCO_KEYPOINTS) == "left/right swap: left_wrist, right_wrist"
    errors = [f.error for f in worst]
    assert errors == sorted(errors, reverse=True)
    shared = failures.worst_predictions(_predictions(pred, gt, image_ids=(0, 1, 1)), 3)
    assert {f.index: f.kind for f in shared}[2] == failures.OTHER  # the same image: another person's ankle
    if np.linalg.norm(gt[1, 15] - gt[2, 15]) > 50:
        assert kinds[2] == failures.MISS


def test_failure_arguments_are_checked():
    gt = np.zeros((2, 17, 2))
    with pytest.raises(ValueError, match="near"):
        failures.joint_kinds(gt, gt, np.ones((2, 17)), np.ones((2, 4)), near=0.5, far=0.1)
    with pytest.raises(ValueError, match="visibility"):
        failures.joint_kinds(gt, gt, np.ones((3, 17)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="count"):
        failures.worst_predictions(_predictions(gt, gt, (0, 1)), 0)


def test_the_gallery_titles_each_panel_with_its_computed_kind():
    rng = np.random.default_rng(1)
    gt = rng.uniform(10, 90, (3, 17, 2))
    pred = gt + rng.normal(0, 1, gt.shape)
    pred[2, [5, 6]] = gt[2, [6, 5]]
    fig = viz.failure_gallery(_predictions(pred, gt), lambda i: np.zeros((100, 100, 3), np.uint8), count=2)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(titles) == 2 and titles[0].startswith("#2") and "left/right swap: left_shoulder" in titles[0]
