"""One process of the distributed tests (tests/test_distributed.py), started by ``torchrun``.

    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/distributed_worker.py OUT \
        [--steps 12] [--batch-size 4] [--checkpoint-every 5] [--kill-at STEP] [--resume]

It trains a tiny network without BatchNorm on 64 random images with ``training.fit`` inside
the process group torchrun describes; process 0 writes the final weights to ``OUT/weights.pt``.
``--kill-at STEP`` kills process 1 (SIGKILL, as a lost machine) during that step.
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path

import torch
from torch import nn

from course_lib import training


class RandomImages(torch.utils.data.Dataset):
    """64 items: an image ``(3, 16, 16)`` and a target ``(4, 16, 16)``, fixed by seed 0."""

    def __init__(self, size: int = 64) -> None:
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randn(size, 3, 16, 16, generator=generator)
        self.targets = torch.randn(size, 4, 16, 16, generator=generator)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index], "heatmaps": self.targets[index]}


def tiny_network() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, padding=1))


class SquaredError:
    """Mean squared error; kills this process during step ``kill_at`` if it is process 1."""

    def __init__(self, kill_at: int | None = None) -> None:
        self.kill_at, self.calls = kill_at, 0

    def __call__(self, outputs: torch.Tensor, batch: dict) -> torch.Tensor:
        self.calls += 1
        if self.kill_at is not None and self.calls == self.kill_at and os.environ.get("RANK") == "1":
            os.kill(os.getpid(), signal.SIGKILL)
        return ((outputs - batch["heatmaps"]) ** 2).mean()


def train(out: Path, steps: int, batch_size: int, checkpoint_every: int | None, kill_at: int | None,
          resume: bool) -> nn.Module:
    model = tiny_network()
    training.fit(model, RandomImages(), None, SquaredError(kill_at), steps, batch_size=batch_size, lr=1e-2,
                 device="cpu", seed=0, progress=False, checkpoint_dir=out / "checkpoints",
                 checkpoint_every=checkpoint_every, resume=resume)
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--checkpoint-every", type=int, default=5)
    parser.add_argument("--kill-at", type=int, default=None)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = train(args.out, args.steps, args.batch_size, args.checkpoint_every, args.kill_at, args.resume)
    if torch.distributed.get_rank() == 0:
        torch.save(model.state_dict(), args.out / "weights.pt")
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
