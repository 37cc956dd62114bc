"""The official recipes (course_lib.recipes) against the numbers of the official configurations, and half-body crops."""

import numpy as np
import pytest

from course_lib import models, recipes
from course_lib.schedules import learning_rate
from course_lib.top_down import TopDownDataset


def test_hrnet_w32_coco_is_the_official_configuration():
    r = recipes.get("hrnet_w32_coco_256x192")
    assert (r.model, r.input_size, r.heatmap_size, r.sigma) == ("hrnet_w32", (256, 192), (64, 48), 2.0)
    assert (r.scale_factor, r.rotation_factor, r.flip) == (0.35, 45.0, True)
    assert (r.half_body_prob, r.half_body_min_joints) == (0.3, 8)
    assert (r.optimizer, r.lr, r.lr_factor, r.lr_steps, r.epochs) == ("adam", 1e-3, 0.1, (170, 200), 210)
    assert (r.batch_per_gpu, r.gpus, r.global_batch) == (32, 4, 128)
    assert r.source.endswith("coco/hrnet/w32_256x192_adam_lr1e-3.yaml")
    big = recipes.get("hrnet_w32_coco_384x288")
    assert (big.input_size, big.heatmap_size, big.sigma) == ((384, 288), (96, 72), 3.0)
    assert recipes.get("hrnet_w48_coco_384x288").batch_per_gpu == 24


def test_simplebaseline_and_mpii_recipes():
    sb = recipes.get("simplebaseline_r50_coco_256x192")
    assert (sb.scale_factor, sb.rotation_factor, sb.half_body_prob) == (0.30, 40.0, 0.0)
    assert (sb.lr_steps, sb.epochs, sb.batch_per_gpu) == ((90, 120), 140, 32)
    assert recipes.get("simplebaseline_r50_coco_384x288").sigma == 3.0
    for name in ("hrnet_w32_mpii_256x256", "simplebaseline_r50_mpii_256x256"):
        mpii = recipes.get(name)
        assert (mpii.input_size, mpii.scale_factor, mpii.rotation_factor) == ((256, 256), 0.25, 30.0)
        assert mpii.dataset_options()["half_body_prob"] == 0.0
    assert all(recipes.get(n).model in models.list_models() for n in recipes.list_recipes())
    assert all(recipes.get(n).weight_decay == 0.0 for n in recipes.list_recipes())  # the official Adam has none


def test_the_step_schedule_falls_at_the_official_epochs():
    r = recipes.get("hrnet_w32_coco_256x192")
    assert [r.learning_rate(e) for e in (0, 169, 170, 199, 200, 209)] == pytest.approx(
        [1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5])
    for epoch in (0, 100, 169.9, 170, 185, 200, 209.5):
        assert learning_rate(r.lr, epoch / r.epochs, "step", milestones=r.milestones) == pytest.approx(
            r.learning_rate(epoch))
    assert recipes.epochs_to_steps(r, 2, train_items=1000, batch_size=128) == 14


def test_unknown_recipe_names_the_choices():
    with pytest.raises(ValueError, match="hrnet_w32_coco_256x192"):
        recipes.get("hrnet_w32")


def _person(seed=0):
    rng = np.random.default_rng(seed)
    keypoints = np.concatenate([rng.uniform(40, 60, (11, 2)) + [0, 0], rng.uniform(40, 60, (6, 2)) + [0, 60]])
    return {"image": np.zeros((160, 120, 3), np.uint8), "keypoints": keypoints,
            "visibility": np.full(17, 2), "box": np.array([20.0, 20.0, 80.0, 120.0])}


def test_half_body_crops_one_half_as_the_official_code_and_leaves_other_draws_alone():
    people = [_person(i) for i in range(40)]
    options = recipes.get("hrnet_w32_coco_256x192").dataset_options()
    plain = TopDownDataset(people, (64, 48), (16, 12), augment=True, **{**options, "half_body_prob": 0.0})
    half = TopDownDataset(people, (64, 48), (16, 12), augment=True, **{**options, "half_body_prob": 1.0})
    fixed = TopDownDataset(people, (64, 48), (16, 12))
    changed = 0
    for i, person in enumerate(people):
        c0, s0, r0, f0 = plain.crop_parameters(i, person["box"], person["keypoints"], person["visibility"])
        c1, s1, r1, f1 = half.crop_parameters(i, person["box"], person["keypoints"], person["visibility"])
        assert (r0, f0) == (r1, f1)  # the rotation and flip draws do not move
        upper, lower = person["keypoints"][:11], person["keypoints"][11:]
        centres = [upper.mean(0), lower.mean(0)]
        assert any(np.allclose(c1, c) for c in centres)
        factor = s0 / fixed.crop_parameters(i, person["box"])[1]  # the scale draw, the same in both
        chosen = upper if np.allclose(c1, centres[0]) else lower
        width, height = np.ptp(chosen, axis=0)
        width, height = max(width, height * 0.75), max(height, width / 0.75)
        assert np.allclose(s1 / factor, np.array([width, height]) * 1.5)
        changed += not np.allclose(c1, c0)
    assert changed == len(people)
    few = dict(_person(), visibility=np.array([2] * 8 + [0] * 9))  # 8 labelled: not more than 8, no half-body
    one = TopDownDataset([few], (64, 48), (16, 12), augment=True, half_body_prob=1.0)
    zero = TopDownDataset([few], (64, 48), (16, 12), augment=True)
    assert np.allclose(one.crop_parameters(0, few["box"], few["keypoints"], few["visibility"])[0],
                       zero.crop_parameters(0, few["box"])[0])


def test_half_body_probability_is_checked():
    with pytest.raises(ValueError, match="half_body_prob"):
        TopDownDataset([_person()], half_body_prob=1.5)
