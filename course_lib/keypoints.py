"""Keypoint sets: names, skeletons, left/right flip pairs, OKS constants, conversions.

Three keypoint sets appear in the course:

* **COCO-17** (Lin et al. 2014): the set every chapter trains on.  Order and names as in
  ``person_keypoints_*.json``; ``COCO_SIGMAS`` are the per-keypoint OKS constants of
  pycocotools (``cocoeval.py``, ``Params.setKpParams``).
* **MPII-16** (Andriluka et al. 2014): the single-person benchmark that PCKh comes from.
* **LSP-14** (Johnson & Everingham 2010): the 14-point skeleton of DeepPose's LSP
  experiments (chapter 01's worked example uses it).

Every table uses 0-based indices (COCO's own JSON ``skeleton`` is 1-based; we add 1 when we
write it, see :func:`coco_category`).  "Left" means the person's left, which appears on
the *right* of the image for a person facing the camera.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from course_lib.validation import check_integer, check_pair

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

# Limbs scored by PCP on COCO keypoints (name -> (joint a, joint b)).  LSP's PCP scores ten
# parts: the eight limbs, the torso (neck to pelvis) and the head (neck to head top).  COCO has
# no neck or head-top, so COCO-PCP replaces those two by the torso's two sides (shoulder to hip,
# left and right): its numbers are not comparable with LSP's PCP.
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

    The permutation is an involution: applying it twice is the identity.  ``flip_pairs`` is
    checked first (:func:`check_flip_pairs`): a pair that does not fit ``num_keypoints``
    raises a ValueError that names it.
    """
    perm = np.arange(check_integer(num_keypoints, "num_keypoints", minimum=0))
    for left, right in check_flip_pairs(flip_pairs, num_keypoints):
        perm[left], perm[right] = right, left
    return perm


def check_flip_pairs(flip_pairs: Any, num_keypoints: int) -> tuple[tuple[int, int], ...]:
    """``flip_pairs`` as a tuple of ``(left, right)`` index pairs that fit ``num_keypoints``.

    Each pair holds two different keypoint indices in ``[0, K - 1]``, and a joint is in at
    most one pair (a permutation that swaps it twice would not be a mirror).

    Raises:
        ValueError: naming the pair and ``K``, e.g. COCO's pairs given to a 16-joint MPII pose.
    """
    if isinstance(flip_pairs, (str, bytes)) or not hasattr(flip_pairs, "__iter__"):
        raise ValueError(f"flip_pairs must be a sequence of (left, right) index pairs, got {flip_pairs!r}")
    pairs, seen = [], set()
    for number, pair in enumerate(flip_pairs):
        try:
            left, right = check_pair(pair, f"flip_pairs[{number}]", "(left, right)", minimum=0,
                                     maximum=num_keypoints - 1)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{error} (keypoint indices of K = {num_keypoints} keypoints)") from None
        if left == right or {left, right} & seen:
            raise ValueError(f"flip_pairs[{number}] = {tuple(pair)!r} swaps a joint with itself or one already "
                             "in another pair: each joint belongs to at most one (left, right) pair")
        seen |= {left, right}
        pairs.append((left, right))
    return tuple(pairs)


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


# --------------------------------------------------------------------------- drawing the sets
SKELETONS: dict[str, tuple[tuple[int, int], ...]] = {
    "coco": COCO_SKELETON,
    "mpii": MPII_SKELETON,
    "lsp": LSP_SKELETON,
}

# Where each named joint sits on a schematic person who faces the camera, arms a little away
# from the body, in a 120 x 200 pixel frame (x to the right, y down).  The person's left is on
# the right of the picture.  Only for drawing the keypoint sets side by side (chapter 00).
TEMPLATE_POSITIONS: dict[str, tuple[float, float]] = {
    "head_top": (60.0, 8.0),
    "nose": (60.0, 34.0),
    "left_eye": (66.0, 25.0),
    "right_eye": (54.0, 25.0),
    "left_ear": (76.0, 31.0),
    "right_ear": (44.0, 31.0),
    "upper_neck": (60.0, 44.0),
    "neck": (60.0, 47.0),
    "thorax": (60.0, 56.0),
    "left_shoulder": (80.0, 58.0),
    "right_shoulder": (40.0, 58.0),
    "left_elbow": (89.0, 89.0),
    "right_elbow": (31.0, 89.0),
    "left_wrist": (96.0, 119.0),
    "right_wrist": (24.0, 119.0),
    "pelvis": (60.0, 109.0),
    "left_hip": (71.0, 111.0),
    "right_hip": (49.0, 111.0),
    "left_knee": (73.0, 150.0),
    "right_knee": (47.0, 150.0),
    "left_ankle": (75.0, 189.0),
    "right_ankle": (45.0, 189.0),
}


