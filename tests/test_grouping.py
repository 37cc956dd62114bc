"""Associative-embedding grouping: the greedy loop, the simulated network, the hand-over to COCO."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from course_lib import grouping, metrics


def _random_people(rng, count, size=256.0):
    keypoints = rng.uniform(0, size, size=(count, 17, 2))
    visibility = rng.choice([0, 1, 2], size=(count, 17), p=[0.15, 0.15, 0.7])
    return keypoints, visibility


def test_hand_worked_example():
    # joint 0: two people start (tags 0.1 and 2.0); the 0.05 candidate is below the threshold.
    # joint 1: the 0.95 candidate (tag 1.8) joins person 1, then the 0.7 one (tag 0.3) person 0.
    # joint 2: 0.65 (tag 2.2) -> person 1; 0.6 (tag 4.0) is far from everyone -> new person 2;
    #          0.55 (tag 0.5) -> person 0; 0.5 (tag 1.15) finds persons 0 and 1 taken, 2 too far -> person 3.
    locations = np.zeros((3, 4, 2))
    scores = np.zeros((3, 4))
    tags = np.zeros((3, 4))
    entries = {0: [(10, 10, 0.9, 0.1), (50, 10, 0.8, 2.0), (0, 0, 0.05, 5.0)],
               1: [(12, 20, 0.7, 0.3), (52, 20, 0.95, 1.8)],
               2: [(11, 30, 0.5, 1.15), (53, 30, 0.65, 2.2), (15, 31, 0.55, 0.5), (14, 30, 0.6, 4.0)]}
    for k, rows in entries.items():
        for m, (x, y, s, t) in enumerate(rows):
            locations[k, m], scores[k, m], tags[k, m] = (x, y), s, t
    people = grouping.group_by_tags(locations, scores, tags, 0.1, 1.0, (0, 1, 2))
    assert people.shape == (4, 3, 3)
    assert people[0].tolist() == [[10, 10, 0.9], [12, 20, 0.7], [15, 31, 0.55]]
    assert people[1].tolist() == [[50, 10, 0.8], [52, 20, 0.95], [53, 30, 0.65]]
    assert people[2].tolist() == [[0, 0, 0], [0, 0, 0], [14, 30, 0.6]]
    assert people[3].tolist() == [[0, 0, 0], [0, 0, 0], [11, 30, 0.5]]


@pytest.mark.parametrize("seed", range(5))
def test_well_separated_tags_recover_every_person_exactly(seed):
    rng = np.random.default_rng(seed)
    keypoints, visibility = _random_people(rng, int(rng.integers(1, 7)))
    visibility[:, 0] = 2  # everybody has a nose, so people start in a known order of joints
    detections = grouping.simulate_joint_detections(keypoints, visibility, tag_noise=0.05, location_noise=0.0,
                                                    seed=seed)
    people = grouping.group_by_tags(detections.locations, detections.scores, detections.tags)
    assert len(people) == len(keypoints)
    for person in people:  # each group holds the joints of exactly one true person, all of them
        found = person[:, 2] > 0
        owners = {int(np.argmin(np.linalg.norm(keypoints[:, k] - person[k, :2], axis=1))) for k in np.flatnonzero(found)}
        assert len(owners) == 1
        owner = owners.pop()
        assert np.array_equal(found, visibility[owner] > 0)
        assert np.allclose(person[found, :2], keypoints[owner, found])


def test_greedy_equals_the_hungarian_matching_when_tags_are_apart():
    """The official parser matches each joint type with the Hungarian algorithm; with tags of
    different people far apart, the greedy loop finds the same assignment."""
    rng = np.random.default_rng(3)
    keypoints, visibility = _random_people(rng, 5)
    detections = grouping.simulate_joint_detections(keypoints, visibility, tag_noise=0.1, seed=3)
    greedy = grouping.group_by_tags(detections.locations, detections.scores, detections.tags)

    people, person_tags = [], []
    for k in grouping.AE_JOINT_ORDER:  # the Hungarian version, written out here
        candidates = np.flatnonzero(detections.scores[k] > 0.1)
        if people and candidates.size:
            means = np.array([np.mean(t) for t in person_tags])
            cost = np.abs(detections.tags[k, candidates][:, None] - means[None, :])
            rows, cols = linear_sum_assignment(cost)
            assigned = {int(candidates[r]): int(c) for r, c in zip(rows, cols) if cost[r, c] < 1.0}
        else:
            assigned = {}
        for m in candidates[np.argsort(-detections.scores[k, candidates], kind="stable")]:
            p = assigned.get(int(m))
            if p is None:
                people.append(np.zeros((17, 3)))
                person_tags.append([])
                p = len(people) - 1
            people[p][k] = (*detections.locations[k, m], detections.scores[k, m])
            person_tags[p].append(detections.tags[k, m])
    assert np.array_equal(greedy, np.stack(people))


def test_noisy_tags_mix_people_and_lower_ap():
    rng = np.random.default_rng(0)
    keypoints, visibility = _random_people(rng, 4, size=400)
    boxes = np.concatenate([keypoints.min(axis=1), keypoints.max(axis=1) - keypoints.min(axis=1)], axis=1)
    truth = metrics.ground_truth_to_coco(keypoints, visibility, boxes, boxes[:, 2] * boxes[:, 3] / 2,
                                         image_ids=np.ones(4, int))
    aps = []
    for noise in (0.05, 1.5):
        detections = grouping.simulate_joint_detections(keypoints, visibility, tag_noise=noise, seed=1)
        people = grouping.group_by_tags(detections.locations, detections.scores, detections.tags)
        points, point_scores, scores = grouping.grouped_to_poses(people)
        results = metrics.results_to_coco(points, point_scores, scores, np.ones(len(people), int))
        aps.append(metrics.coco_keypoint_eval(truth, results)["AP"])
    assert aps[0] > 0.9 and aps[1] < aps[0] - 0.3


def test_false_detections_are_kept_out_by_the_threshold():
    rng = np.random.default_rng(5)
    keypoints, visibility = _random_people(rng, 3)
    detections = grouping.simulate_joint_detections(keypoints, visibility, false_detections=4, seed=2)
    spurious = (detections.owner == -1) & (detections.scores > 0)  # (unused slots have score 0)
    assert spurious.sum() == 4 * 17
    assert np.all(detections.scores[spurious] <= 0.4)
    kept = grouping.group_by_tags(detections.locations, detections.scores, detections.tags, detection_threshold=0.45)
    assert len(kept) == 3


def test_simulation_is_seeded_and_keeps_ownership():
    rng = np.random.default_rng(1)
    keypoints, visibility = _random_people(rng, 3)
    a = grouping.simulate_joint_detections(keypoints, visibility, seed=7)
    b = grouping.simulate_joint_detections(keypoints, visibility, seed=7)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    for k, m in itertools.product(range(17), range(a.scores.shape[1])):
        n = a.owner[k, m]
        if n >= 0:
            assert visibility[n, k] > 0
            assert np.linalg.norm(a.locations[k, m] - keypoints[n, k]) < 6  # 1 px noise
    assert (a.owner >= 0).sum() == (visibility > 0).sum()


def test_grouped_to_poses_fills_missing_joints_at_the_centroid():
    people = np.zeros((1, 3, 3))
    people[0, 0] = (10, 20, 0.8)
    people[0, 2] = (30, 40, 0.4)
    points, point_scores, scores = grouping.grouped_to_poses(people)
    assert points[0].tolist() == [[10, 20], [20, 30], [30, 40]]
    assert point_scores[0].tolist() == [0.8, 0.0, 0.4]
    assert scores[0] == pytest.approx(0.6)


def test_empty_input_gives_no_people():
    people = grouping.group_by_tags(np.zeros((17, 2, 2)), np.zeros((17, 2)), np.zeros((17, 2)))
    assert people.shape == (0, 17, 3)


def test_bad_input_names_the_argument():
    good = (np.zeros((17, 2, 2)), np.ones((17, 2)), np.zeros((17, 2)))
    with pytest.raises(ValueError, match="tags"):
        grouping.group_by_tags(good[0], good[1], np.zeros((17, 3)))
    with pytest.raises(ValueError, match="scores"):
        grouping.group_by_tags(good[0], np.full((17, 2), np.nan), good[2])
    with pytest.raises(ValueError, match="joint_order"):
        grouping.group_by_tags(*good, joint_order=(0, 1))
    with pytest.raises(ValueError, match="tag_threshold"):
        grouping.group_by_tags(*good, tag_threshold=0)
    with pytest.raises(ValueError, match="visibility"):
        grouping.simulate_joint_detections(np.zeros((2, 17, 2)), np.zeros((3, 17)))
    with pytest.raises(ValueError, match="false_detections"):
        grouping.simulate_joint_detections(np.zeros((2, 17, 2)), np.zeros((2, 17)), false_detections=-1)


def test_associative_embedding_loss_by_hand():
    from course_lib.grouping import associative_embedding_loss

    tags = np.array([[0.0, 0.2, 0.1], [2.0, 2.0, 9.0]])
    visibility = np.array([[2, 2, 0], [1, 1, 0]])  # the unlabelled joints (0.1, 9.0) do not count
    pull, push = associative_embedding_loss(tags, visibility)
    # person 0: mean 0.1, squared gaps 0.01 and 0.01 -> 0.01; person 1: mean 2, gaps 0 -> 0
    assert pull == pytest.approx((0.01 + 0.0) / 2)
    assert push == pytest.approx(np.exp(-(1.9**2) / 2))  # both ordered pairs, over N (N - 1) = 2
    assert associative_embedding_loss(tags, visibility, sigma=2.0)[1] == pytest.approx(np.exp(-(1.9**2) / 8))
    alone_pull, alone_push = associative_embedding_loss(tags[:1], visibility[:1])
    assert alone_pull == pytest.approx(0.01) and alone_push == 0.0
    # a person with no labelled joint is left out
    with_empty = associative_embedding_loss(np.vstack([tags, [[5.0, 5.0, 5.0]]]), np.vstack([visibility, [[0, 0, 0]]]))
    assert with_empty == pytest.approx((pull, push))


def test_associative_embedding_loss_rejects_bad_input():
    from course_lib.grouping import associative_embedding_loss

    with pytest.raises(ValueError, match="visibility"):
        associative_embedding_loss(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="sigma"):
        associative_embedding_loss(np.zeros((2, 3)), np.ones((2, 3)), sigma=0)
