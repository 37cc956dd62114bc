"""Training and evaluation: one loop for every network of the course.

* :func:`fit` trains any model with any batch loss (see :mod:`course_lib.losses`) on any
  map-style data set of dict items, on CUDA (mixed precision, channels-last, pinned memory,
  loader workers), Apple MPS or the CPU, with a step budget and a time budget, a learning-rate
  schedule, checkpoints and exact resumption, and a progress bar.  It returns a
  :class:`History` that can plot itself.
* :func:`predict` / :func:`evaluate` run a model over a top-down data set, map the
  predictions back to image pixels (optionally with the flip test) and score them with
  :mod:`course_lib.metrics`: PCK, PCKh, PDJ and COCO's OKS-based AP.
* :func:`top_down_data` builds the train/validation crops for a model from a folder of the
  synthetic (or any COCO-format) data.

Reproducibility: on the CPU the same ``seed`` gives the same weights and metrics.  Every
random choice is seeded: the weights (``torch.manual_seed``), the order of the items (a
permutation drawn from ``(seed, epoch)``), and the augmentation (drawn by the data set from
``(seed, epoch, index)``, whatever the number of loader workers).  A checkpoint stores the
step, the position in the epoch and the random state, so ``resume=True`` after a killed run
ends with exactly the weights of an uninterrupted run.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from course_lib import metrics
from course_lib.geometry import TopDownDataset, crop_to_image, denormalize_from_box, flip_keypoints
from course_lib.heatmaps import decode_argmax, decode_dark, decode_quarter_offset, flip_heatmaps, soft_argmax
from course_lib.keypoints import COCO_FLIP_PAIRS
from course_lib.losses import crop_box
from course_lib.validation import check_choice, check_positive

LossFunction = Callable[[Any, dict], "torch.Tensor | Mapping[str, torch.Tensor]"]


# ============================================================================ the profile
def fast_profile() -> bool:
    """True when ``COURSE_FAST=1``: notebooks run fewer steps (CI), through the same code."""
    return os.environ.get("COURSE_FAST", "0").strip().lower() not in ("", "0", "false", "no")


def budget(full: Any, fast: Any) -> Any:
    """``fast`` under ``COURSE_FAST=1``, else ``full``: e.g. ``steps = budget(1500, 60)``."""
    return fast if fast_profile() else full


# ============================================================================ devices
def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple's MPS, then the CPU; anything else is passed to ``torch.device``."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'mps' or a torch.device, got {device!r}") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch.cuda.is_available() is False")
    return resolved


def autocast_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """Mixed-precision type: bfloat16 on CUDA where supported (no loss scaling needed), else float16; None off CUDA."""
    if not amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def move_batch(batch: dict, device: torch.device, channels_last: bool = False) -> dict:
    """Move every tensor of a collated batch to ``device`` (the image in channels-last layout if asked)."""
    moved = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device, non_blocking=True)
            if channels_last and key == "image" and value.dim() == 4:
                value = value.contiguous(memory_format=torch.channels_last)
        moved[key] = value
    return moved


# ============================================================================ history
@dataclass
class History:
    """What :func:`fit` measured: the loss per step, the learning rate, validation metrics.

    ``terms`` holds each named loss term per step (e.g. ``stage1``, ``stage2``).
    ``val`` holds one dict of metrics per validation (at the steps ``val_steps``).
    """

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    terms: dict[str, list[float]] = field(default_factory=dict)
    val_steps: list[int] = field(default_factory=list)
    val: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    images: int = 0
    device: str = "cpu"
    stopped_by: str = "steps"

    @property
    def images_per_second(self) -> float:
        """Training images per second of training time (validation excluded)."""
        return self.images / self.seconds if self.seconds > 0 else 0.0

    @property
    def last(self) -> dict[str, float]:
        """The last validation metrics (empty if none ran)."""
        return dict(self.val[-1]) if self.val else {}

    def to_dict(self) -> dict:
        return asdict(self) | {"images_per_second": self.images_per_second}

    def plot(self, metric: str | None = None, smooth: int = 20, axes: Sequence | None = None):
        """Loss (raw and smoothed over ``smooth`` steps) and a validation metric; returns the figure."""
        import matplotlib.pyplot as plt

        if axes is None:
            fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
        else:
            fig = axes[0].figure
        ax = axes[0]
        ax.plot(self.steps, self.loss, color="0.75", linewidth=0.8, label="loss")
        if len(self.loss) >= smooth > 1:
            kernel = np.ones(smooth) / smooth
            ax.plot(self.steps[smooth - 1:], np.convolve(self.loss, kernel, mode="valid"), label=f"mean of {smooth}")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.set_yscale("log")
        ax.legend()
        ax = axes[1]
        if self.val:
            metric = metric or next(iter(self.val[-1]))
            ax.plot(self.val_steps, [v.get(metric, np.nan) for v in self.val], marker="o")
            ax.set_ylabel(f"validation {metric}")
        ax.set_xlabel("step")
        fig.tight_layout()
        return fig


# ============================================================================ data order
class EpochBatches(torch.utils.data.Sampler):
    """Batches of indices for one epoch: a permutation drawn from ``(seed, epoch)``, cut into full batches.

    Starting at ``start`` (a batch number) skips the batches an interrupted run already used.
    """

    def __init__(self, size: int, batch_size: int, seed: int, epoch: int, start: int = 0) -> None:
        generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
        self.order = torch.randperm(size, generator=generator).tolist()
        self.batch_size, self.start = batch_size, start

    def __len__(self) -> int:
        return len(self.order) // self.batch_size - self.start

    def __iter__(self) -> Iterator[list[int]]:
        for b in range(self.start, len(self.order) // self.batch_size):
            yield self.order[b * self.batch_size:(b + 1) * self.batch_size]


def _loader(data, batch_sampler, device: torch.device, num_workers: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        data,
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )


def default_workers(device: torch.device) -> int:
    """Loader worker processes: none on the CPU (they would take cores from the model), several on a GPU."""
    if device.type == "cpu":
        return 0
    return max(1, min(8, (os.cpu_count() or 2) - 1))


# ============================================================================ the schedule
def learning_rate(base: float, progress: float, schedule: str, warmup: float = 0.0) -> float:
    """Learning rate at ``progress`` in [0, 1] of the run.

    * ``"cosine"``: ``lr = base (1 + cos(pi p)) / 2`` (Loshchilov & Hutter 2017);
    * ``"step"``: ``base``, then x0.1 at 2/3 and x0.01 at 8/9 of the run (the official
      SimpleBaseline/HRNet schedule: epochs 170 and 200 of 210);
    * ``"constant"``.

    A linear warm-up over the first ``warmup`` fraction multiplies any of them.
    """
    p = min(max(progress, 0.0), 1.0)
    if schedule == "cosine":
        lr = base * 0.5 * (1.0 + math.cos(math.pi * p))
    elif schedule == "step":
        lr = base * (0.01 if p >= 8 / 9 else 0.1 if p >= 2 / 3 else 1.0)
    else:
        lr = base
    if warmup > 0 and p < warmup:
        lr *= (p / warmup) * 0.9 + 0.1
    return lr


# ============================================================================ fit
def fit(
    model: nn.Module,
    train_data: torch.utils.data.Dataset,
    val_data: torch.utils.data.Dataset | None = None,
    loss: LossFunction | None = None,
    steps: int = 1000,
    *,
    batch_size: int = 32,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    schedule: str = "cosine",
    warmup: float = 0.03,
    max_seconds: float | None = None,
    device: str | torch.device = "auto",
    amp: bool = True,
    channels_last: bool = True,
    num_workers: int | None = None,
    seed: int = 0,
    eval_every: int | None = None,
    eval_items: int = 256,
    eval_metric: str = "pck@0.2",
    decoder: str | Callable = "dark",
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    progress: bool = True,
    grad_clip: float | None = None,
) -> History:
    """Train ``model`` for ``steps`` steps (or until ``max_seconds`` pass) and return its :class:`History`.

    Each step: a batch of ``batch_size`` items, ``loss(model(batch["image"]), batch)`` (a
    tensor, or a dict of named terms that are summed), AdamW with ``lr`` and ``weight_decay``,
    the learning rate following ``schedule`` (see :func:`learning_rate`; with ``max_seconds``
    the schedule follows whichever budget runs out first).

    Args:
        model: any ``nn.Module`` taking ``(N, 3, H, W)`` images.
        train_data, val_data: map-style data sets of dict items with at least ``"image"``
            (e.g. :class:`~course_lib.geometry.TopDownDataset`); ``set_epoch(epoch)`` is
            called on ``train_data`` each epoch when it has it.
        loss: ``loss(outputs, batch)``, e.g. ``losses.HeatmapLoss()``.
        steps: the step budget.
        max_seconds: a wall-clock budget (training stops at whichever comes first).
        device: ``"auto"`` (CUDA, MPS, CPU), ``"cpu"``, ``"cuda"``...
        amp: mixed precision on CUDA (bfloat16 where supported, else float16 with loss scaling).
        channels_last: channels-last memory layout on CUDA (faster convolutions on tensor cores).
        num_workers: loader processes (default: 0 on CPU, several on GPU; pinned memory on CUDA).
        seed: seeds the weights' updates, the order of items and (through the data) augmentation.
        eval_every: validate every so many steps (default: about 5 times per run) on the first
            ``eval_items`` items of ``val_data``; the metric ``eval_metric`` shows in the
            progress bar.  Always validated at the end when ``val_data`` is given.
        decoder: heatmap decoder used for validation (see :func:`predict`).
        checkpoint_dir: where ``last.pt`` is written every ``checkpoint_every`` steps and at the end.
        resume: continue from ``checkpoint_dir/last.pt`` if it exists (same arguments expected).
        progress: show a progress bar (``tqdm.auto``: a widget in notebooks).
        grad_clip: clip the gradient norm to this value.

    Raises:
        FloatingPointError: the loss became NaN or infinite (the message names the step and the term).
    """
    if loss is None or not callable(loss):
        raise TypeError(f"loss must be a callable loss(outputs, batch), e.g. losses.HeatmapLoss(); got {loss!r}")
    steps = _positive_int(steps, "steps")
    batch_size = _positive_int(batch_size, "batch_size")
    check_positive(lr, "lr")
    check_choice(schedule, "schedule", ("cosine", "step", "constant"))
    if max_seconds is not None:
        check_positive(max_seconds, "max_seconds")
    if len(train_data) < batch_size:
        raise ValueError(f"train_data has {len(train_data)} items, fewer than batch_size={batch_size}")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs a checkpoint_dir")
    device = resolve_device(device)
    use_channels_last = channels_last and device.type == "cuda"
    amp_dtype = autocast_dtype(device, amp)
    workers = default_workers(device) if num_workers is None else int(num_workers)
    eval_every = eval_every or max(1, steps // 5)

    torch.manual_seed(seed)
    model.to(device)
    if use_channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    history = History(device=str(device))
    step, epoch, batch_in_epoch = 0, 0, 0
    checkpoint = Path(checkpoint_dir) / "last.pt" if checkpoint_dir is not None else None
    if resume and checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["cpu_rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        step, epoch, batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        history = History(**state["history"])

    val_subset = None
    if val_data is not None:
        val_subset = torch.utils.data.Subset(val_data, range(min(eval_items, len(val_data))))

    bar = _progress_bar(steps, step, progress)
    start_seconds = history.seconds
    started = time.perf_counter()
    eval_time = 0.0
    model.train()
    try:
        while step < steps:
            if hasattr(train_data, "set_epoch"):
                train_data.set_epoch(epoch)
            batches = EpochBatches(len(train_data), batch_size, seed, epoch, start=batch_in_epoch)
            for batch in _loader(train_data, batches, device, workers):
                elapsed = start_seconds + time.perf_counter() - started - eval_time
                if max_seconds is not None and elapsed >= max_seconds:
                    history.stopped_by = "max_seconds"
                    break
                progress_fraction = step / steps
                if max_seconds is not None:
                    progress_fraction = max(progress_fraction, elapsed / max_seconds)
                current_lr = learning_rate(lr, progress_fraction, schedule, warmup)
                for group in optimizer.param_groups:
                    group["lr"] = current_lr

                batch = move_batch(batch, device, use_channels_last)
                with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                    outputs = model(batch["image"])
                terms = _loss_terms(loss, _to_float(outputs), batch)
                total = sum(terms.values())
                values = {name: float(value.detach()) for name, value in terms.items()}
                for name, value in values.items():
                    if not math.isfinite(value):
                        raise FloatingPointError(
                            f"loss term {name!r} is {value} at step {step + 1}: training stopped "
                            "(try a lower learning rate, or check the targets for NaN)"
                        )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(total).backward()
                if grad_clip is not None:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                scaler.step(optimizer)
                scaler.update()

                step += 1
                batch_in_epoch += 1
                history.steps.append(step)
                history.loss.append(sum(values.values()))
                history.lr.append(current_lr)
                for name, value in values.items():
                    history.terms.setdefault(name, []).append(value)
                history.images += batch_size

                is_last = step >= steps
                if val_subset is not None and (step % eval_every == 0 or is_last):
                    tick = time.perf_counter()
                    scores = evaluate(model, val_subset, decoder=decoder, device=device, batch_size=64,
                                      coco_ap=False, progress=False).metrics
                    eval_time += time.perf_counter() - tick
                    model.train()
                    history.val_steps.append(step)
                    history.val.append(scores)
                if bar is not None:
                    postfix = {"loss": f"{history.loss[-1]:.2e}"}
                    if history.val and eval_metric in history.val[-1]:
                        postfix[eval_metric] = f"{history.val[-1][eval_metric]:.3f}"
                    bar.set_postfix(postfix, refresh=False)
                    bar.update(1)
                history.seconds = start_seconds + time.perf_counter() - started - eval_time
                if checkpoint is not None and checkpoint_every and step % checkpoint_every == 0 and not is_last:
                    _save_checkpoint(checkpoint, model, optimizer, scaler, step, epoch, batch_in_epoch, history)
                if is_last:
                    break
            else:
                epoch += 1
                batch_in_epoch = 0
                continue
            break
    finally:
        if bar is not None:
            bar.close()
    history.seconds = start_seconds + time.perf_counter() - started - eval_time
    if val_subset is not None and (not history.val_steps or history.val_steps[-1] != step) and step > 0:
        history.val_steps.append(step)
        history.val.append(evaluate(model, val_subset, decoder=decoder, device=device, coco_ap=False,
                                    progress=False).metrics)
    if checkpoint is not None:
        _save_checkpoint(checkpoint, model, optimizer, scaler, step, epoch, batch_in_epoch, history)
    model.eval()
    return history


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _progress_bar(total: int, initial: int, show: bool):
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="training", unit="step", leave=True)


def _to_float(outputs: Any) -> Any:
    """Bring mixed-precision outputs back to float32 before the loss."""
    if isinstance(outputs, torch.Tensor):
        return outputs.float()
    if isinstance(outputs, (list, tuple)):
        return type(outputs)(_to_float(o) for o in outputs)
    if isinstance(outputs, dict):
        return {k: _to_float(v) for k, v in outputs.items()}
    return outputs


def _loss_terms(loss: LossFunction, outputs: Any, batch: dict) -> dict[str, torch.Tensor]:
    value = loss(outputs, batch)
    if isinstance(value, torch.Tensor):
        if value.dim() != 0:
            raise ValueError(f"the loss must return a scalar tensor or a dict of them, got shape {tuple(value.shape)}")
        return {"loss": value}
    if isinstance(value, Mapping) and value and all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in value.values()):
        return dict(value)
    raise TypeError(f"the loss must return a scalar tensor or a non-empty dict of scalar tensors, got {type(value).__name__}")


def _save_checkpoint(path: Path, model, optimizer, scaler, step, epoch, batch_in_epoch, history) -> None:
    """Write atomically (temporary file, then rename), so a run killed while saving leaves the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "cpu_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "step": step,
        "epoch": epoch,
        "batch_in_epoch": batch_in_epoch,
        "history": asdict(history),
    }
    temporary = path.with_suffix(".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)


# ============================================================================ prediction
DECODERS: dict[str, Callable] = {
    "argmax": decode_argmax,
    "quarter_offset": decode_quarter_offset,
    "dark": decode_dark,
    "soft_argmax": soft_argmax,
}


@dataclass
class Predictions:
    """A model's predictions over a data set, in original image pixels, with the ground truth beside them.

    ``keypoints`` ``(N, K, 2)`` and ``scores`` ``(N, K)`` are predictions; ``gt_keypoints``,
    ``gt_visibility``, ``boxes`` (COCO xywh), ``areas``, ``head_boxes`` (or None),
    ``image_ids`` and ``annotation_ids`` come from the data.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    gt_keypoints: np.ndarray
    gt_visibility: np.ndarray
    boxes: np.ndarray
    areas: np.ndarray
    head_boxes: np.ndarray | None
    image_ids: np.ndarray
    annotation_ids: np.ndarray

    @property
    def errors(self) -> np.ndarray:
        """``(N, K)`` pixel distance from prediction to ground truth (NaN where not labelled)."""
        distance = np.linalg.norm(self.keypoints - self.gt_keypoints, axis=-1)
        return np.where(self.gt_visibility > 0, distance, np.nan)


def heatmap_decoder(decoder: str | Callable, sigma: float = 2.0) -> Callable:
    """The function ``heatmaps -> (keypoints, scores)`` that :func:`predict` uses for ``decoder``.

    ``"dark"`` blurs with the training ``sigma``; ``"soft_argmax"`` uses temperature 0.05 (for
    maps with values in [0, 1]); a callable is returned as it is.
    """
    if callable(decoder):
        return decoder
    check_choice(decoder, "decoder", tuple(DECODERS))
    if decoder == "dark":
        return lambda h: decode_dark(h, sigma=sigma)
    if decoder == "soft_argmax":
        return lambda h: soft_argmax(h, temperature=0.05)
    return DECODERS[decoder]


def _base_dataset(data):
    while isinstance(data, torch.utils.data.Subset):
        data = data.dataset
    return data


@torch.no_grad()
def predict(
    model: nn.Module,
    data: torch.utils.data.Dataset,
    *,
    decoder: str | Callable = "dark",
    flip_test: bool = False,
    flip_pairs: tuple[tuple[int, int], ...] = COCO_FLIP_PAIRS,
    shift_heatmaps: bool = True,
    batch_size: int = 64,
    device: str | torch.device = "auto",
    progress: bool = False,
) -> Predictions:
    """Run ``model`` over top-down ``data`` and return predictions in ORIGINAL IMAGE pixels.

    The model's output decides how keypoints are read:

    * heatmaps ``(N, K, h, w)`` (or a list of stages: the last one) are decoded by ``decoder``
      (``"argmax"``, ``"quarter_offset"``, ``"dark"``, ``"soft_argmax"`` or a function
      ``heatmaps -> (keypoints, scores)`` in heatmap pixels), then mapped with
      :func:`~course_lib.geometry.crop_to_image` at the heatmap size;
    * coordinates ``(N, K, 2)`` are DeepPose's box-normalised crop coordinates: denormalised
      to crop pixels (score 1), then mapped back likewise.

    Flip test (``flip_test=True``, SimpleBaseline/HRNet): the mirrored crop is also run;
    its heatmaps are flipped back with :func:`~course_lib.heatmaps.flip_heatmaps` (mirror,
    swap left/right channels, and, with ``shift_heatmaps``, the one-pixel shift that
    compensates ``x' = w - 1 - x`` at stride > 1) and averaged with the original's before
    decoding.  For coordinates, the mirrored prediction is flipped back in crop pixels and
    averaged.

    ``data`` must yield :class:`~course_lib.geometry.TopDownDataset` items (not augmented).
    """
    device = resolve_device(device)
    base = _base_dataset(data)
    sigma = getattr(base, "sigma", 2.0)
    decode = heatmap_decoder(decoder, sigma)
    model.to(device).eval()
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False, num_workers=0,
                                         pin_memory=device.type == "cuda")
    if progress:
        from tqdm.auto import tqdm

        loader = tqdm(loader, desc="predicting", unit="batch", leave=False)
    parts: dict[str, list] = {k: [] for k in ("kp", "sc", "gt", "vis", "box", "area", "head", "img", "ann")}
    for batch in loader:
        if batch.get("flipped") is not None and bool(torch.as_tensor(batch["flipped"]).any()):
            raise ValueError("predict() needs data without augmentation (an item was flipped): use augment=False")
        images = batch["image"].to(device)
        input_size = tuple(images.shape[-2:])
        output = _final_output(model(images))
        if flip_test:
            flipped_output = _final_output(model(images.flip(-1)))
        if output.dim() == 4:  # heatmaps (N, K, h, w)
            heatmaps = output.float()
            if flip_test:
                heatmaps = (heatmaps + flip_heatmaps(flipped_output.float(), flip_pairs, shift=shift_heatmaps)) / 2
            points, scores = decode(heatmaps)
            points, scores = torch.as_tensor(points).float().cpu(), torch.as_tensor(scores).float().cpu()
            map_size = tuple(heatmaps.shape[-2:])
        elif output.dim() == 3 and output.shape[-1] == 2:  # coordinates (N, K, 2)
            box = output.new_tensor(crop_box(input_size))
            points = denormalize_from_box(output.float(), box)
            if flip_test:
                mirrored = denormalize_from_box(flipped_output.float(), box)
                visibility = torch.ones(mirrored.shape[:-1], device=mirrored.device)
                unmirrored, _ = flip_keypoints(mirrored, visibility, input_size[1], flip_pairs)
                points = (points + unmirrored) / 2
            points = points.cpu()
            scores = torch.ones(points.shape[:-1])
            map_size = input_size
        else:
            raise ValueError(f"the model returned shape {tuple(output.shape)}: expected heatmaps (N, K, h, w) "
                             "or coordinates (N, K, 2)")
        image_points = crop_to_image(points.numpy(), batch["center"].numpy(), batch["scale"].numpy(),
                                     batch["rotation"].numpy(), map_size)
        parts["kp"].append(np.asarray(image_points, dtype=np.float64))
        parts["sc"].append(scores.numpy().astype(np.float64))
        parts["gt"].append(batch["keypoints_image"].numpy().astype(np.float64))
        parts["vis"].append(batch["visibility_image"].numpy())
        parts["box"].append(batch["box"].numpy().astype(np.float64))
        count = len(images)
        parts["area"].append(batch["area"].numpy().astype(np.float64) if "area" in batch else
                             batch["box"][:, 2].numpy() * batch["box"][:, 3].numpy())
        if "head_box" in batch:
            parts["head"].append(batch["head_box"].numpy().astype(np.float64))
        parts["img"].append(batch["image_id"].numpy() if "image_id" in batch else np.zeros(count, dtype=np.int64))
        parts["ann"].append(batch["annotation_id"].numpy() if "annotation_id" in batch else np.zeros(count, dtype=np.int64))
    if not parts["kp"]:
        raise ValueError("data is empty: nothing to predict")
    return Predictions(
        keypoints=np.concatenate(parts["kp"]),
        scores=np.concatenate(parts["sc"]),
        gt_keypoints=np.concatenate(parts["gt"]),
        gt_visibility=np.concatenate(parts["vis"]),
        boxes=np.concatenate(parts["box"]),
        areas=np.concatenate(parts["area"]),
        head_boxes=np.concatenate(parts["head"]) if len(parts["head"]) == len(parts["kp"]) else None,
        image_ids=np.concatenate(parts["img"]),
        annotation_ids=np.concatenate(parts["ann"]),
    )


def _final_output(output: Any) -> torch.Tensor:
    if isinstance(output, (list, tuple)):
        output = output[-1]
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"the model must return a tensor or a list of stage tensors, got {type(output).__name__}")
    return output


# ============================================================================ evaluation
@dataclass
class Evaluation:
    """:func:`evaluate`'s result: ``metrics`` (name -> number) and the ``predictions``."""

    metrics: dict[str, float]
    predictions: Predictions

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.3f}" for k, v in self.metrics.items())
        return f"Evaluation({shown})"


def score_predictions(predictions: Predictions, coco_ap: bool = True) -> dict[str, float]:
    """Every metric the course reports for single-person top-down predictions.

    * ``pck@0.2``, ``pck@0.1``, ``pck@0.05``: PCK normalised by the person box, max(w, h)
      (MMPose's ``bbox`` normalisation), pooled over all labelled joints (v > 0);
    * ``pckh@0.5``: when the data has head boxes (MPII's 0.6 x head-box diagonal);
    * ``pdj@0.2``: PDJ with the box diagonal as the body size;
    * ``mean_error``: mean pixel distance over labelled joints;
    * ``AP``, ``AP50``, ``AP75``, ``AR`` (with ``coco_ap``): COCO's OKS-based AP, each
      prediction scored by the mean of its keypoint scores (box score 1: ground-truth boxes).
    """
    p = predictions
    norm = metrics.bbox_size(p.boxes)
    result = {
        "pck@0.2": metrics.pck(p.keypoints, p.gt_keypoints, p.gt_visibility, norm, 0.2).mean,
        "pck@0.1": metrics.pck(p.keypoints, p.gt_keypoints, p.gt_visibility, norm, 0.1).mean,
        "pck@0.05": metrics.pck(p.keypoints, p.gt_keypoints, p.gt_visibility, norm, 0.05).mean,
    }
    if p.head_boxes is not None:
        result["pckh@0.5"] = metrics.pckh(p.keypoints, p.gt_keypoints, p.gt_visibility, p.head_boxes, 0.5).mean
    result["pdj@0.2"] = metrics.pdj(p.keypoints, p.gt_keypoints, p.gt_visibility, metrics.box_diagonal(p.boxes), 0.2).mean
    result["mean_error"] = float(np.nanmean(p.errors))
    if coco_ap:
        gt, dt = coco_dicts(p)
        stats = metrics.coco_keypoint_eval(gt, dt)
        result.update({k: stats[k] for k in ("AP", "AP50", "AP75", "AR")})
    return {k: float(v) for k, v in result.items()}


def coco_dicts(predictions: Predictions) -> tuple[dict, list[dict]]:
    """Ground truth and results in COCO format, for :func:`course_lib.metrics.coco_keypoint_eval`.

    Each item becomes its own COCO "image" (numbered by position) so that people of a
    multi-person image evaluated from ground-truth boxes stay one-to-one.
    """
    p = predictions
    n, k = p.gt_visibility.shape
    images = [{"id": i + 1} for i in range(n)]
    annotations, results = [], []
    for i in range(n):
        flags = p.gt_visibility[i]
        gt_triplets = np.concatenate([np.where(flags[:, None] > 0, p.gt_keypoints[i], 0), flags[:, None]], axis=1)
        annotations.append({
            "id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
            "keypoints": gt_triplets.ravel().tolist(), "num_keypoints": int((flags > 0).sum()),
            "area": float(p.areas[i]), "bbox": p.boxes[i].tolist(),
        })
        dt_triplets = np.concatenate([p.keypoints[i], p.scores[i][:, None]], axis=1)
        results.append({"image_id": i + 1, "category_id": 1, "keypoints": dt_triplets.ravel().tolist(),
                        "score": float(np.mean(p.scores[i]))})
    gt = {"images": images, "annotations": annotations,
          "categories": [{"id": 1, "name": "person", "keypoints": [str(j) for j in range(k)]}]}
    return gt, results


def evaluate(
    model: nn.Module,
    data: torch.utils.data.Dataset,
    *,
    decoder: str | Callable = "dark",
    flip_test: bool = False,
    shift_heatmaps: bool = True,
    batch_size: int = 64,
    device: str | torch.device = "auto",
    coco_ap: bool = True,
    progress: bool = False,
) -> Evaluation:
    """Predict on ``data`` (see :func:`predict`) and score with :func:`score_predictions`."""
    predictions = predict(model, data, decoder=decoder, flip_test=flip_test, shift_heatmaps=shift_heatmaps,
                          batch_size=batch_size, device=device, progress=progress)
    return Evaluation(score_predictions(predictions, coco_ap=coco_ap), predictions)


# ============================================================================ data for a model
def model_sizes(model: nn.Module, input_size: tuple[int, int] | None = None) -> tuple[tuple[int, int], tuple[int, int] | None]:
    """``(input_size, heatmap_size)`` of a model: heatmap size = input / ``model.stride`` (None for regressors)."""
    input_size = tuple(input_size or getattr(model, "input_size"))
    stride = getattr(model, "stride", None)
    if stride is None:
        return input_size, None
    return input_size, (input_size[0] // stride, input_size[1] // stride)


def top_down_data(
    split_dir: str | os.PathLike,
    input_size: tuple[int, int],
    heatmap_size: tuple[int, int] | None = None,
    *,
    augment: bool = False,
    sigma: float = 2.0,
    flip_prob: float = 0.0,
    limit: int | None = None,
    seed: int = 0,
    **options: Any,
) -> TopDownDataset:
    """A :class:`~course_lib.geometry.TopDownDataset` over the COCO-format folder ``split_dir``.

    ``heatmap_size`` defaults to input / 4 (regression models ignore the heatmaps).
    ``limit`` keeps the first items only (fast experiments).  Images are cached in memory.
    ``options`` go to ``TopDownDataset`` (``scale_factor``, ``rotation_factor``...).

    Flips are off by default (``flip_prob=0``): the synthetic people wear a left/right tint,
    and a mirrored image shows the left tint on the person's right, contradicting its
    swapped labels.  Chapter 06 shows what flips do with and without tints.
    """
    from course_lib.data import CocoKeypoints

    annotations = Path(split_dir) / "annotations.json"
    if not annotations.is_file():
        raise FileNotFoundError(
            f"{annotations} does not exist: run `make data` (or course_lib.data.ensure_default_data())"
        )
    people = CocoKeypoints(annotations, cache_images=True)
    samples = people if limit is None else torch.utils.data.Subset(people, range(min(int(limit), len(people))))
    heatmap_size = heatmap_size or (input_size[0] // 4, input_size[1] // 4)
    return TopDownDataset(samples, input_size=input_size, heatmap_size=heatmap_size, sigma=sigma,
                          augment=augment, flip_prob=flip_prob, seed=seed, **options)

