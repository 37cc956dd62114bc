"""The DeepPose cascade (chapter 01): refine every joint from a close-up crop around its last estimate.

Toshev & Szegedy, "DeepPose: Human Pose Estimation via Deep Neural Networks", CVPR 2014,
section 3.2, https://arxiv.org/abs/1312.4659.

Stage 1 regresses all K joints at once from the person box.  Its input is small (220 x 220
in the paper, 96 x 64 here), so fine detail is lost.  Stage s >= 2 looks again, closer, at
each joint on its own::

    diam(y) = || y_a - y_b ||                          torso diameter: left shoulder a, right hip b
    b_i^s   = (y_i^{s-1}, delta diam(y^{s-1}), delta diam(y^{s-1}))        joint i's box: centre, w, h
    y_i^s   = y_i^{s-1} + diag(b_w, b_h) psi_i(x(b_i^s); theta_s)  =  N^{-1}(psi_i(x(b_i^s); theta_s); b_i^s)

where ``x(b)`` is the image cut out in box ``b`` (resized to a fixed patch size) and ``psi_i``
the i-th of the stage network's K outputs: one network per stage serves all joints
(:class:`~course_lib.models.DeepPoseCascadeStage`).

**Training a stage on simulated predictions** (the paper's trick).  Stage s-1's predictions
on the training images are few (one per joint and image) and better than on new images (the
network has seen those images).  So stage s trains on crops around *simulated* predictions,
drawn afresh every epoch::

    y~_i = y_i + diam(y) d_i,      d_i ~ Normal(mu_i, diag(s_i^2))

where ``mu_i`` and ``s_i`` are the mean and standard deviation of stage s-1's displacements
``(y_i^{s-1} - y_i) / diam(y)`` over the training set, per joint and axis (the paper samples
from a 2D normal distribution with the mean and variance of the observed displacements,
one per joint).  Measuring displacements in units of ``diam(y)`` lets one distribution serve
people of every size.  The target is the true joint in the crop's normalised coordinates,
``N(y_i; b_i) = (y_i - y~_i) / (delta diam(y))``.

Letters: N people, K joints, [P, P] the patch size.  Keypoints are image pixels ``x, y``;
boxes here are centre form ``(cx, cy, w, h)``, as the paper writes ``b = (b_c, b_w, b_h)``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from course_lib.data import image_to_tensor
from course_lib.geometry import cascade_crop_box, crop_box, denormalize_from_box, normalize_to_box, torso_diameter
from course_lib.keypoints import COCO_TORSO_DIAMETER_PAIR
from course_lib.losses import coordinate_loss
from course_lib.runtime import resolve_device
from course_lib.validation import check_array, check_positive, check_size

# A predicted torso can collapse (shoulder and hip predicted on top of each other); its
# refinement boxes would then have no size.  Every diameter is at least this many pixels.
MIN_DIAMETER = 4.0


def body_diameters(
    keypoints: Any, pair: tuple[int, int] = COCO_TORSO_DIAMETER_PAIR, min_diameter: float = MIN_DIAMETER
) -> np.ndarray:
    """``diam(y)`` of each pose, at least ``min_diameter`` pixels: ``(N, K, 2)`` -> ``(N,)`` (or ``(K, 2)`` -> ``()``).

        diam(y) = max(|| y_a - y_b ||, min_diameter),    (a, b) = ``pair`` (left shoulder, right hip)
    """
    keypoints = np.asarray(check_array(keypoints, "keypoints", (..., None, 2)), dtype=np.float64)
    min_diameter = check_positive(min_diameter, "min_diameter")
    return np.maximum(np.asarray(torso_diameter(keypoints, pair)), min_diameter)


def _usable_people(visibility: np.ndarray, pair: tuple[int, int]) -> np.ndarray:
    """People whose torso pair is labelled, so that diam(y) of the ground truth exists: ``(N,)`` bool."""
    a, b = pair
    return (visibility[:, a] > 0) & (visibility[:, b] > 0)


def displacement_statistics(
    predictions: Any,
    keypoints: Any,
    visibility: Any,
    pair: tuple[int, int] = COCO_TORSO_DIAMETER_PAIR,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of a stage's errors, per joint and axis, in units of diam(y).

        d_ni = (y_ni^{s-1} - y_ni) / diam(y_n),    mu_i = mean_n d_ni,    s_i = std_n d_ni

    over the people whose torso pair is labelled and, for joint i, the people who label it.
    A joint labelled fewer than twice gets the statistics of all joints pooled.

    Args:
        predictions: ``(N, K, 2)`` stage s-1's predictions, image pixels.
        keypoints: ``(N, K, 2)`` the ground truth.
        visibility: ``(N, K)`` COCO flags of the ground truth.
        pair: the torso pair of ``diam``.

    Returns:
        ``mean`` and ``std``, each ``(K, 2)`` float64, in units of diam(y).
    """
    dims: dict[str, int] = {}
    predictions = np.asarray(check_array(predictions, "predictions", ("N", "K", 2), dims=dims), dtype=np.float64)
    keypoints = np.asarray(check_array(keypoints, "keypoints", ("N", "K", 2), dims=dims), dtype=np.float64)
    visibility = np.asarray(check_array(visibility, "visibility", ("N", "K"), dims=dims))
    people = _usable_people(visibility, pair)
    if not people.any():
        raise ValueError(f"visibility labels joints {pair} together for nobody: diam(y) is needed to scale errors")
    diameters = body_diameters(keypoints[people], pair)  # (M,)
    displacement = (predictions[people] - keypoints[people]) / diameters[:, None, None]  # (M, K, 2)
    labelled = visibility[people] > 0  # (M, K)
    pooled = displacement[labelled]  # (L, 2)
    mean = np.tile(pooled.mean(axis=0), (dims["K"], 1))  # (K, 2)
    std = np.tile(pooled.std(axis=0), (dims["K"], 1))
    for joint in range(dims["K"]):
        values = displacement[labelled[:, joint], joint]  # (M_i, 2)
        if len(values) >= 2:
            mean[joint], std[joint] = values.mean(axis=0), values.std(axis=0)
    return mean, std


