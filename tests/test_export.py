"""``python -m course_lib.export``: the ONNX file gives PyTorch's heatmaps, for any batch size."""

from __future__ import annotations

import pytest
import torch

from course_lib import export, models, weights

onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime is pinned in requirements.txt; not installed here")


@pytest.mark.parametrize("preset", ["hrnet_tiny", "simplebaseline_tiny", "hourglass_tiny"])
def test_the_onnx_file_matches_pytorch_with_a_dynamic_batch(tmp_path, preset):
    torch.manual_seed(0)
    model = models.build(preset).eval()
    with torch.no_grad():
        for module in model.modules():  # He initialisation: heatmaps far from zero, a real comparison
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                torch.nn.init.kaiming_normal_(module.weight)
    checkpoint = weights.save_model(tmp_path / f"{preset}.pt", model, preset)
    assert export.main(["--weights", str(checkpoint), "--onnx", str(tmp_path / "m.onnx")]) == 0
    assert export.check_onnx(model, tmp_path / "m.onnx", batch_sizes=(1, 2, 5)) < 1e-4
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (found,) = session.run(None, {"images": torch.zeros(4, 3, 96, 64).numpy()})
    assert found.shape == (4, 17, 24, 16)


def test_a_changed_model_is_caught(tmp_path, capsys):
    model = models.build("simplebaseline_tiny").eval()
    export.export_onnx(model, tmp_path / "m.onnx")
    with torch.no_grad():
        model.final_layer.bias.add_(1.0)
    assert export.check_onnx(model, tmp_path / "m.onnx") > 1e-2
    assert export.main(["--model", "hrnet_w32", "--onnx", str(tmp_path / "x.onnx")]) == 1
    assert "--weights is needed" in capsys.readouterr().err
