"""Distributed training with torchrun on the CPU (gloo): 2 processes agree with 1, and a killed run resumes exactly.

Each run starts ``python -m torch.distributed.run`` (torchrun) with 2 processes of
tests/distributed_worker.py, a tiny network on random images: a few seconds each.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
_spec = importlib.util.spec_from_file_location("distributed_worker", HERE / "distributed_worker.py")
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)


def torchrun(*arguments: str, processes: int = 2, check: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               *arguments]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    if check and result.returncode != 0:
        raise AssertionError(f"torchrun failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> Path:
    """An uninterrupted 2-process run: 12 steps of 4 items per process (global batch 8), checkpoints every 5."""
    out = tmp_path_factory.mktemp("ddp")
    torchrun("tests/distributed_worker.py", str(out))
    return out


def test_two_processes_with_half_the_batch_end_where_one_process_does(two_processes, tmp_path):
    model = worker.train(tmp_path, steps=12, batch_size=8, checkpoint_every=None, kill_at=None, resume=False)
    one, two = model.state_dict(), weights(two_processes / "weights.pt")
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], atol=2e-5, rtol=1e-4)
    moved = worker.tiny_network().state_dict()
    assert any(not torch.allclose(one[name], moved[name], atol=1e-3) for name in one)  # training did move them
    # the shares differ: another global batch gives other weights
    other = worker.train(tmp_path / "other", steps=12, batch_size=4, checkpoint_every=None, kill_at=None, resume=False)
    assert any(not torch.allclose(other.state_dict()[n], one[n], atol=1e-4) for n in one)


def test_a_killed_two_process_run_resumes_to_the_uninterrupted_weights(two_processes, tmp_path):
    killed = torchrun("tests/distributed_worker.py", str(tmp_path), "--kill-at", "8", check=False)
    assert killed.returncode != 0 and not (tmp_path / "weights.pt").exists()
    saved = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert saved["position"]["step"] == 5  # the last checkpoint before the kill
    torchrun("tests/distributed_worker.py", str(tmp_path), "--resume")
    resumed, uninterrupted = weights(tmp_path / "weights.pt"), weights(two_processes / "weights.pt")
    for name in uninterrupted:
        assert torch.equal(resumed[name], uninterrupted[name]), name
    assert torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["position"]["step"] == 12


# ---------------------------------------------------------------------------- the README's commands
@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    """A COCO-format folder with train2017/ (16 images) and val2017/ (8), as data_scripts/coco.py lays COCO out."""
    from course_lib import data

    root = tmp_path_factory.mktemp("coco")
    data.make_synthetic(root / "train2017", 16, seed=1)
    data.make_synthetic(root / "val2017", 8, seed=2)
    return root


def _recipe_run(small_data: Path, out: Path, *extra: str) -> list[str]:
    return ["-m", "course_lib.train", "--recipe", "hrnet_w32_coco_256x192", "--model", "hrnet_tiny",
            "--data", str(small_data), "--steps", "2", "--batch-size", "2", "--device", "cpu", "--json",
            "--checkpoint-dir", str(out), *extra]


def _summary(result: subprocess.CompletedProcess) -> dict:
    import json

    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_recipe_command_on_one_process(small_data, tmp_path, capsys):
    from course_lib import train

    assert train.main(_recipe_run(small_data, tmp_path)[2:]) == 0
    summary = __import__("json").loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["recipe"], summary["processes"], summary["steps"]) == ("hrnet_w32_coco_256x192", 1, 2)
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert saved["position"]["step"] == 2 and saved["history"]["images"] == 4


def test_the_recipe_command_under_torchrun_on_one_machine(small_data, tmp_path):
    from course_lib import zoo

    result = torchrun(*_recipe_run(small_data, tmp_path, "--out", str(tmp_path / "model.pt")))
    summaries = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1  # only process 0 prints
    summary = _summary(result)
    assert (summary["processes"], summary["steps"]) == (2, 2)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["history"]["images"] == 8  # 2 steps x 2 x 2
    model = zoo.load(tmp_path / "model.pt")  # written by process 0: what predict, export and evaluate_coco read
    assert tuple(model.input_size) == (256, 192) and set(model.validation) >= {"pck@0.2", "AP"}
    assert not list(tmp_path.glob("model.pt.*")), "a temporary file of --out was left behind"


def test_the_recipe_command_on_two_machines(small_data, tmp_path):
    import os
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    machines = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node_rank={rank}", "--nproc_per_node=1",
         "--master_addr=127.0.0.1", f"--master_port={port}", *_recipe_run(small_data, tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        for rank in (0, 1)]
    outputs = [machine.communicate(timeout=300) for machine in machines]
    assert [machine.returncode for machine in machines] == [0, 0], outputs
    summary = __import__("json").loads(outputs[0][0].strip().splitlines()[-1])
    assert (summary["processes"], summary["steps"]) == (2, 2)
    assert not [line for line in outputs[1][0].splitlines() if line.startswith("{")]  # machine 1 prints nothing


def test_sync_bn_says_it_needs_cuda_on_the_cpu(small_data, tmp_path):
    result = torchrun(*_recipe_run(small_data, tmp_path, "--sync-bn"), check=False)
    assert result.returncode != 0 and "SyncBatchNorm runs on GPUs only" in result.stderr


def test_sync_bn_converts_every_batchnorm():
    from torch import nn

    from course_lib import models, training

    model = models.build("simplebaseline_tiny")
    before = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    training._prepare(model, torch.device("cpu"), False, False, 0, 0, sync_bn=True)
    assert before > 0 and sum(isinstance(m, nn.SyncBatchNorm) for m in model.modules()) == before


def test_epochs_count_steps_at_the_global_batch(small_data):
    import argparse

    from course_lib import recipes, train

    args = argparse.Namespace(model="hrnet_tiny", data=small_data, batch_size=2, lr=None, seed=0, steps=None,
                              epochs=1.0, pretrained=None)
    recipe = recipes.get("hrnet_w32_coco_256x192")
    model, train_data, val_data, options = train._prepare_run(args, recipe, world=2)
    assert options["steps"] == len(train_data) // 4 and options["batch_size"] == 2
    assert options["lr_milestones"] == pytest.approx((170 / 210, 200 / 210)) and options["weight_decay"] == 0.0
    assert (train_data.scale_factor, train_data.rotation_factor, train_data.half_body_prob) == (0.35, 45.0, 0.3)
    assert model.input_size == (256, 192) and train_data.heatmap_size == (64, 48)
    args.epochs = None
    assert train._prepare_run(args, recipe, world=1)[3]["steps"] == 210 * (len(train_data) // 2)
