import numpy as np
import pytest

from course_lib import keypoints as kp


def test_coco_tables_have_the_right_sizes():
    assert len(kp.COCO_KEYPOINTS) == 17
    assert len(kp.COCO_SIGMAS) == 17
    assert len(kp.COCO_SKELETON) == 19
    assert len(kp.MPII_KEYPOINTS) == 16
    assert len(kp.LSP_KEYPOINTS) == 14


def test_sigmas_equal_pycocotools():
    from pycocotools.cocoeval import Params

    np.testing.assert_array_equal(kp.COCO_SIGMAS, Params(iouType="keypoints").kpt_oks_sigmas)


@pytest.mark.parametrize(
    "names, pairs",
    [(kp.COCO_KEYPOINTS, kp.COCO_FLIP_PAIRS), (kp.MPII_KEYPOINTS, kp.MPII_FLIP_PAIRS), (kp.LSP_KEYPOINTS, kp.LSP_FLIP_PAIRS)],
)
def test_flip_pairs_are_an_involution_that_swaps_left_and_right(names, pairs):
    perm = kp.flip_permutation(len(names), pairs)
    np.testing.assert_array_equal(perm[perm], np.arange(len(names)))
    for i, j in enumerate(perm):
        name = names[i]
        if name.startswith("left_"):
            assert names[j] == "right_" + name[5:]
        elif name.startswith("right_"):
            assert names[j] == "left_" + name[6:]
        else:
            assert j == i, f"{name} has no side and must map to itself"


@pytest.mark.parametrize("names, pairs", [(kp.COCO_KEYPOINTS, kp.COCO_FLIP_PAIRS), (kp.MPII_KEYPOINTS, kp.MPII_FLIP_PAIRS), (kp.LSP_KEYPOINTS, kp.LSP_FLIP_PAIRS)])
def test_every_sided_joint_has_a_flip_partner(names, pairs):
    paired = {i for pair in pairs for i in pair}
    sided = {i for i, n in enumerate(names) if n.startswith(("left_", "right_"))}
    assert paired == sided


def test_skeleton_matches_the_coco_category():
    cat = kp.coco_category()
    assert cat["keypoints"] == list(kp.COCO_KEYPOINTS)
    # The official COCO person skeleton, 1-based, from person_keypoints_val2017.json.
    official = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
                [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]
    assert cat["skeleton"] == official


def test_conversion_round_trip_keeps_shared_joints_and_marks_others_unlabelled():
    rng = np.random.default_rng(0)
    coco = rng.uniform(0, 100, size=(3, 17, 2))
    vis = np.full((3, 17), 2)
    mpii, mpii_vis = kp.convert_keypoints(coco, vis, "coco", "mpii")
    assert mpii.shape == (3, 16, 2)
    head_top = kp.MPII_KEYPOINTS.index("head_top")
    assert (mpii_vis[:, head_top] == 0).all() and (mpii[:, head_top] == 0).all()
    lw_m = kp.MPII_KEYPOINTS.index("left_wrist")
    np.testing.assert_array_equal(mpii[:, lw_m], coco[:, kp.COCO_KEYPOINTS.index("left_wrist")])
    back, back_vis = kp.convert_keypoints(mpii, mpii_vis, "mpii", "coco")
    shared = [kp.COCO_KEYPOINTS.index(n) for n in kp.MPII_KEYPOINTS if n in kp.COCO_KEYPOINTS]
    assert len(shared) == 12
    np.testing.assert_array_equal(back[:, shared], coco[:, shared])
    assert (back_vis[:, kp.COCO_KEYPOINTS.index("nose")] == 0).all()
    lsp, _ = kp.convert_keypoints(coco[0], vis[0], "coco", "lsp")
    assert lsp.shape == (14, 2)


def test_conversion_rejects_bad_input():
    with pytest.raises(ValueError, match="keypoints must have shape"):
        kp.convert_keypoints(np.zeros((16, 2)), np.zeros(16), "coco", "mpii")
    with pytest.raises(ValueError, match="source must be one of"):
        kp.convert_keypoints(np.zeros((17, 2)), np.zeros(17), "h36m", "mpii")
    bad = np.zeros((17, 2))
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        kp.convert_keypoints(bad, np.zeros(17), "coco", "lsp")


# --------------------------------------------------------------------------- flip pairs that do not fit
def test_flip_pairs_that_do_not_fit_the_keypoints_are_named():
    from course_lib.geometry import flip_keypoints
    from course_lib.heatmaps import flip_heatmaps

    np.testing.assert_array_equal(kp.flip_permutation(5, [(1, 2), (3, 4)]), [0, 2, 1, 4, 3])
    message = r"flip_pairs\[7\] must be a pair \(left, right\) of integers from 0 to 15, got \(15, 16\).*K = 16"
    with pytest.raises(ValueError, match=message):  # COCO's pairs on a 16-joint MPII pose
        kp.flip_permutation(16, kp.COCO_FLIP_PAIRS)
    with pytest.raises(ValueError, match=message):
        flip_heatmaps(np.zeros((1, 16, 4, 4)), kp.COCO_FLIP_PAIRS)
    with pytest.raises(ValueError, match=message):
        flip_keypoints(np.zeros((16, 2)), np.ones(16), 10, kp.COCO_FLIP_PAIRS)
    with pytest.raises(ValueError, match=r"flip_pairs\[1\] = \(2, 3\) .*at most one"):
        kp.flip_permutation(5, [(1, 2), (2, 3)])
    with pytest.raises(ValueError, match=r"flip_pairs\[0\]"):
        kp.flip_permutation(5, [(1, 1.5)])


def test_coco_pcp_scores_the_torso_sides_where_lsp_scores_torso_and_head():
    from course_lib.keypoints import COCO_KEYPOINTS, COCO_PCP_LIMBS

    names = {name: (COCO_KEYPOINTS[a], COCO_KEYPOINTS[b]) for name, (a, b) in COCO_PCP_LIMBS.items()}
    assert len(names) == 10 and "head" not in names and "torso" not in names
    assert names["left_torso"] == ("left_shoulder", "left_hip")
    assert names["right_torso"] == ("right_shoulder", "right_hip")
    assert all(a.split("_")[0] == b.split("_")[0] for a, b in names.values())  # no limb crosses the body
