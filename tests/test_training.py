"""The training engine: determinism, exact resumption, NaN detection, real learning, evaluation, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib import losses, models, training, zoo
from course_lib.data import make_synthetic
from course_lib.geometry import flip_keypoints
from course_lib.heatmaps import gaussian_heatmaps

ROOT = Path(__file__).resolve().parents[1]
INPUT = (64, 64)
HEATMAP = (16, 16)


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory) -> Path:
    """A small synthetic data folder with train/ and val/ splits (64 x 64 images)."""
    root = tmp_path_factory.mktemp("tiny")
    make_synthetic(root / "train", 48, size=(64, 64), seed=11)
    make_synthetic(root / "val", 16, size=(64, 64), seed=12)
    return root


def _data(split: Path, augment: bool = False):
    return training.top_down_data(split, INPUT, HEATMAP, augment=augment)


def _tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    return models.build("simplebaseline_tiny", input_size=INPUT)


def _fit(model, split: Path, steps: int, **kwargs):
    return training.fit(model, _data(split / "train", augment=True), None, losses.HeatmapLoss(), steps,
                        batch_size=8, progress=False, device="cpu", **kwargs)


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- determinism
def test_same_seed_same_weights_other_seed_other_weights(tiny_split):
    first = _tiny_model()
    _fit(first, tiny_split, 7, seed=3)
    second = _tiny_model()
    _fit(second, tiny_split, 7, seed=3)
    third = _tiny_model()
    _fit(third, tiny_split, 7, seed=4)
    assert _same(_weights(first), _weights(second))
    assert not _same(_weights(first), _weights(third))


def test_epoch_batches_cover_the_data_once_per_epoch_and_skip_on_resume():
    batches = list(training.EpochBatches(10, 3, seed=1, epoch=0))
    assert len(batches) == 3 and all(len(b) == 3 for b in batches)
    assert len(set(sum(batches, []))) == 9
    assert list(training.EpochBatches(10, 3, seed=1, epoch=0, start=2)) == batches[2:]
    assert list(training.EpochBatches(10, 3, seed=1, epoch=1)) != batches


# --------------------------------------------------------------------------- resume after a killed process
def test_resume_after_kill_gives_the_same_weights(tiny_split, tmp_path):
    steps = 14  # 48 items / batch 8 = 6 batches per epoch: the run crosses two epoch boundaries
    reference = _tiny_model()
    _fit(reference, tiny_split, steps, seed=5)

    # A separate process trains with checkpoints every 4 steps and is killed (os._exit) at step 10.
    script = textwrap.dedent(f"""
        import os, torch
        from course_lib import losses, models, training
        calls = {{"n": 0}}
        base = losses.HeatmapLoss()
        def dying_loss(outputs, batch):
            calls["n"] += 1
            if calls["n"] == 10:
                os._exit(17)
            return base(outputs, batch)
        torch.manual_seed(0)
        model = models.build("simplebaseline_tiny", input_size={INPUT})
        data = training.top_down_data({str(tiny_split / 'train')!r}, {INPUT}, {HEATMAP}, augment=True)
        training.fit(model, data, None, dying_loss, {steps}, batch_size=8, progress=False, device="cpu", seed=5,
                     checkpoint_dir={str(tmp_path)!r}, checkpoint_every=4)
    """)
    killed = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert killed.returncode == 17, killed.stderr
    saved = torch.load(tmp_path / "last.pt", weights_only=True)  # tensors, numbers and lists only: nothing unpickled
    assert saved["position"]["step"] == 8

    resumed = _tiny_model(seed=123)  # other initial weights: they must be replaced by the checkpoint's
    history = _fit(resumed, tiny_split, steps, seed=5, checkpoint_dir=tmp_path, resume=True)
    assert history.steps == list(range(1, steps + 1))
    assert _same(_weights(reference), _weights(resumed))


class _Killed(Exception):
    """Stands for a killed process: raised from inside the loss, it ends fit() mid-run."""


def _dropout_run(split: Path, steps: int, model_seed: int = 0, die_at: int | None = None, **kwargs):
    """deeppose_tiny with dropout 0.5 (the model draws from the global random state every step)."""
    torch.manual_seed(model_seed)
    model = models.build("deeppose_tiny", dropout=0.5, input_size=INPUT)
    base, calls = losses.RegressionLoss(), {"n": 0}

    def loss(outputs, batch):
        calls["n"] += 1
        if calls["n"] == die_at:
            raise _Killed
        return base(outputs, batch)

    data = training.top_down_data(split / "train", INPUT, HEATMAP, augment=True)
    try:
        training.fit(model, data, None, loss, steps, batch_size=8, progress=False, device="cpu", seed=7, **kwargs)
    except _Killed:
        pass
    return model


def test_resume_is_exact_for_a_model_with_dropout(tiny_split, tmp_path):
    """The loaders draw nothing from the global random state, so dropout draws the same masks after a resume."""
    reference = _dropout_run(tiny_split, 10)  # 6 batches per epoch: the run crosses an epoch boundary
    _dropout_run(tiny_split, 10, die_at=7, checkpoint_dir=tmp_path, checkpoint_every=4)  # dies in step 7
    assert torch.load(tmp_path / "last.pt", weights_only=True)["position"] == {"step": 4, "epoch": 0,
                                                                              "batch_in_epoch": 4}
    resumed = _dropout_run(tiny_split, 10, model_seed=123, checkpoint_dir=tmp_path, resume=True)
    assert _same(_weights(reference), _weights(resumed))


def test_loaders_leave_the_global_random_state_alone(tiny_split):
    data = training.top_down_data(tiny_split / "train", INPUT, HEATMAP, augment=True)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    for epoch in (0, 1):
        loader = training.epoch_loader(data, 8, seed=3, epoch=epoch, start=2)
        assert len(list(loader)) == len(data) // 8 - 2
    assert torch.equal(torch.get_rng_state(), before)
    model, val = _tiny_model(), _data(tiny_split / "val")
    before = torch.get_rng_state()
    assert len(training.predict(model, val, device="cpu").keypoints) == 16
    assert torch.equal(torch.get_rng_state(), before)


def test_train_step_is_one_step_of_gradient_descent(tiny_split):
    model = _tiny_model().train()
    batch = next(iter(torch.utils.data.DataLoader(_data(tiny_split / "train"), batch_size=4)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = _weights(model)
    with torch.no_grad():
        expected = losses.HeatmapLoss()(model(batch["image"]), batch)["heatmap"].item()
    terms = training.train_step(model, batch, losses.HeatmapLoss(), optimizer)
    assert set(terms) == {"heatmap"} and terms["heatmap"] == pytest.approx(expected, rel=1e-5)
    assert not _same(before, _weights(model))
    with pytest.raises(FloatingPointError, match="'loss' is nan at step 12"):
        training.train_step(model, batch, lambda outputs, b: outputs.sum() * float("nan"), optimizer, step=12)


# --------------------------------------------------------------------------- NaN
def test_nan_loss_stops_with_the_step_and_the_term(tiny_split):
    calls = {"n": 0}

    def loss(outputs, batch):
        calls["n"] += 1
        value = losses.heatmap_mse(outputs, batch["heatmaps"], batch["target_weight"])
        return {"heatmap": value, "regulariser": value * (float("nan") if calls["n"] == 3 else 0.0)}

    with pytest.raises(FloatingPointError, match=r"'regulariser' is nan at step 3"):
        training.fit(_tiny_model(), _data(tiny_split / "train"), None, loss, 10, batch_size=8, progress=False,
                     device="cpu")


def test_bad_arguments_are_named(tiny_split):
    data = _data(tiny_split / "train")
    with pytest.raises(TypeError, match="loss must be a callable"):
        training.fit(_tiny_model(), data, None, None, 5)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        training.fit(_tiny_model(), data, None, losses.HeatmapLoss(), 0)
    with pytest.raises(ValueError, match="fewer than batch_size"):
        training.fit(_tiny_model(), data, None, losses.HeatmapLoss(), 5, batch_size=1000)
    with pytest.raises(ValueError, match="resume=True needs a checkpoint_dir"):
        training.fit(_tiny_model(), data, None, losses.HeatmapLoss(), 5, resume=True)
    with pytest.raises(ValueError, match="heatmaps of size"):
        wrong = training.top_down_data(tiny_split / "train", INPUT, (8, 8))
        training.fit(_tiny_model(), wrong, None, losses.HeatmapLoss(), 2, batch_size=8, progress=False)
    with pytest.raises(FileNotFoundError, match="make data"):
        training.top_down_data(tiny_split / "nowhere", INPUT)


# --------------------------------------------------------------------------- real learning
def test_a_tiny_model_really_learns(default_data):
    """Loss falls and PCK rises over a short run on the synthetic people (about 15 s on 2 cores)."""
    torch.manual_seed(0)
    model = models.build("simplebaseline_tiny", input_size=(64, 64))
    train = training.top_down_data(default_data / "single" / "train", (64, 64), (16, 16), augment=True, limit=1000)
    val = training.top_down_data(default_data / "single" / "val", (64, 64), (16, 16), limit=96)
    before = training.evaluate(model, val, device="cpu", coco_ap=False).metrics["pck@0.2"]
    history = training.fit(model, train, val, losses.HeatmapLoss(), 150, batch_size=16, lr=3e-3,
                           progress=False, device="cpu", eval_every=75)
    after = history.val[-1]["pck@0.2"]
    first, last = np.mean(history.loss[:15]), np.mean(history.loss[-15:])
    assert last < 0.7 * first, (first, last)
    assert after > before + 0.2, (before, after)
    assert after > 0.5
    assert history.images == 150 * 16 and history.images_per_second > 0
    assert history.val_steps == [75, 150]
    fig = history.plot()
    assert len(fig.axes) == 2


# --------------------------------------------------------------------------- evaluation
class _Oracle(torch.nn.Module):
    """Returns the perfect output for each batch in loader order (heatmaps or coordinates)."""

    def __init__(self, outputs: list[torch.Tensor]):
        super().__init__()
        self.outputs = outputs
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def forward(self, images):
        return self.outputs.pop(0) + 0 * self.weight


def _batches(data, size):
    loader = torch.utils.data.DataLoader(data, batch_size=size, shuffle=False)
    return list(loader)


def test_predict_maps_perfect_heatmaps_back_to_the_image(tiny_split):
    val = _data(tiny_split / "val")
    outputs = []
    for batch in _batches(val, 64):
        stride = INPUT[0] / HEATMAP[0]
        heatmaps, _ = gaussian_heatmaps(batch["keypoints"] / stride, batch["visibility"], HEATMAP, 2.0, unbiased=True)
        outputs.append(heatmaps)
        # the flip test's second call sees the mirrored crop: its perfect heatmaps
        mirrored, vis = flip_keypoints(batch["keypoints"], batch["visibility"], INPUT[1])
        flipped, _ = gaussian_heatmaps(mirrored / stride, vis, HEATMAP, 2.0, unbiased=True)
        outputs.append(flipped)
    plain = training.evaluate(_Oracle(outputs[0::2]), val, decoder="dark", device="cpu")
    assert plain.metrics["pck@0.05"] == 1.0
    assert plain.metrics["mean_error"] < 0.3
    assert plain.metrics["AP50"] == 1.0 and plain.metrics["AP"] > 0.9
    flipped = training.evaluate(_Oracle(list(outputs)), val, decoder="dark", flip_test=True, device="cpu")
    # the official shift leaves +1/stride heatmap px = +1 input px to the right, halved by averaging
    assert flipped.metrics["mean_error"] < 1.0
    assert flipped.metrics["pck@0.05"] > 0.95


def test_predict_maps_perfect_coordinates_back_exactly(tiny_split):
    val = _data(tiny_split / "val")
    box = torch.tensor([0.0, 0.0, INPUT[1], INPUT[0]])
    from course_lib.geometry import normalize_to_box

    outputs = [normalize_to_box(b["keypoints"], box) for b in _batches(val, 64)]
    evaluation = training.evaluate(_Oracle(outputs), val, device="cpu")
    errors = evaluation.predictions.errors
    assert np.nanmax(errors) < 1e-3
    assert evaluation.metrics["pck@0.05"] == 1.0


def test_predict_rejects_augmented_data(tiny_split):
    data = training.top_down_data(tiny_split / "val", INPUT, HEATMAP, augment=True, flip_prob=1.0)
    with pytest.raises(ValueError, match="without augmentation"):
        training.predict(_tiny_model(), data, device="cpu")


# --------------------------------------------------------------------------- learning rate, device, profile
def test_learning_rate_schedules():
    assert training.learning_rate(1.0, 0.0, "cosine") == 1.0
    assert training.learning_rate(1.0, 1.0, "cosine") == pytest.approx(0.0)
    assert training.learning_rate(1.0, 0.5, "cosine") == pytest.approx(0.5)
    assert training.learning_rate(1.0, 0.7, "step") == pytest.approx(0.1)
    assert training.learning_rate(1.0, 0.9, "step") == pytest.approx(0.01)
    assert training.learning_rate(1.0, 0.0, "constant", warmup=0.1) == pytest.approx(0.1)


def test_device_and_profile(monkeypatch):
    assert training.resolve_device("cpu").type == "cpu"
    assert training.resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="device"):
        training.resolve_device("tpu:banana")
    monkeypatch.setenv("COURSE_FAST", "1")
    assert training.fast_profile() and training.budget(1000, 10) == 10
    monkeypatch.setenv("COURSE_FAST", "0")
    assert not training.fast_profile() and training.budget(1000, 10) == 1000


def test_the_cuda_settings_are_chosen_from_the_device(monkeypatch):
    """What fit does on a GPU (no GPU in CI): AMP type, channels-last batches, pinned memory, workers."""
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert training.autocast_dtype(cpu, amp=True) is None
    assert training.autocast_dtype(cuda, amp=False) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert training.autocast_dtype(cuda, amp=True) == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert training.autocast_dtype(cuda, amp=True) == torch.float16

    batch = {"image": torch.rand(2, 3, 8, 6), "target": torch.rand(2, 17, 2, 2), "index": [0, 1]}
    moved = training.move_batch(batch, cpu, channels_last=True)
    assert moved["image"].is_contiguous(memory_format=torch.channels_last)
    assert not moved["image"].is_contiguous() and torch.equal(moved["image"], batch["image"])
    assert moved["target"].is_contiguous() and moved["index"] == [0, 1]
    assert training.move_batch(batch, cpu)["image"].is_contiguous()

    assert training.default_workers(cpu) == 0 and training.default_workers(cuda) >= 1
    assert training.epoch_loader(list(range(4)), 2, seed=0, epoch=0, pin_memory=True).pin_memory
    assert not training.epoch_loader(list(range(4)), 2, seed=0, epoch=0).pin_memory


# --------------------------------------------------------------------------- model cache
def test_pretrained_trains_once_then_loads(tiny_split, tmp_path, monkeypatch):
    monkeypatch.setitem(zoo.RECIPES, "simplebaseline_tiny", zoo.Recipe("simplebaseline_tiny", steps=3, fast_steps=2))
    data_root = tmp_path / "synthetic"
    (data_root / "single").mkdir(parents=True)
    os.symlink(tiny_split / "train", data_root / "single" / "train")
    os.symlink(tiny_split / "val", data_root / "single" / "val")
    cache = tmp_path / "checkpoints"
    model = zoo.pretrained("simplebaseline_tiny", root=cache, data_root=data_root, progress=False)
    assert zoo.checkpoint_path("simplebaseline_tiny", root=cache).exists()
    assert "pck@0.2" in model.validation and not model.training

    def no_training(*args, **kwargs):
        raise AssertionError("the cached model must be loaded, not retrained")

    monkeypatch.setattr(zoo, "train_recipe", no_training)
    again = zoo.pretrained("simplebaseline_tiny", root=cache, data_root=data_root)
    assert _same(_weights(model), _weights(again))
    with pytest.raises(ValueError, match="pretrained models"):
        zoo.pretrained("alexnet")


# --------------------------------------------------------------------------- command line
def test_train_cli_prints_json(tiny_split):
    result = subprocess.run(
        [sys.executable, "-m", "course_lib.train", "--model", "simplebaseline_tiny", "--steps", "3",
         "--batch-size", "8", "--data", str(tiny_split), "--device", "cpu", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("pck@0.2", "pck@0.1", "steps", "seconds", "images_per_second", "device"):
        assert key in summary
    assert summary["steps"] == 3 and summary["device"] == "cpu"
    assert 0.0 <= summary["pck@0.2"] <= 1.0


def test_train_cli_rejects_unknown_model_and_missing_data(tmp_path):
    bad = subprocess.run([sys.executable, "-m", "course_lib.train", "--model", "alexnet"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--model must be one of" in bad.stderr
    missing = subprocess.run([sys.executable, "-m", "course_lib.train", "--model", "hrnet_tiny", "--data", str(tmp_path)],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "train/annotations.json" in missing.stderr


# --------------------------------------------------------------------------- the seeding convention
def _seeded_run(split: Path, seed: int, draw_before: int) -> tuple[dict, list]:
    torch.rand(draw_before)  # whatever ran before in the notebook
    model = models.build("simplebaseline_tiny", input_size=INPUT, seed=seed)
    history = _fit(model, split, 5, seed=seed)
    return _weights(model), history.loss


def test_one_seed_gives_one_run_whatever_ran_before(tiny_split):
    weights_a, losses_a = _seeded_run(tiny_split, 5, draw_before=3)
    weights_b, losses_b = _seeded_run(tiny_split, 5, draw_before=1000)
    weights_c, _ = _seeded_run(tiny_split, 6, draw_before=3)
    assert _same(weights_a, weights_b) and losses_a == losses_b
    assert not _same(weights_a, weights_c)


def test_seeded_builds_leave_the_global_state_alone_and_seed_everything_resets_it():
    training.seed_everything(1)
    expected = torch.rand(3)
    training.seed_everything(1)
    with training.seeded(9):
        models.build("simplebaseline_tiny", input_size=INPUT)
    assert torch.equal(torch.rand(3), expected)
    with training.seeded(9):
        first = models.build("simplebaseline_tiny", input_size=INPUT)
    assert _same(_weights(first), _weights(models.build("simplebaseline_tiny", input_size=INPUT, seed=9)))
    for bad in (-1, 1.5, "0", True):
        with pytest.raises(TypeError, match="seed"):
            training.seed_everything(bad)
