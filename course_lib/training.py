"""Training (chapters 01-09): one step of gradient descent, and the loop that repeats it.

Read it top to bottom, as a run goes:

* :func:`train_step` is one step, the five lines every chapter's network is trained with:
  forward, loss, a check that the loss is a number, backward, update.
* :func:`fit` repeats it over the batches of a data set for a number of steps (or seconds),
  with a learning-rate schedule, validation now and then, checkpoints and a progress bar;
  it returns a :class:`History` that can plot itself.  On CUDA it adds mixed precision,
  channels-last images, pinned memory and loader workers; the step stays the same.
* :func:`save_checkpoint` / :func:`load_checkpoint` write and read everything a run needs to
  continue: weights, optimizer, random state and the position in the data.

Reproducibility: on the CPU the same ``seed`` gives the same weights and metrics.  Every
random choice is seeded: the initial weights (``models.build(name, seed=seed)``, or a model
built inside ``with training.seeded(seed):``; see :mod:`course_lib.runtime`), the updates
(``torch.manual_seed``), the order of the items and the
loaders (:mod:`course_lib.schedules`, from ``(seed, epoch)``, never from the global random
state), and the augmentation (drawn by the data set from ``(seed, epoch, index)``, whatever the
number of loader workers).  A checkpoint stores the step, the position in the epoch and the
global random state (which only the model draws from, e.g. for dropout), so ``resume=True``
after a killed run ends with exactly the weights of an uninterrupted run.

The neighbours, re-exported here because the notebooks call them as ``training.*``:
:mod:`course_lib.runtime` (``budget``, ``fast_profile``, ``resolve_device``, ``seeded``,
``seed_everything``...),
:mod:`course_lib.schedules` (``learning_rate``, ``EpochBatches``),
:mod:`course_lib.top_down` (``top_down_data``, ``model_sizes``),
:mod:`course_lib.prediction` (``predict``, ``Predictions``) and
:mod:`course_lib.scoring` (``evaluate``, ``score_predictions``, ``Evaluation``).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from course_lib.heatmaps import DECODERS, Decoder, decode_heatmaps  # noqa: F401  (re-exported)
from course_lib.prediction import Predictions, predict  # noqa: F401  (re-exported)
from course_lib.runtime import (  # noqa: F401  (re-exported)
    autocast_dtype,
    budget,
    default_workers,
    distributed_setup,
    fast_profile,
    move_batch,
    rank_zero_value,
    resolve_device,
    seed_everything,
    seeded,
)
from course_lib.schedules import EpochBatches, epoch_loader, learning_rate  # noqa: F401  (re-exported)
from course_lib.scoring import Evaluation, coco_dicts, evaluate, score_predictions  # noqa: F401  (re-exported)
from course_lib.top_down import model_sizes, top_down_data  # noqa: F401  (re-exported)
from course_lib.validation import check_choice, check_integer, check_positive

LossFunction = Callable[[Any, dict], "torch.Tensor | Mapping[str, torch.Tensor]"]


# ============================================================================ one step
def train_step(
    model: nn.Module,
    batch: dict,
    loss_fn: LossFunction,
    optimizer: torch.optim.Optimizer,
    *,
    scaler: torch.amp.GradScaler | None = None,
    amp_dtype: torch.dtype | None = None,
    grad_clip: float | None = None,
    step: int = 1,
) -> dict[str, float]:
    """One step of gradient descent on one batch; returns the value of each loss term.

        outputs = model(batch["image"])
        L       = sum of the terms of loss_fn(outputs, batch)      (one tensor, or a dict of them)
        stop if a term is NaN or infinite
        optimizer.zero_grad();  L.backward();  optimizer.step()

    Args:
        model: in training mode, on the batch's device.
        batch: a collated dict with at least ``"image"`` ``(N, 3, H, W)``.
        loss_fn: ``loss_fn(outputs, batch)``, e.g. ``losses.HeatmapLoss()``.
        optimizer: e.g. ``torch.optim.AdamW(model.parameters())``.
        scaler: a ``GradScaler`` for float16 mixed precision (it scales the loss before
            ``backward`` so small gradients survive); None for plain precision.
        amp_dtype: run the forward pass under ``torch.autocast`` in this type (CUDA only).
        grad_clip: clip the gradient norm to this value.
        step: the step's number, for the error message.

    Raises:
        FloatingPointError: a loss term is NaN or infinite (the message names the step and the term).
    """
    with torch.autocast(_device_type(model), dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        outputs = model(batch["image"])
    terms = _loss_terms(loss_fn, _to_float(outputs), batch)
    values = {name: float(value.detach()) for name, value in terms.items()}
    for name, value in values.items():
        if not math.isfinite(value):
            raise FloatingPointError(f"loss term {name!r} is {value} at step {step}: training stopped "
                                     "(try a lower learning rate, or check the targets for NaN)")
    total = sum(terms.values())
    optimizer.zero_grad(set_to_none=True)
    (scaler.scale(total) if scaler is not None else total).backward()
    if grad_clip is not None:
        if scaler is not None:
            scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return values


def _device_type(model: nn.Module) -> str:
    parameter = next(model.parameters(), None)
    return parameter.device.type if parameter is not None else "cpu"


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
    raise TypeError("the loss must return a scalar tensor or a non-empty dict of scalar tensors, "
                    f"got {type(value).__name__}")


# ============================================================================ history
@dataclass
class History:
    """What :func:`fit` measured: the loss per step, the learning rate, validation metrics.

    ``terms`` holds each named loss term per step (e.g. ``stage1``, ``stage2``).
    ``val`` holds one dict of metrics per validation (at the steps ``val_steps``, after
    ``val_seconds`` seconds of training).
    """

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    terms: dict[str, list[float]] = field(default_factory=dict)
    val_steps: list[int] = field(default_factory=list)
    val: list[dict[str, float]] = field(default_factory=list)
    val_seconds: list[float] = field(default_factory=list)
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

    def record_step(self, step: int, terms: dict[str, float], lr: float, images: int) -> None:
        """Add one training step: its loss terms (and their sum), the learning rate, the images it saw."""
        self.steps.append(step)
        self.loss.append(sum(terms.values()))
        self.lr.append(lr)
        for name, value in terms.items():
            self.terms.setdefault(name, []).append(value)
        self.images += images

    def record_validation(self, step: int, scores: dict[str, float]) -> None:
        """Add the validation metrics measured after ``step`` (and after the training time so far)."""
        self.val_steps.append(step)
        self.val.append(scores)
        self.val_seconds.append(self.seconds)

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


# ============================================================================ checkpoints
@dataclass
class Position:
    """Where a run stands: ``step`` steps done, in ``epoch``, of which ``batch_in_epoch`` batches are used."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    position: Position,
    history: History,
) -> None:
    """Write everything a run needs to continue exactly: weights, optimizer, scaler, random state, position, history.

    Written atomically (a temporary file, then a rename), so that a run killed while saving
    leaves the previous checkpoint whole.  Only tensors, numbers, strings, lists and dicts
    are stored, so :func:`load_checkpoint` reads it with ``torch.load(..., weights_only=True)``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "cpu_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "position": asdict(position),
        "history": asdict(history),
    }
    temporary = path.with_suffix(".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
) -> tuple[Position, History]:
    """Restore what :func:`save_checkpoint` wrote into ``model``, ``optimizer``, ``scaler`` and the random state.

    Returns the run's :class:`Position` and :class:`History`.  The file is read with
    ``weights_only=True``: nothing in it is unpickled as code.
    """
    state = torch.load(path, map_location=device, weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["cpu_rng"].cpu())
    if device.type == "cuda" and state["cuda_rng"]:
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
    return Position(**state["position"]), History(**state["history"])


# ============================================================================ the run
def run_batches(
    data: torch.utils.data.Dataset, batch_size: int, seed: int, start: Position, *, num_workers: int = 0,
    pin_memory: bool = False, rank: int = 0, world_size: int = 1, collate_fn: Callable | None = None,
) -> Iterator[tuple[Position, dict]]:
    """Every batch of a run, epoch after epoch, from ``start`` on: yields the position *after* each batch and the batch.

    Each epoch calls ``data.set_epoch(epoch)`` (new augmentation draws) when the data set has
    it, and reads the data through :func:`~course_lib.schedules.epoch_loader` (this process's
    share of each batch when ``world_size > 1``).  The generator never ends; the caller stops
    when its budget is spent.
    """
    epoch, used, step = start.epoch, start.batch_in_epoch, start.step
    while True:
        if hasattr(data, "set_epoch"):
            data.set_epoch(epoch)
        for batch in epoch_loader(data, batch_size, seed, epoch, start=used, num_workers=num_workers,
                                  pin_memory=pin_memory, rank=rank, world_size=world_size, collate_fn=collate_fn):
            used, step = used + 1, step + 1
            yield Position(step, epoch, used), batch
        epoch, used = epoch + 1, 0


class Prefetch:
    """Iterate over ``(position, batch)`` pairs one batch ahead, in a background thread.

    While the model trains on batch ``b`` (PyTorch's kernels release Python's lock), the
    thread reads batch ``b + 1``, so the step rarely waits for data.  The order of batches
    and every random draw are those of the wrapped iterator: it alone decides them.
    :meth:`close` stops the thread and closes the iterator.  ``threaded=False`` reads in
    the caller's thread instead: on the CPU, where the model's own threads already take
    every core, a reading thread only makes them wait (measured: 381 images/s with it,
    564 without, for ``simplebaseline_tiny`` on 2 cores).
    """

    def __init__(self, batches: Iterator[tuple[Position, dict]], depth: int = 2, threaded: bool = True) -> None:
        import queue
        import threading

        self.batches, self.threaded = batches, threaded
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._fill, daemon=True)
        if threaded:
            self.thread.start()

    def _fill(self) -> None:
        try:
            for item in self.batches:
                while not self.stop.is_set():
                    try:
                        self.queue.put(item, timeout=0.05)
                        break
                    except Exception:  # queue.Full: the step is slower than the data; wait
                        continue
                if self.stop.is_set():
                    return
        except BaseException as error:  # handed to the training loop, which raises it
            self.queue.put(("error", error))

    def __iter__(self) -> "Prefetch":
        return self

    def __next__(self) -> tuple[Position, dict]:
        if not self.threaded:  # read in the training thread itself
            return next(self.batches)
        position, batch = self.queue.get()
        if isinstance(position, str) and position == "error":
            raise batch
        return position, batch

    def close(self) -> None:
        self.stop.set()
        while self.threaded and self.thread.is_alive():
            try:
                self.queue.get(timeout=0.05)
            except Exception:  # queue.Empty
                pass
        self.batches.close()  # ends the open epoch's loader (and its worker processes)


def fit(
    model: nn.Module,
    train_data: torch.utils.data.Dataset,
    val_data: torch.utils.data.Dataset | None = None,
    loss: LossFunction | None = None,
    steps: int = 1000,
    *,
    batch_size: int = 32, lr: float = 1e-3, weight_decay: float = 1e-4, grad_clip: float | None = None,
    schedule: str = "cosine", warmup: float = 0.03, lr_milestones: Sequence[float] = (2 / 3, 8 / 9),
    max_seconds: float | None = None,
    device: str | torch.device = "auto", amp: bool = True, channels_last: bool = True, num_workers: int | None = None,
    augmentation: str = "auto", sync_bn: bool = False,
    seed: int = 0,
    eval_every: int | None = None, eval_items: int = 256, eval_metric: str = "pck@0.2", decoder: Decoder = "dark",
    checkpoint_dir: str | os.PathLike | None = None, checkpoint_every: int | None = None, resume: bool = False,
    progress: bool = True,
) -> History:
    """Train ``model`` for ``steps`` steps (or until ``max_seconds`` pass) and return its :class:`History`.

    Each step is :func:`train_step` on the next batch of ``batch_size`` items
    (:func:`run_batches`), with AdamW (``lr``, ``weight_decay``) and the learning rate of
    ``schedule`` at this point of the run (:func:`~course_lib.schedules.learning_rate`; with
    ``max_seconds`` it follows whichever budget runs out first).

    Distributed training: inside a process group (``torchrun --nproc_per_node=N``, or a
    group the caller started with ``torch.distributed.init_process_group``), each of the
    ``N`` processes trains a copy of the model wrapped in PyTorch's
    ``DistributedDataParallel`` on its share of the same seeded batches of
    ``batch_size * N`` items; gradients are averaged across processes, so ``N`` processes
    with ``batch_size = B / N`` end where one process with ``B`` would.  Only process 0
    shows the progress bar, validates and writes checkpoints; every process resumes from
    the same checkpoint.

    Args:
        model: any ``nn.Module`` taking ``(N, 3, H, W)`` images.
        train_data, val_data: map-style data sets of dict items with at least ``"image"``
            (e.g. :class:`~course_lib.top_down.TopDownDataset`); ``set_epoch(epoch)`` is
            called on ``train_data`` each epoch when it has it.
        loss: ``loss(outputs, batch)``, e.g. ``losses.HeatmapLoss()``.
        steps: the step budget.
        batch_size: items per step and per process.
        lr_milestones: where the ``"step"`` schedule divides the rate by 10, as fractions of
            the run (a recipe's ``milestones``, see :mod:`course_lib.recipes`).
        max_seconds: a wall-clock budget (training stops at whichever comes first).
        device: ``"auto"`` (CUDA, MPS, CPU), ``"cpu"``, ``"cuda"``...
        amp: mixed precision on CUDA (bfloat16 where supported, else float16 with loss scaling).
        channels_last: channels-last memory layout on CUDA (faster convolutions on tensor cores).
        num_workers: loader processes (default: 0 on CPU, several on GPU; pinned memory on CUDA).
        augmentation: where the crops and targets of a
            :class:`~course_lib.top_down.TopDownDataset` are cut
            (:mod:`course_lib.batched_augment`): ``"items"`` item by item in the loader
            (chapter 06's path), ``"batches"`` a whole batch at once in the loader (OpenCV,
            the same batch bit for bit), ``"device"`` a whole batch on the training device
            (``grid_sample``); ``"auto"`` picks the fastest for the device (see
            :func:`augmentation_for`).  Other data sets are read item by item.
        sync_bn: turn BatchNorm layers into ``SyncBatchNorm`` (statistics over all
            processes' batches) in a distributed run on CUDA.
        seed: seeds the weights' updates, the order of items and (through the data) augmentation.
        eval_every: validate every so many steps (default: about 5 times per run) on the first
            ``eval_items`` items of ``val_data``; the metric ``eval_metric`` shows in the
            progress bar.  Always validated at the end when ``val_data`` is given.
        decoder: heatmap decoder used for validation (see :func:`~course_lib.prediction.predict`).
        checkpoint_dir: where ``last.pt`` is written every ``checkpoint_every`` steps and at the end.
        resume: continue from ``checkpoint_dir/last.pt`` if it exists (same arguments expected).
        progress: show a progress bar (``tqdm.auto``: a widget in notebooks).
        grad_clip: clip the gradient norm to this value.

    Raises:
        FloatingPointError: the loss became NaN or infinite (the message names the step and the term).
    """
    steps = _check_fit_arguments(train_data, loss, steps, batch_size, lr, schedule, max_seconds, resume, checkpoint_dir)
    device, rank, world, amp_dtype, channels_last, workers, optimizer, scaler = _setup(
        model, train_data, batch_size, device, amp, channels_last, num_workers, seed, sync_bn, lr, weight_decay)
    checkpoint, position, history = _start(checkpoint_dir, resume, model, optimizer, scaler, device)
    network = _parallel(model, device, world)
    validate = _validator(val_data, eval_items, decoder, device) if rank == 0 else None
    eval_every, schedule_of = eval_every or max(1, steps // 5), (schedule, warmup, tuple(lr_milestones))
    clock, bar = _Clock(history.seconds), _progress_bar(steps, position.step, progress and rank == 0)
    loader_data, collate, to_device = _pipeline(train_data, device, augmentation, channels_last)
    batches = _prefetched_batches(loader_data, collate, batch_size, seed, position, workers, device, rank, world)
    network.train()
    try:
        while position.step < steps:
            seconds = rank_zero_value(clock.seconds(), world) if max_seconds is not None else 0.0
            if max_seconds is not None and seconds >= max_seconds:
                history.stopped_by = "max_seconds"
                break
            current_lr = _set_learning_rate(optimizer, lr, schedule_of, position.step / steps, seconds, max_seconds)
            position, batch = next(batches)
            batch = to_device(batch)
            values = train_step(network, batch, loss, optimizer, scaler=scaler, amp_dtype=amp_dtype,
                                grad_clip=grad_clip, step=position.step)
            history.record_step(position.step, values, current_lr, batch_size * world)
            history.seconds = clock.seconds()
            if validate is not None and (position.step % eval_every == 0 or position.step == steps):
                with clock.paused():
                    history.record_validation(position.step, validate(model))
            _show(bar, history, eval_metric)
            due = checkpoint_every and position.step % checkpoint_every == 0 and position.step < steps
            if checkpoint is not None and due:
                _save(checkpoint, rank, world, model, optimizer, scaler, position, history)
    finally:
        batches.close()  # stops the reading thread and the open epoch's loader
        if bar is not None:
            bar.close()
    history.seconds = clock.seconds()
    if validate is not None and position.step > 0 and (not history.val_steps or history.val_steps[-1] != position.step):
        history.record_validation(position.step, validate(model))
    if checkpoint is not None:
        _save(checkpoint, rank, world, model, optimizer, scaler, position, history)
    model.eval()
    return history


def _setup(model: nn.Module, train_data, batch_size: int, device, amp: bool, channels_last: bool,
           num_workers: int | None, seed: int, sync_bn: bool, lr: float, weight_decay: float) -> tuple:
    """Join the process group if any, prepare the model on its device, make the optimizer and the scaler.

    Returns ``(device, rank, world_size, amp_dtype, channels_last, num_workers, optimizer, scaler)``.
    """
    device, rank, world = distributed_setup(device)
    _check_shares(train_data, batch_size, world, sync_bn, device)
    device, amp_dtype, channels_last, workers = _prepare(model, device, amp, channels_last, num_workers, seed,
                                                         sync_bn and world > 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    return device, rank, world, amp_dtype, channels_last, workers, optimizer, scaler


def _start(checkpoint_dir, resume: bool, model, optimizer, scaler, device: torch.device):
    """``(checkpoint path or None, position, history)``: where the run starts, from ``last.pt`` when resuming.

    In a distributed run every process reads the same file, so all restart at the same step.
    """
    checkpoint = Path(checkpoint_dir) / "last.pt" if checkpoint_dir is not None else None
    position, history = Position(), History(device=str(device))
    if resume and checkpoint.exists():
        position, history = load_checkpoint(checkpoint, model, optimizer, scaler, device)
    return checkpoint, position, history


def _check_shares(train_data, batch_size: int, world: int, sync_bn: bool, device: torch.device) -> None:
    """The checks of a distributed run: enough items for every process, SyncBatchNorm only on CUDA."""
    if world > 1 and len(train_data) < batch_size * world:
        raise ValueError(f"train_data has {len(train_data)} items, fewer than batch_size={batch_size} times "
                         f"{world} processes")
    if sync_bn and world > 1 and device.type != "cuda":
        raise ValueError("sync_bn=True needs CUDA: PyTorch's SyncBatchNorm runs on GPUs only "
                         f"(device here: {device}); leave it off on the CPU")


def _parallel(model: nn.Module, device: torch.device, world: int) -> nn.Module:
    """The module the steps run: ``DistributedDataParallel(model)`` in a process group, else ``model``.

    DDP copies process 0's weights to every process when it starts, then averages the
    gradients of each ``backward`` across processes (an all-reduce overlapped with it).
    """
    if world == 1:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def _save(path: Path, rank: int, world: int, model, optimizer, scaler, position: Position, history: History) -> None:
    """Process 0 writes the checkpoint; in a distributed run the others wait until it is written."""
    if rank == 0:
        save_checkpoint(path, model, optimizer, scaler, position, history)
    if world > 1:
        torch.distributed.barrier()


def _prepare(model: nn.Module, device: torch.device, amp: bool, channels_last: bool, num_workers: int | None,
             seed: int, sync_bn: bool = False):
    """Seed, decide what runs differently on the device, move the model (with SyncBatchNorm if asked).

    Returns ``(device, amp_dtype, channels_last, num_workers)``.
    """
    amp_dtype, channels_last = autocast_dtype(device, amp), channels_last and device.type == "cuda"
    workers = default_workers(device) if num_workers is None else check_integer(num_workers, "num_workers", minimum=0)
    torch.manual_seed(seed)
    if sync_bn:
        nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return device, amp_dtype, channels_last, workers


def _check_fit_arguments(train_data, loss, steps, batch_size, lr, schedule, max_seconds, resume, checkpoint_dir) -> int:
    """The checks :func:`fit` runs before it touches the model; returns ``steps`` as an int."""
    if loss is None or not callable(loss):
        raise TypeError(f"loss must be a callable loss(outputs, batch), e.g. losses.HeatmapLoss(); got {loss!r}")
    steps = check_integer(steps, "steps", minimum=1)
    batch_size = check_integer(batch_size, "batch_size", minimum=1)
    check_positive(lr, "lr")
    check_choice(schedule, "schedule", ("cosine", "step", "constant"))
    if max_seconds is not None:
        check_positive(max_seconds, "max_seconds")
    if len(train_data) < batch_size:
        raise ValueError(f"train_data has {len(train_data)} items, fewer than batch_size={batch_size}")
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs a checkpoint_dir")
    return steps


def _set_learning_rate(optimizer, base: float, schedule: tuple[str, float, tuple[float, ...]], fraction: float,
                       seconds: float, max_seconds: float | None) -> float:
    """Set the learning rate for the next step, ``fraction`` of the steps (or ``seconds`` of the time) being done.

    ``schedule`` is ``(name, warmup, milestones)``; returns the rate set.
    """
    if max_seconds is not None:
        fraction = max(fraction, seconds / max_seconds)
    name, warmup, milestones = schedule
    current = learning_rate(base, fraction, name, warmup, milestones)
    for group in optimizer.param_groups:
        group["lr"] = current
    return current


def _validator(val_data, eval_items: int, decoder: Decoder, device: torch.device) -> Callable[[nn.Module], dict] | None:
    """``validate(model) -> metrics`` on the first ``eval_items`` items of ``val_data`` (None without val_data)."""
    if val_data is None:
        return None
    subset = torch.utils.data.Subset(val_data, range(min(eval_items, len(val_data))))

    def validate(model: nn.Module) -> dict[str, float]:
        scores = evaluate(model, subset, decoder=decoder, device=device, batch_size=64, coco_ap=False).metrics
        model.train()
        return scores

    return validate


class _Clock:
    """Training time: the seconds of earlier sessions (a resumed run) plus this one's, validation excluded."""

    def __init__(self, earlier: float) -> None:
        self.earlier, self.started, self.excluded = earlier, time.perf_counter(), 0.0

    def seconds(self) -> float:
        return self.earlier + time.perf_counter() - self.started - self.excluded

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        tick = time.perf_counter()
        try:
            yield
        finally:
            self.excluded += time.perf_counter() - tick


def _progress_bar(total: int, initial: int, show: bool):
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="training", unit="step", leave=True)


def _show(bar, history: History, eval_metric: str) -> None:
    """One step more on the progress bar, with the loss and the last validation metric."""
    if bar is None:
        return
    postfix = {"loss": f"{history.loss[-1]:.2e}"}
    if history.val and eval_metric in history.val[-1]:
        postfix[eval_metric] = f"{history.val[-1][eval_metric]:.3f}"
    bar.set_postfix(postfix, refresh=False)
    bar.update(1)


def _prefetched_batches(loader_data, collate: Callable | None, batch_size: int, seed: int, position: Position,
                        workers: int, device: torch.device, rank: int, world: int) -> Prefetch:
    """:func:`run_batches` read one batch ahead in a thread on a GPU (inline on the CPU)."""
    batches = run_batches(loader_data, batch_size, seed, position, num_workers=workers,
                          pin_memory=device.type == "cuda", rank=rank, world_size=world, collate_fn=collate)
    return Prefetch(batches, threaded=device.type != "cpu")


AUGMENTATIONS = ("auto", "items", "batches", "device")


def augmentation_for(device: torch.device) -> str:
    """Where :func:`fit` cuts the crops of a ``TopDownDataset`` by default (``augmentation="auto"``).

    * CUDA: ``"device"``.  The batched warp takes the work off the loader's CPU cores: one
      core cuts about 640 crops with targets per second item by item, so even a 16-core
      server would cap training near 10,000 images/s;
    * elsewhere: ``"batches"``.  On a 2-core CPU the model's own threads take every core, so
      the cheapest preparation wins: whole batches cut by OpenCV, with no per-item Python
      beyond the warp (bench/bench_training.py measures the three against the bare step).
    """
    return "device" if device.type == "cuda" else "batches"


def _pipeline(train_data, device: torch.device, augmentation: str,
              channels_last: bool) -> tuple[torch.utils.data.Dataset, Callable | None, Callable[[dict], dict]]:
    """What the loader reads, how it collates, and what makes a read batch the training batch on ``device``."""
    from course_lib.batched_augment import BatchedAugmentation, BatchedCrops, as_batch
    from course_lib.top_down import TopDownDataset

    augmentation = check_choice(augmentation, "augmentation", AUGMENTATIONS)

    def moved(batch: dict) -> dict:
        return move_batch(batch, device, channels_last)

    # a subclass that reads its items its own way keeps the per-item path
    plain = isinstance(train_data, TopDownDataset) and type(train_data).__getitem__ is TopDownDataset.__getitem__
    if augmentation in ("batches", "device") and not plain:
        raise ValueError(f"augmentation={augmentation!r} needs a TopDownDataset as train_data "
                         f"(one that cuts its items the standard way), got {type(train_data).__name__}")
    if augmentation == "auto":
        augmentation = augmentation_for(device) if plain else "items"
    if augmentation == "items":
        return train_data, None, moved
    if augmentation == "batches":
        return BatchedCrops(train_data), as_batch, moved
    on_device = BatchedAugmentation(train_data, device, channels_last)
    return on_device.raw, on_device.collate, on_device
