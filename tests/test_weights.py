"""Weights from files: each format's names (fixtures of names and shapes) land on the right parameters."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch

from course_lib import models, weights, zoo

FIXTURES = json.load(gzip.open(Path(__file__).parent / "fixtures" / "weights" / "names_and_shapes.json.gz", "rt"))


def fake_state_dict(fixture: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors with the names and shapes of a format's file (positive variances, integer counts)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in FIXTURES[fixture]:
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(7)
        elif name.endswith("running_var"):
            state[name] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[name] = torch.randn(shape, generator=generator)
    return state


@pytest.fixture(scope="module")
def r50():
    return models.build("simplebaseline_r50")


@pytest.fixture(scope="module")
def w32():
    return models.build("hrnet_w32")


@pytest.mark.parametrize("fixture, wrap, their_name, our_name", [
    ("official_simplebaseline_r50", None, "layer3.5.bn2.running_var", "backbone.layer3.5.bn2.running_var"),
    ("official_simplebaseline_r50", None, "deconv_layers.3.weight", "deconv_layers.3.weight"),
    ("mmpose0_simplebaseline_r50", "state_dict", "keypoint_head.final_layer.bias", "final_layer.bias"),
    ("mmpose1_simplebaseline_r50", "state_dict", "backbone.layer4.2.conv3.weight", "backbone.layer4.2.conv3.weight"),
    ("mmpose1_simplebaseline_r50", "state_dict", "head.deconv_layers.7.running_mean", "deconv_layers.7.running_mean"),
])
def test_simplebaseline_files_load_under_the_course_names(tmp_path, r50, fixture, wrap, their_name, our_name):
    state = fake_state_dict(fixture)
    path = tmp_path / "w.pth"
    torch.save({wrap: state, "meta": {"epoch": 210}} if wrap else state, path)
    assert weights.load_weights(r50, path) == fixture.split("_")[0].rstrip("01")
    assert torch.equal(r50.state_dict()[our_name], state[their_name])
    assert len(weights.rename(state, "simplebaseline", weights.weight_format(state))) == len(state)


def test_the_released_simplebaseline_files_have_no_batch_counts_and_still_load(tmp_path, r50):
    state = fake_state_dict("official_simplebaseline_r50")
    assert not any(name.endswith("num_batches_tracked") for name in state)
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "pose_resnet_50_256x192.pth")  # DataParallel names
    weights.load_weights(r50, tmp_path / "pose_resnet_50_256x192.pth")
    assert r50.state_dict()["backbone.bn1.num_batches_tracked"].item() == 0
    assert torch.equal(r50.state_dict()["backbone.bn1.running_mean"], state["bn1.running_mean"])


@pytest.mark.parametrize("fixture", ["official_hrnet_w32", "mmpose0_hrnet_w32", "mmpose1_hrnet_w32"])
def test_hrnet_files_load_whole(tmp_path, w32, fixture):
    state = fake_state_dict(fixture, seed=1)
    torch.save({"state_dict": state} if fixture.startswith("mmpose") else state, tmp_path / "w.pth")
    weights.load_weights(w32, tmp_path / "w.pth")
    ours = w32.state_dict()
    prefix = "" if fixture.startswith("official") else "backbone."
    assert torch.equal(ours["stage4.2.fuse_layers.0.3.0.weight"], state[prefix + "stage4.2.fuse_layers.0.3.0.weight"])
    head = [n for n in state if n.endswith("final_layer.weight")][0]
    assert torch.equal(ours["final_layer.weight"], state[head])
    assert len(state) == len(ours)


def test_weights_that_do_not_fit_the_preset_are_refused_by_name(tmp_path, r50, w32):
    before = {name: tensor.clone() for name, tensor in r50.state_dict().items()}
    state = fake_state_dict("official_simplebaseline_r50")
    torch.save({k: v for k, v in state.items() if not k.startswith("layer4.2.")}, tmp_path / "short.pth")
    with pytest.raises(ValueError, match=r"missing .*backbone\.layer4\.2"):
        weights.load_weights(r50, tmp_path / "short.pth")
    state["final_layer.weight"], state["final_layer.bias"] = torch.zeros(16, 256, 1, 1), torch.zeros(16)
    torch.save(state, tmp_path / "mpii.pth")
    with pytest.raises(ValueError, match=r"wrong shape 2: final_layer\.weight \(16, 256, 1, 1\)"):
        weights.load_weights(r50, tmp_path / "mpii.pth")
    torch.save(fake_state_dict("official_hrnet_w32"), tmp_path / "w32.pth")
    with pytest.raises(ValueError, match="wrong shape"):
        models.build("hrnet_tiny", weights=tmp_path / "w32.pth")
    with pytest.raises(ValueError, match="missing"):
        weights.load_weights(r50, tmp_path / "w32.pth")
    assert all(torch.equal(before[name], tensor) for name, tensor in r50.state_dict().items())  # nothing loaded


class Payload:  # unpickling an arbitrary object may run code: weights_only refuses it
    pass


def test_a_file_that_needs_code_to_be_read_is_refused(tmp_path):
    torch.save({"model": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="weights_only=True"):
        weights.read_file(tmp_path / "evil.pth")
    with pytest.raises(FileNotFoundError):
        weights.read_file(tmp_path / "missing.pth")


def test_imagenet_backbones_initialise_the_backbone_only(tmp_path):
    state = fake_state_dict("torchvision_resnet50", seed=2)
    torch.save(state, tmp_path / "resnet50-0676ba61.pth")
    model = models.build("simplebaseline_r50")
    head_before = model.final_layer.weight.clone()
    loaded = weights.load_pretrained(model, tmp_path / "resnet50-0676ba61.pth")
    assert len(loaded) == len(state) - 2  # everything but fc
    assert torch.equal(model.backbone.layer2[3].conv2.weight, state["layer2.3.conv2.weight"])
    assert torch.equal(model.final_layer.weight, head_before)
    with pytest.raises(ValueError, match="as a backbone"):
        weights.load_weights(model, tmp_path / "resnet50-0676ba61.pth")

    state = fake_state_dict("imagenet_hrnet_w32", seed=3)
    torch.save(state, tmp_path / "hrnet_w32-36af842e.pth")
    model = models.build("hrnet_w32", pretrained=tmp_path / "hrnet_w32-36af842e.pth")
    assert torch.equal(model.stage3[3].branches[2][1].conv1.weight, state["stage3.3.branches.2.1.conv1.weight"])
    assert torch.equal(model.transition3[3][0][0].weight, state["transition3.3.0.0.weight"])
    with pytest.raises(ValueError, match="torchvision ResNet file"):
        weights.load_pretrained(models.build("simplebaseline_r50"), tmp_path / "hrnet_w32-36af842e.pth")


def test_auto_reads_torchvision_s_cache_and_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    model = models.build("simplebaseline_r50")
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="resnet50-0676ba61.pth"):
            weights.load_pretrained(model, "auto")
    (tmp_path / "checkpoints").mkdir()
    state = fake_state_dict("torchvision_resnet50", seed=4)
    torch.save(state, tmp_path / "checkpoints" / "resnet50-0676ba61.pth")
    weights.load_pretrained(model, "auto")
    assert torch.equal(model.backbone.conv1.weight, state["conv1.weight"])
    with pytest.raises(ValueError, match="no ImageNet ResNet layout"):
        weights.load_pretrained(models.build("simplebaseline_tiny"), "auto")


def test_the_course_checkpoint_names_its_preset_and_rebuilds_the_model(tmp_path):
    model = models.build("hrnet_tiny", num_keypoints=16).eval()
    path = weights.save_model(tmp_path / "m.pt", model, "hrnet_tiny", keypoint_set="mpii")
    content = weights.read_checkpoint(path)
    assert (content["preset"], content["input_size"], content["num_keypoints"], content["keypoint_set"]) == (
        "hrnet_tiny", [96, 64], 16, "mpii")
    assert "optimizer" not in content
    again = zoo.load(path)
    images = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        assert torch.equal(again(images), model(images))
    torch.save(fake_state_dict("official_hrnet_w32"), tmp_path / "official.pth")
    with pytest.raises(ValueError, match="not a course checkpoint"):
        weights.read_checkpoint(tmp_path / "official.pth")


def small_split_copy(root, images: int = 8):
    """The first ``images`` images of the synthetic single-person set (train and val), their folders linked."""
    from course_lib.data import default_split_dir

    for split in ("train", "val"):
        source = default_split_dir(f"single/{split}")
        coco = json.loads((source / "annotations.json").read_text())
        kept = {image["id"] for image in coco["images"][:images]}
        coco["images"] = [image for image in coco["images"] if image["id"] in kept]
        coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in kept]
        (root / split).mkdir(parents=True)
        (root / split / "annotations.json").write_text(json.dumps(coco))
        (root / split / "images").symlink_to(source / "images")
    return root


def test_train_out_writes_a_checkpoint_that_zoo_reads(tmp_path):
    from course_lib import train

    out = tmp_path / "sb.pt"
    data = small_split_copy(tmp_path / "data")
    assert train.main(["--model", "simplebaseline_tiny", "--steps", "2", "--batch-size", "4", "--json",
                       "--data", str(data), "--out", str(out)]) == 0
    content = weights.read_checkpoint(out)
    assert content["preset"] == "simplebaseline_tiny" and "optimizer" not in content
    assert set(content["validation"]) >= {"pck@0.2"}
    assert zoo.load(out).input_size == (96, 64)


def test_train_pretrained_starts_from_an_imagenet_file_or_says_why_not(tmp_path, capsys):
    from course_lib import train

    assert train.main(["--model", "simplebaseline_tiny", "--steps", "1", "--pretrained", "auto", "--json"]) == 1
    assert "no ImageNet ResNet layout" in capsys.readouterr().err
    assert train.main(["--model", "hrnet_tiny", "--steps", "1", "--pretrained", str(tmp_path / "none.pth")]) == 1
    assert "does not exist" in capsys.readouterr().err