def simulate_predictions(
    keypoints: Any,
    mean: Any,
    std: Any,
    rng: np.random.Generator,
    pair: tuple[int, int] = COCO_TORSO_DIAMETER_PAIR,
    min_diameter: float = MIN_DIAMETER,
) -> np.ndarray:
    """Simulated stage s-1 predictions around the truth: ``y~_i = y_i + diam(y) (mu_i + s_i z)``, ``z ~ N(0, I)``.

    Args:
        keypoints: ``(..., K, 2)`` ground truth, image pixels (the torso pair must be labelled).
        mean, std: ``(K, 2)`` from :func:`displacement_statistics`.
        rng: the random generator.
        pair, min_diameter: as in :func:`body_diameters`.

    Returns:
        ``(..., K, 2)`` float64 simulated predictions.
    """
    keypoints = np.asarray(check_array(keypoints, "keypoints", (..., "K", 2)), dtype=np.float64)
    num_joints = keypoints.shape[-2]
    mean = check_array(mean, "mean", (num_joints, 2))
    std = check_array(std, "std", (num_joints, 2))
    if (std < 0).any():
        raise ValueError(f"std must be >= 0, got {std.tolist()}")
    diameters = body_diameters(keypoints, pair, min_diameter)[..., None, None]  # (..., 1, 1)
    return keypoints + diameters * (mean + std * rng.standard_normal(keypoints.shape))


