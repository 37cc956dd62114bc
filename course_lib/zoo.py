"""Trained tiny models for later chapters, made here and cached: ``pretrained("simplebaseline_tiny")``.

No weights are downloaded.  The first call trains the model with the fixed recipe below on
the synthetic single-person data and saves it under ``data/checkpoints/``; later calls load
it in a second.  A student who skipped a chapter's training can go on with these.

Every recipe: AdamW, cosine schedule with a short warm-up, batch 32, seed 0, scale and
rotation augmentation but no flips (the synthetic people carry left/right tints that a
mirror would contradict; see chapter 06), Gaussian targets with sigma 2 at stride 4 for the
heatmap models, L2 on box-normalised coordinates for DeepPose.  Under ``COURSE_FAST=1`` a
much shorter recipe is trained and cached under its own name (``<name>-fast.pt``), so CI
never waits for the full one.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from course_lib import losses, models, training
from course_lib.data import DATA_ROOT, default_split_dir


@dataclass(frozen=True)
class Recipe:
    """How a cached model is trained: model preset, steps (full / fast profile), learning rate."""

    model: str
    steps: int
    fast_steps: int
    lr: float = 2e-3
    batch_size: int = 32
    sigma: float = 2.0
    seed: int = 0

    @property
    def loss(self) -> str:
        return "regression" if self.model.startswith("deeppose") else "heatmap"


RECIPES: dict[str, Recipe] = {
    "simplebaseline_tiny": Recipe("simplebaseline_tiny", steps=2000, fast_steps=100),
    "hrnet_tiny": Recipe("hrnet_tiny", steps=2000, fast_steps=100),
    "hourglass_tiny": Recipe("hourglass_tiny", steps=2000, fast_steps=100),
    "cpm_tiny": Recipe("cpm_tiny", steps=2000, fast_steps=100),
    "deeppose_tiny": Recipe("deeppose_tiny", steps=2000, fast_steps=100, lr=1e-3),
}


def checkpoint_path(name: str, fast: bool | None = None, root: str | os.PathLike | None = None) -> Path:
    """Where the cached model lives: ``data/checkpoints/<name>.pt`` (``<name>-fast.pt`` in the fast profile)."""
    _recipe(name)
    fast = training.fast_profile() if fast is None else fast
    root = Path(root) if root is not None else DATA_ROOT / "checkpoints"
    return root / f"{name}{'-fast' if fast else ''}.pt"


def train_recipe(
    name: str, *, fast: bool | None = None, device: str = "auto", progress: bool = True, data_root: str | os.PathLike | None = None
) -> tuple[nn.Module, training.History, dict[str, float]]:
    """Train ``name`` with its recipe; return the model, its history and its validation metrics."""
    recipe = _recipe(name)
    fast = training.fast_profile() if fast is None else fast
    model = models.build(recipe.model, seed=recipe.seed)
    input_size, heatmap_size = training.model_sizes(model)
    root = Path(data_root) if data_root is not None else None
    train_data = training.top_down_data(default_split_dir("single/train", root), input_size, heatmap_size,
                                        augment=True, sigma=recipe.sigma, seed=recipe.seed)
    val_data = training.top_down_data(default_split_dir("single/val", root), input_size, heatmap_size,
                                      sigma=recipe.sigma)
    loss = losses.RegressionLoss() if recipe.loss == "regression" else losses.HeatmapLoss()
    history = training.fit(model, train_data, val_data, loss, recipe.fast_steps if fast else recipe.steps,
                           batch_size=recipe.batch_size, lr=recipe.lr, seed=recipe.seed, device=device,
                           progress=progress)
    scores = training.evaluate(model, val_data, device=device).metrics
    return model.cpu().eval(), history, scores


def pretrained(
    name: str,
    *,
    train: bool = True,
    device: str = "cpu",
    progress: bool = True,
    root: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
) -> nn.Module:
    """A trained tiny model (eval mode) from the cache, training it first if it is not there.

    Args:
        name: one of :data:`RECIPES` (``simplebaseline_tiny``, ``hrnet_tiny``, ``hourglass_tiny``,
            ``cpm_tiny``, ``deeppose_tiny``).
        train: train when missing (else raise FileNotFoundError).
        device: where the returned model lives.
        root: the cache folder (default ``data/checkpoints``).
        data_root: the synthetic data root (default ``data/synthetic``).

    The model gets a ``validation`` attribute with the metrics measured after training.
    """
    recipe = _recipe(name)
    path = checkpoint_path(name, root=root)
    fingerprint = _fingerprint(recipe, fast=path.stem.endswith("-fast"))
    if path.exists():
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("fingerprint") == fingerprint:
            model = models.build(recipe.model)
            model.load_state_dict(state["model"])
            model.validation = state.get("validation", {})
            return model.to(device).eval()
    if not train:
        raise FileNotFoundError(f"{path} does not exist (or was made by another recipe); call pretrained({name!r})")
    print(f"Training {name} once with its recipe ({'fast' if path.stem.endswith('-fast') else 'full'} profile); "
          f"it will be cached in {path}.")
    model, history, scores = train_recipe(name, fast=path.stem.endswith("-fast"), progress=progress, data_root=data_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # two kernels may train at once
    torch.save({"model": model.state_dict(), "fingerprint": fingerprint, "recipe": asdict(recipe),
                "validation": scores, "seconds": history.seconds}, temporary)
    os.replace(temporary, path)
    model.validation = scores
    return model.to(device).eval()


def _recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"no recipe for {name!r}; pretrained models: {', '.join(sorted(RECIPES))}")
    return RECIPES[name]


def _fingerprint(recipe: Recipe, fast: bool) -> str:
    text = json.dumps(asdict(recipe) | {"fast": fast}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
