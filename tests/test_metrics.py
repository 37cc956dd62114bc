"""PCK, PCKh, PDJ, PCP, PCPm, the PCK AUC, OKS, OKS-NMS and rescoring, on hand-worked examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from course_lib.keypoints import COCO_KEYPOINTS, COCO_PCP_LIMBS, COCO_SIGMAS
from course_lib.metrics import (
    bbox_size,
    box_diagonal,
    grmi_rescore,
    head_size,
    object_keypoint_similarity,
    oks_matrix,
    oks_nms,
    pck,
    pck_auc,
    pckh,
    pcp,
    pcpm,
    pdj,
    torso_diameter,
)
from course_lib.metrics.oks import _sum_like_numpy


# --------------------------------------------------------------------------- PCK family
def _two_people():
    """Two people, three keypoints; the distances are 3-4-5 triangles worked out by hand."""
    gt = np.array([[[0, 0], [10, 0], [0, 10]], [[100, 100], [110, 100], [100, 110]]], dtype=float)
    pred = np.array([[[3, 4], [10, 0], [0, 30]], [[100, 106], [113, 104], [100, 110]]], dtype=float)
    # errors: person 0: 5, 0, 20 (unlabelled); person 1: 6, 5, 0
    visible = np.array([[2, 1, 0], [2, 2, 2]])
    return pred, gt, visible


def test_pck_counts_labelled_joints_and_pools_them():
    pred, gt, visible = _two_people()
    result = pck(pred, gt, visible, norm=np.array([20.0, 10.0]), threshold=0.5)  # radii 10 and 5
    # person 0: 5 <= 10 yes, 0 yes (v=1 still counts), third not labelled;
    # person 1: 6 <= 5 no, 5 <= 5 yes (the bound is included), 0 yes.
    np.testing.assert_array_equal(result.correct, [[True, True, False], [False, True, True]])
    np.testing.assert_array_equal(result.labelled, [[True, True, False], [True, True, True]])
    assert result.mean == pytest.approx(4 / 5)  # pooled over the 5 labelled joints
    np.testing.assert_allclose(result.per_keypoint, [1 / 2, 2 / 2, 1 / 1])
    # MMPose would average the per-keypoint numbers instead: (0.5 + 1 + 1) / 3 != 0.8
    assert np.mean(result.per_keypoint) == pytest.approx(5 / 6)


def test_pck_accepts_boolean_visibility_and_reports_names():
    pred, gt, visible = _two_people()
    result = pck(pred, gt, visible > 0, np.array([20.0, 10.0]), 0.5, names=("a", "b", "c"))
    assert result.mean == pytest.approx(4 / 5) and result.names == ("a", "b", "c")
    coco = pck(np.zeros((1, 17, 2)), np.zeros((1, 17, 2)), np.ones((1, 17)), np.ones(1), 0.1)
    assert coco.names == COCO_KEYPOINTS and coco.mean == 1.0


def test_per_keypoint_is_nan_for_a_keypoint_never_labelled():
    pred, gt, visible = _two_people()
    visible[:, 2] = 0
    result = pck(pred, gt, visible, np.array([20.0, 10.0]), 0.5)
    assert np.isnan(result.per_keypoint[2]) and result.mean == pytest.approx(3 / 4)


def test_pckh_uses_six_tenths_of_the_head_box_diagonal():
    head_boxes = np.array([[0, 0, 30, 40]], dtype=float)  # diagonal 50 -> head size 30
    assert head_size(head_boxes)[0] == pytest.approx(30.0)
    gt = np.zeros((1, 2, 2))
    pred = np.array([[[9, 12], [9, 12.1]]])  # 15 px (= 0.5 * 30) and just over
    result = pckh(pred, gt, np.ones((1, 2)), head_boxes)
    np.testing.assert_array_equal(result.correct, [[True, False]])


def test_pdj_with_the_torso_diameter_of_deeppose():
    gt = np.zeros((1, 17, 2))
    gt[0, 5] = [0, 0]  # left shoulder
    gt[0, 12] = [30, 40]  # right hip: torso diameter 50
    visible = np.full((1, 17), 2)
    diameter = torso_diameter(gt, visible)
    assert diameter[0] == pytest.approx(50.0)
    pred = gt.copy()
    pred[0, 0] += [6, 8]  # 10 px = 0.2 * 50: detected
    pred[0, 1] += [6, 9]  # just over: missed
    result = pdj(pred, gt, visible, diameter, threshold=0.2)
    assert result.correct[0, 0] and not result.correct[0, 1]
    assert result.mean == pytest.approx(16 / 17)


def test_torso_diameter_refuses_people_without_the_joints_or_seen_from_the_side():
    gt = np.zeros((2, 17, 2))
    gt[:, 12] = [3, 4]
    visible = np.full((2, 17), 2)
    visible[1, 5] = 0
    with pytest.raises(ValueError, match=r"people \[1\]"):
        torso_diameter(gt, visible)
    sideways = np.zeros((1, 17, 2))  # shoulder and hip on top of each other
    with pytest.raises(ValueError, match="zero"):
        torso_diameter(sideways)


def test_box_normalisers():
    boxes = np.array([[5, 5, 3, 4], [0, 0, 10, 2]], dtype=float)
    np.testing.assert_allclose(bbox_size(boxes), [4, 10])
    np.testing.assert_allclose(box_diagonal(boxes), [5, math.hypot(10, 2)])
    np.testing.assert_allclose(head_size(boxes), [3, 0.6 * math.hypot(10, 2)])
    with pytest.raises(ValueError, match="width and height"):
        box_diagonal(np.array([[0, 0, 0, 4.0]]))


def test_pck_auc_is_the_normalised_trapezoid_area():
    gt = np.zeros((1, 1, 2))
    pred = np.array([[[2.0, 0.0]]])  # error 2 px, norm 10: correct from threshold 0.2 on
    curve = pck_auc(pred, gt, np.ones((1, 1)), np.array([10.0]), thresholds=[0, 0.1, 0.2, 0.3, 0.4])
    np.testing.assert_array_equal(curve.curve, [0, 0, 1, 1, 1])
    # trapezoids: 0 + 0.1 * 0.5 + 0.1 * 1 + 0.1 * 1 = 0.25, over the width 0.4
    assert curve.mean == pytest.approx(0.625)
    assert curve.per_keypoint[0] == pytest.approx(0.625)
    assert curve.correct.shape == (5, 1, 1)
    perfect = pck_auc(gt, gt, np.ones((1, 1)), np.array([10.0]))
    assert perfect.mean == pytest.approx(1.0)


def test_pck_is_monotonic_in_the_threshold():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 100, (20, 17, 2))
    pred = gt + rng.normal(0, 5, gt.shape)
    visible = rng.integers(0, 3, (20, 17))
    norm = rng.uniform(20, 60, 20)
    curve = pck_auc(pred, gt, visible, norm)
    assert np.all(np.diff(curve.curve) >= 0)
    # the pooled mean is the labelled-weighted mean of the per-keypoint ratios
    one = pck(pred, gt, visible, norm, 0.2)
    counts = (visible > 0).sum(axis=0)
    assert one.mean == pytest.approx(np.nansum(one.per_keypoint * counts) / counts.sum())


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda p, g, v, n: pck(p, g, v, n, 0.5), None),
        (lambda p, g, v, n: pck(p[:, :2], g, v, n, 0.5), "gt must have shape"),
        (lambda p, g, v, n: pck(p, g, v, n[:1], 0.5), "norm must have shape"),
        (lambda p, g, v, n: pck(p, g, v, -n, 0.5), "norm must be > 0"),
        (lambda p, g, v, n: pck(p * np.nan, g, v, n, 0.5), "pred contains NaN"),
        (lambda p, g, v, n: pck(p, g, v, n, -0.1), "threshold"),
        (lambda p, g, v, n: pck(p, g, 0 * v, n, 0.5), "nothing to score"),
        (lambda p, g, v, n: pck(p, g, v, n, 0.5, names=("x",)), "names"),
        (lambda p, g, v, n: pck_auc(p, g, v, n, thresholds=[0.3, 0.1]), "increasing"),
    ],
)
def test_pck_family_rejects_bad_input(call, match):
    pred, gt, visible = _two_people()
    norm = np.array([20.0, 10.0])
    if match is None:
        call(pred, gt, visible, norm)
    else:
        with pytest.raises(ValueError, match=match):
            call(pred, gt, visible, norm)


# --------------------------------------------------------------------------- PCP
def _two_arms():
    """Limb (0, 1): 10 px long for person 0, 20 px for person 1."""
    gt = np.array([[[0, 0], [10, 0]], [[0, 0], [20, 0]]], dtype=float)
    pred = gt + np.array([[[4, 0], [0, 6]], [[8, 0], [0, 9]]])  # endpoint errors (4, 6) and (8, 9)
    return pred, gt, np.full((2, 2), 2)


def test_strict_pcp_needs_both_endpoints_within_half_the_limb():
    pred, gt, visible = _two_arms()
    result = pcp(pred, gt, visible, limbs={"arm": (0, 1)}, threshold=0.5)
    # person 0: radius 5; errors 4 and 6 -> wrong (loose PCP, mean error 5, would accept it)
    # person 1: radius 10; errors 8 and 9 -> right
    np.testing.assert_array_equal(result.correct, [[False], [True]])
    np.testing.assert_allclose(result.radius, [[5], [10]])
    assert result.mean == 0.5 and result.names == ("arm",)


def test_pcpm_uses_the_mean_limb_length_of_the_set():
    pred, gt, visible = _two_arms()
    result = pcpm(pred, gt, visible, limbs=[(0, 1)], threshold=0.5)
    # mean length (10 + 20) / 2 = 15 -> radius 7.5 for both people
    np.testing.assert_allclose(result.radius, [[7.5], [7.5]])
    np.testing.assert_array_equal(result.correct, [[True], [False]])
    assert result.names == ("0-1",)


def test_pcp_skips_limbs_with_an_unlabelled_endpoint_and_defaults_to_coco_limbs():
    rng = np.random.default_rng(1)
    gt = rng.uniform(0, 200, (3, 17, 2))
    visible = np.full((3, 17), 2)
    visible[0, 9] = 0  # left wrist: left lower arm of person 0 not counted
    result = pcp(gt, gt, visible)
    assert result.names == tuple(COCO_PCP_LIMBS)
    lower_arm = result.names.index("left_lower_arm")
    assert not result.labelled[0, lower_arm] and result.labelled[1:, lower_arm].all()
    assert result.mean == 1.0 and result.labelled.sum() == 3 * len(COCO_PCP_LIMBS) - 1


def test_pcp_rejects_bad_limbs_and_thresholds():
    pred, gt, visible = _two_arms()
    with pytest.raises(ValueError, match="limbs"):
        pcp(pred, gt, visible, limbs=[(0, 5)])
    with pytest.raises(ValueError, match="threshold"):
        pcpm(pred, gt, visible, limbs=[(0, 1)], threshold=0)


# --------------------------------------------------------------------------- OKS
def _hand_oks(pred, gt, visible, area, sigmas=COCO_SIGMAS):
    """OKS written straight from the COCO definition, one keypoint at a time."""
    terms = []
    for (px, py), (gx, gy), v, sigma in zip(pred, gt, visible, sigmas):
        if v > 0:
            k = 2 * sigma
            terms.append(math.exp(-((px - gx) ** 2 + (py - gy) ** 2) / (2 * area * k**2)))
    return sum(terms) / len(terms)


def test_oks_of_one_keypoint_at_one_scale_constant_is_exp_minus_one_half():
    gt = np.full((17, 2), 50.0)
    visible = np.zeros(17)
    visible[0] = 2  # only the nose, sigma 0.026, k = 0.052
    area = 100.0**2  # s = 100
    pred = gt.copy()
    pred[0, 0] += 100 * 0.052  # d = s k: exp(-d^2 / (2 s^2 k^2)) = exp(-1/2)
    assert object_keypoint_similarity(pred, gt, visible, area) == pytest.approx(math.exp(-0.5), rel=1e-12)


def test_oks_averages_only_labelled_keypoints():
    gt = np.full((17, 2), 50.0)
    visible = np.zeros(17)
    visible[[0, 5]] = [2, 1]  # nose exact, left shoulder with a term of exactly 1/2
    area = 4000.0
    d = math.sqrt(2 * area * (2 * 0.079) ** 2 * math.log(2))
    pred = gt.copy()
    pred[5, 1] += d
    pred[10] += 500  # unlabelled keypoints do not matter
    assert object_keypoint_similarity(pred, gt, visible, area) == pytest.approx(0.75, rel=1e-12)


def test_oks_of_a_ground_truth_without_keypoints_uses_the_doubled_box():
    gt = np.zeros((17, 2))
    visible = np.zeros(17)
    box = np.array([100.0, 100.0, 50.0, 20.0])  # enlarged: x in [50, 200], y in [80, 140]
    inside = np.full((17, 2), [60.0, 130.0])
    assert object_keypoint_similarity(inside, gt, visible, 1000.0, gt_box=box) == 1.0
    outside = np.full((17, 2), [210.0, 140.0])  # 10 px right of the enlarged box
    expected = np.mean([math.exp(-(10.0**2) / (2 * 1000.0 * (2 * s) ** 2)) for s in COCO_SIGMAS])
    got = object_keypoint_similarity(outside, gt, visible, 1000.0, gt_box=box)
    assert got == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="gt_box"):
        object_keypoint_similarity(outside, gt, visible, 1000.0)


def test_oks_batch_matches_the_hand_formula_and_the_matrix_version():
    rng = np.random.default_rng(2)
    gt = rng.uniform(0, 300, (6, 17, 2))
    pred = gt + rng.normal(0, 8, gt.shape)
    visible = rng.integers(0, 3, (6, 17))
    visible[:, 0] = 2
    area = rng.uniform(500, 20000, 6)
    paired = object_keypoint_similarity(pred, gt, visible, area)
    for n in range(6):
        assert paired[n] == pytest.approx(_hand_oks(pred[n], gt[n], visible[n], area[n]), rel=1e-12)
    matrix = oks_matrix(pred, gt, visible, area)
    np.testing.assert_array_equal(np.diag(matrix), paired)
    assert matrix.shape == (6, 6) and np.all((matrix >= 0) & (matrix <= 1))


def test_oks_matrix_is_bit_identical_to_pycocotools_compute_oks():
    pytest.importorskip("pycocotools")
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(3)
    gt = rng.uniform(0, 300, (7, 17, 2))
    visible = rng.integers(0, 3, (7, 17))
    visible[6] = 0  # one ground truth without labelled keypoints
    area = rng.uniform(300, 30000, 7)
    boxes = np.column_stack([rng.uniform(0, 200, (7, 2)), rng.uniform(20, 120, (7, 2))])
    pred = np.concatenate([gt + rng.normal(0, 6, gt.shape), rng.uniform(0, 300, (5, 17, 2))])
    evaluator = COCOeval(iouType="keypoints")
    evaluator._gts[1, 1] = [
        {"keypoints": np.column_stack([gt[g], visible[g]]).ravel().tolist(), "bbox": boxes[g].tolist(), "area": area[g]}
        for g in range(7)
    ]
    evaluator._dts[1, 1] = [
        {"keypoints": np.column_stack([p, np.ones(17)]).ravel().tolist(), "score": 1.0} for p in pred
    ]
    expected = evaluator.computeOks(1, 1)
    got = oks_matrix(pred, gt, visible, area, gt_boxes=boxes)
    assert np.array_equal(got, expected)  # to the last bit, not approximately


def test_numpy_order_summation_is_exact_for_every_count():
    rng = np.random.default_rng(4)
    values = np.exp(-rng.exponential(3, (4000, 17)))
    counted = rng.random((4000, 17)) < rng.random((4000, 1))
    got = _sum_like_numpy(values, counted)
    expected = np.array([np.sum(row[mask]) for row, mask in zip(values, counted)])
    assert np.array_equal(got, expected)


def test_oks_rejects_bad_input():
    gt = np.zeros((17, 2))
    with pytest.raises(ValueError, match="area must be > 0"):
        object_keypoint_similarity(gt, gt, np.ones(17), 0.0)
    with pytest.raises(ValueError, match="visibility must have shape"):
        object_keypoint_similarity(gt, gt, np.ones(16), 10.0)
    with pytest.raises(ValueError, match="sigmas"):
        object_keypoint_similarity(gt, gt, np.ones(17), 10.0, sigmas=np.ones(16))
    with pytest.raises(ValueError, match="NaN"):
        oks_matrix(gt[None] * np.nan, gt[None], np.ones((1, 17)), np.ones(1))


# --------------------------------------------------------------------------- NMS and rescoring
def _official_oks_nms(keypoints, scores, areas, threshold, keypoint_scores=None, in_vis_thre=None):
    """The loop of the SimpleBaseline/HRNet nms.py, restated: ``order = scores.argsort()[::-1]``.

    (With the NumPy of the official code, argsort kept equal scores in index order; the
    reversal then puts the later pose first among ties.)
    """
    variances = (COCO_SIGMAS * 2) ** 2
    order = list(np.argsort(scores, kind="stable")[::-1])
    keep = []
    while order:
        i, rest = order[0], order[1:]
        keep.append(i)
        survivors = []
        for j in rest:
            d2 = np.sum((keypoints[j] - keypoints[i]) ** 2, axis=1)
            e = d2 / variances / ((areas[i] + areas[j]) / 2 + np.spacing(1)) / 2
            if in_vis_thre is not None:
                e = e[list(keypoint_scores[i] > in_vis_thre) and list(keypoint_scores[j] > in_vis_thre)]
            oks = np.sum(np.exp(-e)) / e.shape[0] if e.shape[0] != 0 else 0.0
            if oks <= threshold:
                survivors.append(j)
        order = survivors
    return keep


def test_oks_nms_drops_a_near_duplicate_and_keeps_a_distant_pose():
    rng = np.random.default_rng(5)
    a = rng.uniform(100, 200, (17, 2))
    poses = np.stack([a, a + 1.0, a + 300.0])
    keep = oks_nms(poses, np.array([0.9, 0.8, 0.7]), np.full(3, 5000.0), threshold=0.9)
    assert keep.tolist() == [0, 2]
    keep = oks_nms(poses, np.array([0.5, 0.8, 0.7]), np.full(3, 5000.0), threshold=0.9)
    assert keep.tolist() == [1, 2]


@pytest.mark.parametrize("in_vis_thre", [None, 0.5])
def test_oks_nms_agrees_with_the_official_loop(in_vis_thre):
    rng = np.random.default_rng(6)
    for _ in range(20):
        centres = rng.uniform(0, 100, (4, 1, 2))
        poses = np.repeat(centres, 3, axis=0) + rng.normal(0, 4, (12, 17, 2))
        scores = np.round(rng.random(12), 1)  # with ties
        areas = rng.uniform(500, 3000, 12)
        confidences = rng.random((12, 17))
        keep = oks_nms(poses, scores, areas, 0.5, keypoint_scores=confidences, keypoint_threshold=in_vis_thre)
        assert keep.tolist() == _official_oks_nms(poses, scores, areas, 0.5, confidences, in_vis_thre)


def test_grmi_rescore_multiplies_the_box_score_by_the_mean_confident_keypoint_score():
    box = np.array([0.8, 0.9])
    keypoint_scores = np.array([[0.1, 0.5, 0.9], [0.1, 0.2, 0.15]])
    # person 0: mean of 0.5 and 0.9 = 0.7 -> 0.56; person 1: nothing above 0.2 -> 0
    np.testing.assert_allclose(grmi_rescore(box, keypoint_scores, threshold=0.2), [0.56, 0.0])
    with pytest.raises(ValueError, match="keypoint_scores must have shape"):
        grmi_rescore(box, keypoint_scores[:1])


# --------------------------------------------------------------------------- the reference implementations' exact rules
def test_pckh_at_an_exact_tie_counts_as_hrnets_mpii_evaluation_does():
    # 0.6 * sqrt(72^2 + 75^2) as np.linalg.norm computes it; d / s is then exactly 0.5 (np.hypot: 0.5000000000000001)
    gt = np.zeros((1, 1, 2))
    pred = np.array([[[31.18990221209422, 0.0]]])
    head = np.array([[10.0, 20.0, 72.0, 75.0]])
    hrnet_scale = np.linalg.norm(head[:, 2:], axis=1) * 0.6
    assert 31.18990221209422 / hrnet_scale[0] <= 0.5  # lib/dataset/mpii.py: scaled_uv_err <= threshold
    assert pckh(pred, gt, [[2]], head, 0.5).mean == 1.0
    np.testing.assert_array_equal(head_size(head), hrnet_scale)


def test_pck_divides_the_distance_by_the_normaliser_before_comparing():
    # with the box diagonal of 104 x 37, d / s = 0.2000000000000001 > 0.2 although d <= 0.2 * s
    diagonal = box_diagonal([[0, 0, 104, 37]])
    d = 22.07713749560844
    assert d / diagonal[0] > 0.2 and d <= 0.2 * diagonal[0]
    pred, gt = np.array([[[d, 0.0]]]), np.zeros((1, 1, 2))
    assert pck(pred, gt, [[2]], diagonal, 0.2).mean == 0.0
    assert pdj(pred, gt, [[2]], diagonal, 0.2).mean == 0.0


def test_visibility_flags_other_than_0_1_2_are_an_error_not_a_labelled_joint():
    pred = gt = np.zeros((1, 3, 2))
    with pytest.raises(ValueError, match=r"visible must hold COCO visibility flags 0, 1 or 2.*got 7 at index \(0, 1\)"):
        pck(pred, gt, [[2, 7, 0]], [10.0], 0.2)
    with pytest.raises(ValueError, match="visible must hold COCO visibility flags"):
        pcp(pred, gt, [[2, -1, 0]], [(0, 1)])
    assert pck(pred, gt, [[True, False, True]], [10.0], 0.2).mean == 1.0


def test_oks_nms_keeps_the_later_of_equal_scores_first_as_the_official_code():
    a = np.random.default_rng(3).uniform(100, 200, (17, 2))
    poses = np.stack([a, a + 0.5, a + 300.0, a + 300.2])
    keep = oks_nms(poses, np.array([0.8, 0.8, 0.6, 0.6]), np.full(4, 5000.0), threshold=0.9)
    assert keep.tolist() == [1, 3]  # order = scores.argsort()[::-1]: pose 1 before pose 0, 3 before 2
    keep = oks_nms(poses[:2], np.array([0.8, 0.8]), np.full(2, 5000.0), threshold=0.9, keypoint_scores=np.ones((2, 17)),
                   keypoint_threshold=0.5)
    assert keep.tolist() == [1]


def test_keypoint_error_classes_of_ronchi_and_perona():
    from course_lib.keypoints import COCO_KEYPOINTS, COCO_SIGMAS
    from course_lib.metrics import ERROR_CLASSES, error_class_shares, keypoint_error_classes

    rng = np.random.default_rng(3)
    gt = rng.uniform(0, 200, (3, 17, 2))
    gt[2] = gt[0] + [400.0, 0.0]  # person 2, far to the right of person 0
    visibility = np.full((3, 17), 2)
    visibility[1, 3] = 0
    areas = np.full(3, 4000.0)
    pred = gt.copy()
    wrist, other_wrist = COCO_KEYPOINTS.index("left_wrist"), COCO_KEYPOINTS.index("right_wrist")
    k = 2 * COCO_SIGMAS[wrist]

    def offset(ks):  # the distance at which the keypoint similarity is ks
        return np.sqrt(-2 * areas[0] * k**2 * np.log(ks))

    pred[0, wrist] += [offset(0.9), 0.0]  # good (ks 0.9)
    pred[1, wrist] += [offset(0.6), 0.0]  # jitter (ks 0.6)
    pred[1, other_wrist] = gt[1, wrist]  # inversion: the right wrist on the left one
    pred[1, 0] += [500.0, 0.0]  # miss: far from everything
    codes = keypoint_error_classes(pred, gt, visibility, areas, image_ids=np.array([7, 8, 9]))
    assert codes[0, wrist] == ERROR_CLASSES.index("good")
    assert codes[1, wrist] == ERROR_CLASSES.index("jitter")
    assert codes[1, other_wrist] == ERROR_CLASSES.index("inversion")
    assert codes[1, 0] == ERROR_CLASSES.index("miss")
    assert codes[1, 3] == -1
    # person 0's left shoulder on person 2's: a swap when they share an image, else a miss
    pred[0, 5] = gt[2, 5]
    alone = keypoint_error_classes(pred, gt, visibility, areas)
    together = keypoint_error_classes(pred, gt, visibility, areas, image_ids=np.array([7, 8, 7]))
    assert alone[0, 5] == ERROR_CLASSES.index("miss")
    assert together[0, 5] == ERROR_CLASSES.index("swap")
    assert (np.delete(together, 5, axis=1) == np.delete(alone, 5, axis=1)).all()
    shares = error_class_shares(codes)
    assert sum(shares.values()) == pytest.approx(1.0) and shares["miss"] == pytest.approx(1 / 50)
    with pytest.raises(ValueError, match="areas"):
        keypoint_error_classes(pred, gt, visibility, np.array([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="no labelled keypoint"):
        error_class_shares(np.full((2, 3), -1))
