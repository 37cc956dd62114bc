"""The official training recipes of SimpleBaseline and HRNet, written once, as named presets.

A recipe is everything the papers' code fixes besides the network: the input size, the
target's sigma, the augmentation (scale, rotation, flip, half-body), the optimizer and its
step schedule, the batch per GPU.  The numbers are those of the official configurations:

* SimpleBaseline (Xiao, Wu & Wei 2018, https://arxiv.org/abs/1804.06208), code at
  https://github.com/microsoft/human-pose-estimation.pytorch, files
  ``experiments/coco/resnet50/256x192_d256x3_adam_lr1e-3.yaml``,
  ``experiments/coco/resnet50/384x288_d256x3_adam_lr1e-3.yaml`` and
  ``experiments/mpii/resnet50/256x256_d256x3_adam_lr1e-3.yaml``: scale factor 0.30 and
  rotation 40 degrees on COCO (0.25 and 30 on MPII), flip, no half-body, Adam at 1e-3 for
  140 epochs, divided by 10 at epochs 90 and 120, batch 32 (the files name one GPU).
* HRNet (Sun, Xiao, Liu & Wang 2019, https://arxiv.org/abs/1902.09212), code at
  https://github.com/leoxiaobin/deep-high-resolution-net.pytorch, files
  ``experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml`` (and ``w32_384x288``, ``w48_*``)
  and ``experiments/mpii/hrnet/w32_256x256_adam_lr1e-3.yaml``: scale 0.35 and rotation 45
  degrees on COCO (0.25 and 30 on MPII), flip, half-body with probability 0.3 when more than
  8 joints are labelled (off on MPII), Adam at 1e-3 for 210 epochs, divided by 10 at
  epochs 170 and 200, batch 32 per GPU on 4 GPUs.

How the official code draws the augmentation (``lib/dataset/JointsDataset.py``), which
:class:`~course_lib.top_down.TopDownDataset` repeats with ``z, z'`` standard normal:

    scale    *= clip(1 + sf z, 1 - sf, 1 + sf)
    rotation  = clip(rf z', -2 rf, 2 rf)   with probability 0.6, else 0
    flip        with probability 0.5, swapping the left and right joints

Sigma is 2 heatmap pixels at 256x192 (and 256x256) and 3 at 384x288.  The configurations
also name a weight decay of 1e-4, but their Adam is built without it
(``optim.Adam(model.parameters(), lr=cfg.TRAIN.LR)``), so a recipe's ``weight_decay`` is 0.

    from course_lib import recipes
    recipe = recipes.get("hrnet_w32_coco_256x192")
    recipe.epochs, recipe.lr_steps          # 210, (170, 200)
    recipe.learning_rate(epoch=180)         # 1e-4
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from course_lib.validation import check_choice, check_positive


@dataclass(frozen=True)
class Recipe:
    """One official training recipe: data, augmentation, optimisation (sizes ``(H, W)``).

    ``half_body_prob`` and ``half_body_min_joints``: with this probability, and when more
    than ``half_body_min_joints`` joints are labelled, the crop is cut around the upper or
    the lower body only (the official ``half_body_transform``; -1 or 0 turns it off).
    ``batch_per_gpu x gpus`` is the official global batch.
    """

    name: str
    model: str
    dataset: str
    input_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    sigma: float
    scale_factor: float
    rotation_factor: float
    flip: bool
    half_body_prob: float
    half_body_min_joints: int
    optimizer: str
    lr: float
    lr_factor: float
    lr_steps: tuple[int, ...]
    epochs: int
    weight_decay: float
    batch_per_gpu: int
    gpus: int
    source: str

    def learning_rate(self, epoch: float) -> float:
        """The step schedule: ``lr * lr_factor ** (number of lr_steps <= epoch)``."""
        check_positive(epoch, "epoch", allow_zero=True)
        return self.lr * self.lr_factor ** sum(epoch >= step for step in self.lr_steps)

    @property
    def milestones(self) -> tuple[float, ...]:
        """The learning-rate steps as fractions of the run, for ``fit(..., lr_milestones=...)``."""
        return tuple(step / self.epochs for step in self.lr_steps)

    @property
    def global_batch(self) -> int:
        """Images per optimisation step in the official runs: ``batch_per_gpu * gpus``."""
        return self.batch_per_gpu * self.gpus

    def dataset_options(self) -> dict:
        """The :class:`~course_lib.top_down.TopDownDataset` arguments of this recipe (training split)."""
        return {"sigma": self.sigma, "scale_factor": self.scale_factor, "rotation_factor": self.rotation_factor,
                "flip_prob": 0.5 if self.flip else 0.0, "half_body_prob": max(self.half_body_prob, 0.0),
                "half_body_min_joints": self.half_body_min_joints}

    def to_dict(self) -> dict:
        return asdict(self)


_SIMPLEBASELINE = "https://github.com/microsoft/human-pose-estimation.pytorch/tree/master/experiments"
_HRNET = "https://github.com/leoxiaobin/deep-high-resolution-net.pytorch/tree/master/experiments"


def _simplebaseline(dataset: str, input_size: tuple[int, int], sigma: float, source: str) -> Recipe:
    coco = dataset == "coco"
    height, width = input_size
    return Recipe(
        name=f"simplebaseline_r50_{dataset}_{height}x{width}", model="simplebaseline_r50", dataset=dataset,
        input_size=input_size, heatmap_size=(height // 4, width // 4), sigma=sigma,
        scale_factor=0.30 if coco else 0.25, rotation_factor=40.0 if coco else 30.0, flip=True,
        half_body_prob=0.0, half_body_min_joints=8, optimizer="adam", lr=1e-3, lr_factor=0.1,
        lr_steps=(90, 120), epochs=140, weight_decay=0.0, batch_per_gpu=32, gpus=1,
        source=f"{_SIMPLEBASELINE}/{source}")


def _hrnet(width_name: str, dataset: str, input_size: tuple[int, int], sigma: float, batch: int, source: str) -> Recipe:
    coco = dataset == "coco"
    height, width = input_size
    return Recipe(
        name=f"hrnet_{width_name}_{dataset}_{height}x{width}", model=f"hrnet_{width_name}", dataset=dataset,
        input_size=input_size, heatmap_size=(height // 4, width // 4), sigma=sigma,
        scale_factor=0.35 if coco else 0.25, rotation_factor=45.0 if coco else 30.0, flip=True,
        half_body_prob=0.3 if coco else -1.0, half_body_min_joints=8, optimizer="adam", lr=1e-3, lr_factor=0.1,
        lr_steps=(170, 200), epochs=210, weight_decay=0.0, batch_per_gpu=batch, gpus=4,
        source=f"{_HRNET}/{source}")


RECIPES: dict[str, Recipe] = {recipe.name: recipe for recipe in (
    _simplebaseline("coco", (256, 192), 2.0, "coco/resnet50/256x192_d256x3_adam_lr1e-3.yaml"),
    _simplebaseline("coco", (384, 288), 3.0, "coco/resnet50/384x288_d256x3_adam_lr1e-3.yaml"),
    _simplebaseline("mpii", (256, 256), 2.0, "mpii/resnet50/256x256_d256x3_adam_lr1e-3.yaml"),
    _hrnet("w32", "coco", (256, 192), 2.0, 32, "coco/hrnet/w32_256x192_adam_lr1e-3.yaml"),
    _hrnet("w32", "coco", (384, 288), 3.0, 32, "coco/hrnet/w32_384x288_adam_lr1e-3.yaml"),
    _hrnet("w48", "coco", (256, 192), 2.0, 32, "coco/hrnet/w48_256x192_adam_lr1e-3.yaml"),
    _hrnet("w48", "coco", (384, 288), 3.0, 24, "coco/hrnet/w48_384x288_adam_lr1e-3.yaml"),
    _hrnet("w32", "mpii", (256, 256), 2.0, 32, "mpii/hrnet/w32_256x256_adam_lr1e-3.yaml"),
)}


def list_recipes() -> list[str]:
    """The names of the official recipes, e.g. ``hrnet_w32_coco_256x192``."""
    return sorted(RECIPES)


def get(name: str) -> Recipe:
    """The recipe called ``name`` (one of :func:`list_recipes`)."""
    check_choice(name, "recipe", tuple(list_recipes()))
    return RECIPES[name]


def epochs_to_steps(recipe: Recipe, epoch: float, train_items: int, batch_size: int) -> int:
    """Optimisation steps of ``epoch`` epochs over ``train_items`` items at a global ``batch_size``."""
    check_positive(epoch, "epoch", allow_zero=True)
    return int(epoch * (train_items // max(int(batch_size), 1)))
