"""Bottom-up grouping: joints into people with associative-embedding tags (chapter 09's sketch).

Newell, Huang and Deng, "Associative Embedding: End-to-End Learning for Joint Detection and
Grouping", NeurIPS 2017 (https://arxiv.org/abs/1611.05424).  A bottom-up network outputs,
for every joint type ``k``, a detection heatmap and a **tag map**: at each detected joint a
number (the "tag", a 1-D embedding) that carries no meaning by itself, but is trained to be

* the same for all joints of one person ("pull": each tag close to the person's mean tag),
* different for different people ("push": ``exp(-(h_n - h_m)^2 / (2 sigma^2))`` between the
  mean tags of two people is penalised).

Grouping then needs no geometry at all: joints whose tags agree are one person.  The official
parser (princeton-vl/pose-ae-train, ``utils/group.py``) visits the joint types in a fixed
order (head and shoulders first, then hips, arms, legs: :data:`AE_JOINT_ORDER`), and matches
the candidates of each joint type to the people found so far by tag distance, with the
Hungarian algorithm and a tag threshold of 1; a candidate that matches nobody starts a new
person.  :func:`group_by_tags` is the greedy version of that loop (each candidate, best
detection score first, takes the nearest free person), which the chapter's exercise asks for;
it gives the same people whenever the tags of different people are well apart.

Here the network is simulated (:func:`simulate_joint_detections`): the chapter shows the
grouping step, not the training of a tag network; :func:`associative_embedding_loss` is the
loss such a network is trained with (the chapter's stretch exercise).

Layout of the inputs, as the official code keeps the top ``M`` peaks of each joint map:
``locations`` ``(K, M, 2)`` image pixels, ``scores`` ``(K, M)``, ``tags`` ``(K, M)``.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from course_lib.validation import check_array, check_positive

# The official parser's order of the COCO joints: nose, eyes, ears, shoulders, hips, elbows,
# wrists, knees, ankles (``partOrder`` in pose-ae-train's utils/group.py, 0-based).
AE_JOINT_ORDER: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16)


class JointDetections(NamedTuple):
    """Joint candidates of one image, ``M`` per joint type (unused slots have score 0).

    Attributes:
        locations: ``(K, M, 2)`` image pixels ``x, y``.
        scores: ``(K, M)`` detection scores in [0, 1].
        tags: ``(K, M)`` the 1-D associative-embedding tags.
        owner: ``(K, M)`` the person each candidate really belongs to (-1: none); known only
            because the detections are simulated.
    """

    locations: np.ndarray
    scores: np.ndarray
    tags: np.ndarray
    owner: np.ndarray


def group_by_tags(
    locations: np.ndarray,
    scores: np.ndarray,
    tags: np.ndarray,
    detection_threshold: float = 0.1,
    tag_threshold: float = 1.0,
    joint_order: Sequence[int] = AE_JOINT_ORDER,
) -> np.ndarray:
    """Greedy associative-embedding grouping of joint candidates into people -> ``(P, K, 3)``.

    For each joint type ``k`` in ``joint_order``, the candidates with score
    ``> detection_threshold``, best score first (ties: lower index first), are assigned in
    turn.  A candidate with tag ``t`` joins the person, among those that do not have joint
    ``k`` yet, whose **mean tag** (the mean of the tags of its joints so far) is nearest,

        p* = argmin_p | t - mean_tag(p) |      (ties: the person found first),

    provided ``|t - mean_tag(p*)| < tag_threshold``; otherwise it starts a new person.  People
    are numbered in the order they were started.

    Args:
        locations: ``(K, M, 2)`` candidate positions, image pixels.
        scores: ``(K, M)`` candidate detection scores.
        tags: ``(K, M)`` candidate tags.
        detection_threshold: candidates scoring at most this are ignored.
        tag_threshold: the largest tag distance at which a candidate still joins a person.
        joint_order: the order in which joint types are visited.

    Returns:
        ``(P, K, 3)``: for person ``p`` and joint ``k``, ``[x, y, score]``; all zeros where
        the person has no candidate of that joint.
    """
    dims: dict[str, int] = {}
    locations = check_array(locations, "locations", ("K", "M", 2), dims=dims, dtype=float)
    scores = check_array(scores, "scores", ("K", "M"), dims=dims, dtype=float)
    tags = check_array(tags, "tags", ("K", "M"), dims=dims, dtype=float)
    check_positive(detection_threshold, "detection_threshold", allow_zero=True)
    check_positive(tag_threshold, "tag_threshold")
    num_joints = dims["K"]
    joint_order = [int(k) for k in joint_order]
    if sorted(joint_order) != list(range(num_joints)):
        raise ValueError(f"joint_order must list each of the {num_joints} joints once, got {joint_order}")

    people: list[np.ndarray] = []  # each (K, 3): x, y, score
    person_tags: list[list[float]] = []  # the tags of each person's joints
    for k in joint_order:
        candidates = np.flatnonzero(scores[k] > detection_threshold)
        candidates = candidates[np.argsort(-scores[k, candidates], kind="stable")]  # best first
        for m in candidates:
            tag = tags[k, m]
            best, best_distance = -1, tag_threshold
            for p, person in enumerate(people):
                if person[k, 2] > 0:
                    continue  # this person has joint k already
                distance = abs(tag - np.mean(person_tags[p]))
                if distance < best_distance:
                    best, best_distance = p, distance
            if best < 0:
                people.append(np.zeros((num_joints, 3)))
                person_tags.append([])
                best = len(people) - 1
            people[best][k] = (locations[k, m, 0], locations[k, m, 1], scores[k, m])
            person_tags[best].append(tag)
    if not people:
        return np.zeros((0, num_joints, 3))
    return np.stack(people)


def associative_embedding_loss(tags: np.ndarray, visibility: np.ndarray, sigma: float = 1.0) -> tuple[float, float]:
    """The pull and push terms of the associative-embedding loss, for the people of one image.

    With ``h_n`` the mean tag of person ``n`` over its labelled joints (``K_n`` of them),

        pull = 1/N  sum_n  1/K_n sum_{k labelled} (tag_nk - h_n)^2
        push = 1/(N (N - 1))  sum_{n != m}  exp(-(h_n - h_m)^2 / (2 sigma^2))     (0 if N < 2)

    Pull makes a person's tags agree, push drives different people's mean tags apart.  (The
    paper sums the pull over joints and lets the push include ``n = m``, a constant; these
    averages keep both terms independent of the numbers of joints and people.)  People
    without a labelled joint are left out.

    Args:
        tags: ``(N, K)`` the tag read at each person's joints.
        visibility: ``(N, K)`` COCO flags or booleans; a joint counts where > 0.
        sigma: the push's length scale (1 in the paper).

    Returns:
        ``(pull, push)`` floats.
    """
    dims: dict[str, int] = {}
    tags = check_array(tags, "tags", ("N", "K"), dtype=float, dims=dims)
    labelled = check_array(visibility, "visibility", ("N", "K"), dims=dims, dtype=float) > 0
    sigma = check_positive(sigma, "sigma")
    people = labelled.any(axis=1)
    tags, labelled = tags[people], labelled[people]
    if len(tags) == 0:
        return 0.0, 0.0
    means = (tags * labelled).sum(axis=1) / labelled.sum(axis=1)  # (N,) h_n
    pull = float(np.mean(((tags - means[:, None]) ** 2 * labelled).sum(axis=1) / labelled.sum(axis=1)))
    if len(means) < 2:
        return pull, 0.0
    gaps = np.exp(-((means[:, None] - means[None, :]) ** 2) / (2 * sigma**2))  # (N, N)
    push = float((gaps.sum() - np.trace(gaps)) / (len(means) * (len(means) - 1)))
    return pull, push


def simulate_joint_detections(
    keypoints: np.ndarray,
    visibility: np.ndarray,
    *,
    tag_noise: float = 0.2,
    tag_spacing: float = 2.0,
    location_noise: float = 1.0,
    false_detections: int = 0,
    image_size: tuple[int, int] = (256, 256),
    max_candidates: int | None = None,
    seed: int = 0,
) -> JointDetections:
    """What a trained associative-embedding network might output for one image, made from its ground truth.

    Person ``n`` gets a reference tag ``tau_n`` (the people's tags are a shuffled
    ``0, tag_spacing, 2 tag_spacing, ...``, as the push loss spreads them apart); each of its
    labelled joints is detected at its true position plus Gaussian noise of ``location_noise``
    pixels, with a score drawn in [0.5, 1] and the tag ``tau_n + N(0, tag_noise^2)``.
    ``false_detections`` spurious candidates per joint type land anywhere with a low score
    (in [0.1, 0.4]) and a random tag.

    Args:
        keypoints: ``(N, K, 2)`` the people of the image; visibility: ``(N, K)``.
        max_candidates: ``M`` (default: enough for every candidate).

    Returns:
        :class:`JointDetections` with ``M`` candidates per joint type, in random order.
    """
    dims: dict[str, int] = {}
    keypoints = check_array(keypoints, "keypoints", ("N", "K", 2), dims=dims, dtype=float)
    visibility = check_array(visibility, "visibility", ("N", "K"), dims=dims)
    check_positive(tag_noise, "tag_noise", allow_zero=True)
    check_positive(tag_spacing, "tag_spacing")
    check_positive(location_noise, "location_noise", allow_zero=True)
    if isinstance(false_detections, bool) or not isinstance(false_detections, int) or false_detections < 0:
        raise ValueError(f"false_detections must be an int >= 0, got {false_detections!r}")
    rng = np.random.default_rng(seed)
    num_people, num_joints = dims["N"], dims["K"]
    person_tags = rng.permutation(num_people) * tag_spacing  # (N,)
    size = num_people + false_detections if max_candidates is None else int(max_candidates)
    locations = np.zeros((num_joints, size, 2))
    scores = np.zeros((num_joints, size))
    tags = np.zeros((num_joints, size))
    owner = np.full((num_joints, size), -1)
    height, width = image_size
    for k in range(num_joints):
        entries = []
        for n in np.flatnonzero(visibility[:, k] > 0):
            entries.append((keypoints[n, k] + rng.normal(0, location_noise, 2), rng.uniform(0.5, 1.0),
                            person_tags[n] + rng.normal(0, tag_noise), n))
        for _ in range(false_detections):
            entries.append((rng.uniform([0, 0], [width - 1, height - 1]), rng.uniform(0.1, 0.4),
                            rng.uniform(-tag_spacing, tag_spacing * num_people), -1))
        order = rng.permutation(len(entries))[:size]
        for m, e in enumerate(order):
            locations[k, m], scores[k, m], tags[k, m], owner[k, m] = entries[e]
    return JointDetections(locations, scores, tags, owner)


def grouped_to_poses(people: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grouped people ``(P, K, 3)`` -> keypoints ``(P, K, 2)``, keypoint scores ``(P, K)``, pose scores ``(P,)``.

    A joint a person lacks is placed at the mean of its found joints with score 0 (COCO's
    OKS measures every predicted keypoint, so it must be somewhere); the pose score is the
    mean score of the found joints, as in the official evaluation.
    """
    people = check_array(people, "people", (None, None, 3), dtype=float)
    found = people[..., 2] > 0  # (P, K)
    keypoints = people[..., :2].copy()
    for p in range(len(people)):
        if found[p].any():
            keypoints[p, ~found[p]] = people[p, found[p], :2].mean(axis=0)
    counts = np.maximum(found.sum(axis=1), 1)
    return keypoints, people[..., 2].copy(), people[..., 2].sum(axis=1) / counts