class CascadeDataset(torch.utils.data.Dataset):
    """Training patches of a cascade stage: one item per labelled joint of each person.

    Item ``j`` is joint ``i`` of person ``n`` (the ``j``-th pair in :attr:`index`).  With
    ``rng = default_rng([seed, epoch, j])``:

    1. a simulated prediction ``y~_i`` (:func:`simulate_predictions` for that joint);
    2. its box ``b = (y~_i, delta diam(y), delta diam(y))`` (centre form), cut out of the
       image and resized to ``patch_size`` (:func:`~course_lib.geometry.crop_box`);
    3. the target ``N(y_i; b) = (y_i - y~_i) / (delta diam(y))``, the true joint in units of
       the box, measured from its centre.

    People whose torso pair is not labelled are left out (their diam(y) is unknown).  Call
    :meth:`set_epoch` for new draws (:func:`~course_lib.training.fit` does).

    ``__getitem__`` returns a dict that ``default_collate`` batches: ``image`` float32
    ``(3, P, P)``, ``joint`` int64 ``()``, ``target`` float32 ``(2,)``, ``box`` float32 ``(4,)``
    (centre form, image pixels), ``previous`` float32 ``(2,)`` (the simulated prediction).

    Args:
        samples: a sequence of person items with ``image`` ``(h, w, 3)`` uint8, ``keypoints``
            ``(K, 2)`` and ``visibility`` ``(K,)`` (e.g. :class:`~course_lib.data.CocoKeypoints`).
        mean, std: ``(K, 2)`` displacement statistics of the previous stage.
        delta: box side relative to diam(y) (the paper: 1.0 on FLIC, 2.0 on LSP).
        patch_size: ``(P, P)`` of the patches.
        pair: the torso pair.
        seed: seeds the draws.
        min_diameter: smallest diam(y), pixels.
    """

    def __init__(
        self,
        samples: Sequence[dict],
        mean: Any,
        std: Any,
        delta: float = 2.0,
        patch_size: tuple[int, int] = (48, 48),
        pair: tuple[int, int] = COCO_TORSO_DIAMETER_PAIR,
        seed: int = 0,
        min_diameter: float = MIN_DIAMETER,
    ) -> None:
        if not (hasattr(samples, "__len__") and hasattr(samples, "__getitem__")):
            raise TypeError(f"samples must be a sequence of person items, got {type(samples).__name__}")
        self.samples = samples
        self.delta = check_positive(delta, "delta")
        self.patch_size = check_size(patch_size, "patch_size")
        self.min_diameter = check_positive(min_diameter, "min_diameter")
        self.pair = tuple(pair)
        if not float(seed) == int(seed) or int(seed) < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self.epoch = 0
        self.keypoints, self.visibility = _pose_table(samples)  # (N, K, 2), (N, K)
        num_joints = self.keypoints.shape[1]
        self.mean = np.asarray(check_array(mean, "mean", (num_joints, 2)), dtype=np.float64)
        self.std = np.asarray(check_array(std, "std", (num_joints, 2)), dtype=np.float64)
        people = _usable_people(self.visibility, self.pair)
        labelled = (self.visibility > 0) & people[:, None]  # (N, K)
        self.index = np.argwhere(labelled)  # (M, 2): person, joint
        if len(self.index) == 0:
            raise ValueError(f"no person of samples labels the torso pair {self.pair}: nothing to train on")

    def __len__(self) -> int:
        return len(self.index)

    def set_epoch(self, epoch: int) -> None:
        """Choose this epoch's simulated predictions (items depend on seed, epoch, index)."""
        if not float(epoch) == int(epoch) or int(epoch) < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        self.epoch = int(epoch)

    def __getitem__(self, item: int) -> dict:
        person, joint = (int(i) for i in self.index[item])
        rng = np.random.default_rng([self.seed, self.epoch, item % len(self)])
        truth = self.keypoints[person, joint]  # (2,)
        diameter = float(body_diameters(self.keypoints[person], self.pair, self.min_diameter))
        previous = truth + diameter * (self.mean[joint] + self.std[joint] * rng.standard_normal(2))  # y~_i
        side = self.delta * diameter
        box = np.array([previous[0], previous[1], side, side])  # (cx, cy, w, h)
        patch = crop_box(self.samples[person]["image"], box, self.patch_size, box_format="cxcywh")
        target = normalize_to_box(truth, box, box_format="cxcywh")  # (2,)
        return {
            "image": image_to_tensor(patch),
            "joint": torch.tensor(joint, dtype=torch.int64),
            "target": torch.from_numpy(target.astype(np.float32)),
            "box": torch.from_numpy(box.astype(np.float32)),
            "previous": torch.from_numpy(previous.astype(np.float32)),
        }


