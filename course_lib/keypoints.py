"""Keypoint sets: names, skeletons, left/right flip pairs, OKS constants, conversions.

Three keypoint sets appear in the course:

* **COCO-17** (Lin et al. 2014): the set every chapter trains on.  Order and names as in
  ``person_keypoints_*.json``; ``COCO_SIGMAS`` are the per-keypoint OKS constants of
  pycocotools (``cocoeval.py``, ``Params.setKpParams``).
* **MPII-16** (Andriluka et al. 2014): the single-person benchmark that PCKh comes from.
* **LSP-14** (Johnson & Everingham 2010): the 14-point skeleton of the lecture notes and of
  DeepPose's LSP experiments.

Every table uses 0-based indices (COCO's own JSON ``skeleton`` is 1-based; we add 1 when we
write it, see :func:`coco_category`).  "Left" means the person's left, which appears on
the *right* of the image for a person facing the camera.
"""

from __future__ import annotations

import numpy as np

# --------------------------------------------------------------------------- COCO-17
COCO_KEYPOINTS: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

# Limbs drawn between keypoints, as in COCO's category "skeleton" (converted to 0-based).
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12),  # legs and hips
    (5, 11), (6, 12), (5, 6),                            # torso
    (5, 7), (6, 8), (7, 9), (8, 10),                     # arms
    (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),  # face and ears to shoulders
)

# Pairs (left, right) that swap when the image is mirrored.
COCO_FLIP_PAIRS: tuple[tuple[int, int], ...] = (
    (1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16),
)

# Per-keypoint OKS constants sigma_i exactly as pycocotools stores them.  The COCO paper
# writes OKS with k_i = 2 sigma_i: exp(-d_i^2 / (2 s^2 k_i^2)), i.e. variance (2 sigma_i)^2.
COCO_SIGMAS: np.ndarray = np.array(
    [0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62,
     1.07, 1.07, 0.87, 0.87, 0.89, 0.89]
) / 10.0
COCO_SIGMAS.setflags(write=False)

# Limbs scored by PCP on COCO keypoints (name -> (joint a, joint b)).  COCO has no neck or
# head-top, so the torso is scored as its two sides.
COCO_PCP_LIMBS: dict[str, tuple[int, int]] = {
    "left_upper_arm": (5, 7),
    "right_upper_arm": (6, 8),
    "left_lower_arm": (7, 9),
    "right_lower_arm": (8, 10),
    "left_upper_leg": (11, 13),
    "right_upper_leg": (12, 14),
    "left_lower_leg": (13, 15),
    "right_lower_leg": (14, 16),
    "left_torso": (5, 11),
    "right_torso": (6, 12),
}

# DeepPose's torso diameter: "the distance between opposing joints on the human torso,
# such as left shoulder and right hip".
COCO_TORSO_DIAMETER_PAIR: tuple[int, int] = (5, 12)

# --------------------------------------------------------------------------- MPII-16
MPII_KEYPOINTS: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "pelvis",
    "thorax",
    "upper_neck",
    "head_top",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
)
MPII_SKELETON: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 6), (3, 6), (3, 4), (4, 5),
    (6, 7), (7, 8), (8, 9),
    (7, 12), (12, 11), (11, 10), (7, 13), (13, 14), (14, 15),
)
MPII_FLIP_PAIRS: tuple[tuple[int, int], ...] = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))

# --------------------------------------------------------------------------- LSP-14
LSP_KEYPOINTS: tuple[str, ...] = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "neck",
    "head_top",
)
LSP_SKELETON: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (3, 4), (4, 5), (2, 3),
    (6, 7), (7, 8), (9, 10), (10, 11), (8, 9),
    (8, 2), (9, 3), (12, 13), (8, 12), (9, 12),
)
LSP_FLIP_PAIRS: tuple[tuple[int, int], ...] = ((0, 5), (1, 4), (2, 3), (6, 11), (7, 10), (8, 9))

KEYPOINT_SETS: dict[str, tuple[str, ...]] = {
    "coco": COCO_KEYPOINTS,
    "mpii": MPII_KEYPOINTS,
    "lsp": LSP_KEYPOINTS,
}


def flip_permutation(num_keypoints: int, flip_pairs: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Index array ``perm`` such that ``keypoints[..., perm, :]`` swaps left and right.

    The permutation is an involution: applying it twice is the identity.
    """
    perm = np.arange(num_keypoints)
    for left, right in flip_pairs:
        perm[left], perm[right] = right, left
    return perm


def correspondence(source: str, target: str) -> dict[int, int]:
    """Map ``source index -> target index`` for joints with the same name in both sets.

    Only joints that truly correspond are mapped: COCO has no neck, pelvis or head-top,
    MPII and LSP have no eyes, ears or nose.
    """
    names = _keypoint_set(source, "source")
    target_names = _keypoint_set(target, "target")
    index = {name: i for i, name in enumerate(target_names)}
    return {i: index[name] for i, name in enumerate(names) if name in index}


def convert_keypoints(
    keypoints: np.ndarray, visibility: np.ndarray, source: str, target: str
) -> tuple[np.ndarray, np.ndarray]:
    """Convert ``(..., K_source, 2)`` keypoints and ``(..., K_source)`` visibility to another set.

    Joints of the target set that have no counterpart in the source set come out as
    ``(0, 0)`` with visibility 0 (COCO's "not labelled").
    """
    from course_lib.validation import check_array

    names = _keypoint_set(source, "source")
    target_names = _keypoint_set(target, "target")
    keypoints = check_array(keypoints, "keypoints", (..., len(names), 2), finite=True)
    visibility = check_array(visibility, "visibility", keypoints.shape[:-1], finite=True)
    out_kpts = np.zeros(keypoints.shape[:-2] + (len(target_names), 2), dtype=keypoints.dtype)
    out_vis = np.zeros(keypoints.shape[:-2] + (len(target_names),), dtype=visibility.dtype)
    for s, t in correspondence(source, target).items():
        out_kpts[..., t, :] = keypoints[..., s, :]
        out_vis[..., t] = visibility[..., s]
    return out_kpts, out_vis


def coco_category() -> dict:
    """The COCO ``categories`` entry for people, with the 1-based skeleton COCO uses."""
    return {
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "keypoints": list(COCO_KEYPOINTS),
        "skeleton": [[a + 1, b + 1] for a, b in COCO_SKELETON],
    }


def _keypoint_set(name: str, argument: str) -> tuple[str, ...]:
    if name not in KEYPOINT_SETS:
        raise ValueError(f"{argument} must be one of {sorted(KEYPOINT_SETS)}, got {name!r}")
    return KEYPOINT_SETS[name]