def template_pose(keypoint_set: str) -> np.ndarray:
    """The schematic front-facing person of :data:`TEMPLATE_POSITIONS` in the order of a keypoint set.

    Args:
        keypoint_set: ``"coco"``, ``"mpii"`` or ``"lsp"``.

    Returns:
        ``(K, 2)`` float64 pixels ``x, y`` in a 120 x 200 frame.
    """
    names = _keypoint_set(keypoint_set, "keypoint_set")
    return np.array([TEMPLATE_POSITIONS[name] for name in names], dtype=np.float64)


# --------------------------------------------------------------------------- the COCO format
def coco_to_arrays(values) -> tuple[np.ndarray, np.ndarray]:
    """COCO's flat keypoint list -> keypoints ``(K, 2)`` and visibility ``(K,)`` (chapter 00).

    A COCO annotation stores its K keypoints as one flat list of 3K numbers,

        [x_1, y_1, v_1, x_2, y_2, v_2, ..., x_K, y_K, v_K],

    so keypoint ``k`` is ``values[3k], values[3k + 1]`` and its flag ``values[3k + 2]``
    (0 not labelled, 1 labelled but not visible, 2 labelled and visible).

    Args:
        values: a sequence of 3K numbers (list or array).

    Returns:
        keypoints ``(K, 2)`` float64 and visibility ``(K,)`` int64.
    """
    from course_lib.validation import check_array

    values = check_array(values, "values", (None,), dtype=np.float64)
    if values.size == 0 or values.size % 3:
        raise ValueError(f"values must hold 3 numbers (x, y, v) per keypoint, got {values.size} numbers")
    triplets = values.reshape(-1, 3)  # (K, 3): x, y, v
    flags = triplets[:, 2]
    if not np.isin(flags, (0, 1, 2)).all():
        raise ValueError(f"values must have visibility flags 0, 1 or 2 at every third place, got {flags.tolist()}")
    return triplets[:, :2].copy(), flags.astype(np.int64)


def arrays_to_coco(keypoints, visibility) -> list:
    """Keypoints ``(K, 2)`` and visibility ``(K,)`` -> COCO's flat list ``[x, y, v] * K`` (chapter 00).

    The inverse of :func:`coco_to_arrays`, written as COCO writes it: a keypoint that is not
    labelled (``v = 0``) is stored as ``0, 0, 0`` whatever its coordinates, flags are
    integers, and every entry is a plain Python number, so ``json.dumps`` accepts the list.

    Returns:
        a list of 3K Python numbers (floats for x and y, ints for v).
    """
    from course_lib.validation import check_array

    dims: dict[str, int] = {}
    keypoints = check_array(keypoints, "keypoints", ("K", 2), dims=dims, dtype=np.float64)
    visibility = check_array(visibility, "visibility", ("K",), dims=dims)
    if not np.isin(visibility, (0, 1, 2)).all():
        raise ValueError(f"visibility must hold the flags 0, 1 or 2, got {visibility.tolist()}")
    values: list = []
    for (x, y), v in zip(keypoints, visibility):
        labelled = v > 0
        values += [float(x) if labelled else 0.0, float(y) if labelled else 0.0, int(v)]
    return values


def keypoint_box(keypoints, visibility) -> np.ndarray:
    """The tightest box ``[x, y, w, h]`` around the labelled keypoints (``v > 0``) (chapter 00).

        x = min_i x_i,   y = min_i y_i,   w = max_i x_i - min_i x_i,   h = max_i y_i - min_i y_i

    over the keypoints with ``v_i > 0`` only: COCO writes unlabelled ones as ``(0, 0)``, and
    counting them would stretch every box to the image corner.  Keypoints are points, so one
    labelled keypoint gives a box of size 0.  (COCO's own ``bbox`` encloses the person's
    segment, so it is larger: it holds the head and the hands, not only their joints.)

    Args:
        keypoints: ``(K, 2)`` pixels.
        visibility: ``(K,)`` COCO flags.

    Returns:
        ``(4,)`` float64 ``[x, y, w, h]``.
    """
    from course_lib.validation import check_array

    dims: dict[str, int] = {}
    keypoints = check_array(keypoints, "keypoints", ("K", 2), dims=dims, dtype=np.float64)
    visibility = check_array(visibility, "visibility", ("K",), dims=dims)
    labelled = keypoints[visibility > 0]  # (L, 2)
    if len(labelled) == 0:
        raise ValueError("visibility marks no keypoint as labelled (v > 0): there is no box to draw")
    low, high = labelled.min(axis=0), labelled.max(axis=0)
    return np.concatenate([low, high - low])