def _pose_table(samples: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints ``(N, K, 2)`` and visibility ``(N, K)`` of every item (reads each item once)."""
    if len(samples) == 0:
        raise ValueError("samples is empty")
    keypoints, visibility = [], []
    for n in range(len(samples)):
        item = samples[n]
        keypoints.append(np.asarray(item["keypoints"], dtype=np.float64))
        visibility.append(np.asarray(item["visibility"]))
    keypoints = check_array(np.stack(keypoints), "samples' keypoints", ("N", None, 2))
    return keypoints, np.stack(visibility).astype(np.int64)


class CascadeLoss:
    """``loss(outputs, batch)`` for a cascade stage trained with :func:`~course_lib.training.fit`.

    The stage network returns all K displacements ``(N, K, 2)`` for every patch; only the
    output of the patch's own joint ``batch["joint"]`` is compared with ``batch["target"]``:

        L = 1/N sum_n || psi_{i_n}(x_n) - N(y_{i_n}; b_n) ||^2
    """

    def __call__(self, outputs: torch.Tensor, batch: dict) -> dict[str, torch.Tensor]:
        check_array(outputs, "outputs", ("N", None, 2), allow_torch=True, finite=False)
        rows = torch.arange(outputs.shape[0], device=outputs.device)
        chosen = outputs[rows, batch["joint"].to(outputs.device)]  # (N, 2)
        target = batch["target"].to(chosen.dtype)  # (N, 2)
        weight = torch.ones(chosen.shape[0], 1, device=chosen.device)
        return {"displacement": coordinate_loss(chosen[:, None], target[:, None], weight)}


@torch.no_grad()
def refine(
    stage: nn.Module,
    samples: Sequence[dict],
    previous: Any,
    delta: float = 2.0,
    patch_size: tuple[int, int] = (48, 48),
    pair: tuple[int, int] = COCO_TORSO_DIAMETER_PAIR,
    min_diameter: float = MIN_DIAMETER,
    batch_size: int = 256,
    device: str | torch.device = "auto",
) -> np.ndarray:
    """Apply one cascade stage to the previous predictions: ``y^{s-1}`` ``(N, K, 2)`` -> ``y^s`` ``(N, K, 2)``.

    For person ``n`` (image ``samples[n]["image"]``) and every joint ``i``: the box
    ``b_i = (y_i^{s-1}, delta diam(y^{s-1}), delta diam(y^{s-1}))``, the patch cut out in it,
    the stage's output ``psi_i`` for that patch, and ``y_i^s = N^{-1}(psi_i; b_i)``.

    Args:
        stage: a :class:`~course_lib.models.DeepPoseCascadeStage` (its forward takes
            ``(patches, joint_index)``).
        samples: the person items the predictions belong to, in the same order.
        previous: ``(N, K, 2)`` the previous stage's predictions, image pixels.
        delta, patch_size, pair, min_diameter: as the stage was trained with.
        batch_size: patches per forward pass.
        device: where the stage runs (``"auto"``: CUDA, MPS or the CPU, as
            :func:`~course_lib.runtime.resolve_device`).

    Returns:
        ``(N, K, 2)`` float64 refined predictions, image pixels.
    """
    previous = np.asarray(check_array(previous, "previous", ("N", "K", 2)), dtype=np.float64)
    num_people, num_joints = previous.shape[:2]
    if len(samples) != num_people:
        raise ValueError(f"samples has {len(samples)} items but previous has predictions for {num_people} people")
    check_positive(delta, "delta")
    patch_size = check_size(patch_size, "patch_size")
    device = resolve_device(device)
    diameters = body_diameters(previous, pair, min_diameter)  # (N,)
    boxes = cascade_crop_box(previous, diameters[:, None], delta, box_format="cxcywh")  # (N, K, 4)
    stage = stage.to(device).eval()
    displacements = np.zeros_like(previous)  # (N, K, 2) in units of each box
    joints = torch.arange(num_joints)
    pending: list[tuple[int, torch.Tensor]] = []

    def run(batch: list[tuple[int, torch.Tensor]]) -> None:
        patches = torch.cat([p for _, p in batch]).to(device)  # (B K, 3, P, P)
        joint_index = joints.repeat(len(batch)).to(device)  # (B K,)
        output = stage(patches, joint_index).float().cpu().numpy().reshape(len(batch), num_joints, 2)
        for (n, _), value in zip(batch, output):
            displacements[n] = value

    for n in range(num_people):
        image = samples[n]["image"]
        patches = np.stack([crop_box(image, box, patch_size, box_format="cxcywh") for box in boxes[n]])
        pending.append((n, image_to_tensor(patches)))  # (K, 3, P, P)
        if len(pending) * num_joints >= batch_size:
            run(pending)
            pending = []
    if pending:
        run(pending)
    return denormalize_from_box(displacements, boxes, box_format="cxcywh")
