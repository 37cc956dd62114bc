"""Where and how long things run: the fast profile, the device, mixed precision, batches on the device.

* :func:`fast_profile` / :func:`budget`: every notebook runs through the same code in two
  profiles, the full one (a student's run) and a fast one (``COURSE_FAST=1``: continuous
  integration, a few steps of everything).
* :func:`resolve_device`: ``"auto"`` picks CUDA, then Apple's MPS, then the CPU.
* :func:`seeded` / :func:`seed_everything`: the course's one seeding convention (below).
* :func:`autocast_dtype`, :func:`move_batch`, :func:`default_workers`: what
  :func:`course_lib.training.fit` does differently on a GPU (mixed precision, channels-last
  images, loader processes).
* :func:`distributed_setup`, :func:`process_group`: the process group of a distributed run
  (``torchrun --nproc_per_node=N ...``), PyTorch's own: NCCL between GPUs, gloo on the CPU.

Seeding convention: an experiment has one ``seed`` and it reaches every random choice.  The
model's initial weights come from ``models.build(name, seed=seed)`` (a model built by hand:
inside ``with seeded(seed):``), then ``training.fit(..., seed=seed)`` seeds the updates, the
order of the items and the augmentation.  A cell that draws anything else from the global
random state starts with ``seed_everything(seed)``.  So a rerun of a chapter gives the same
weights and the same tables on the same machine, whatever ran before.
"""

from __future__ import annotations

import contextlib
import os
import random
from typing import Any, Iterator

import numpy as np

import torch


# ============================================================================ seeds
def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TypeError(f"seed must be a whole number >= 0, got {seed!r}")
    return int(seed)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global random generators with ``seed``."""
    seed = _check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's generator seeded by ``seed``, then restore the global state:
    ``with seeded(0): model = MyNet()`` gives the same weights whatever ran before."""
    seed = _check_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


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


def default_workers(device: torch.device) -> int:
    """Loader worker processes: none on the CPU (they would take cores from the model), several on a GPU.

    Under ``torchrun`` the machine's cores are shared by its ``LOCAL_WORLD_SIZE`` processes.
    """
    if device.type == "cpu":
        return 0
    cores = (os.cpu_count() or 2) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, min(8, cores - 1))


# ============================================================================ distributed runs
def process_group() -> tuple[int, int]:
    """``(rank, world_size)`` of the process group this process belongs to; ``(0, 1)`` outside one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def distributed_setup(device: str | torch.device = "auto") -> tuple[torch.device, int, int]:
    """Join the process group ``torchrun`` describes, if any; return ``(device, rank, world_size)``.

    ``torchrun`` starts one process per GPU (or per CPU share) and gives each the variables
    ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``.  With
    ``WORLD_SIZE > 1`` this joins the group with NCCL on CUDA and gloo on the CPU (once; a
    group already started by the caller is used as it is), and on CUDA picks the GPU
    ``cuda:LOCAL_RANK``.  Without them it only resolves ``device``.
    """
    import torch.distributed as dist

    device = resolve_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if not dist.is_initialized() and world > 1:
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"distributed training runs on 'cpu' (gloo) or 'cuda' (NCCL), got device {device}")
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank, world = process_group()
    if device.type == "cuda" and world > 1 and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank % torch.cuda.device_count())))
        torch.cuda.set_device(device)
    return device, rank, world


def rank_zero_value(value: float, world_size: int) -> float:
    """``value`` as process 0 has it, in every process (a broadcast; the value itself with one process).

    Used for decisions every process must take alike, e.g. whether the time budget is spent.
    """
    if world_size == 1:
        return value
    import torch.distributed as dist

    tensor = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.broadcast(tensor, src=0)
    return float(tensor.item())
