"""The diagrams of chapters 05-07 are read from the model's own configuration."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from course_lib import models, roi_keypoints, viz  # noqa: E402


def texts(ax):
    return [t.get_text() for t in ax.texts]


@pytest.mark.parametrize("layers", [1, 3])
def test_simple_baseline_diagram_follows_the_decoder(layers):
    model = models.build("simplebaseline_tiny", num_deconv_layers=layers, seed=0)
    ax = viz.draw_simple_baseline(model)
    found = texts(ax)
    assert sum(t.startswith("deconv 4x4/2") for t in found) == layers
    size = 96 // 32 * 2**layers, 64 // 32 * 2**layers
    assert f"17 heatmaps\n{size[0]}x{size[1]}" in found
    plt.close(ax.figure)
    with pytest.raises(TypeError, match="SimpleBaseline"):
        viz.draw_simple_baseline(models.build("hrnet_tiny"))


def test_hrnet_fusion_diagram_reads_each_fuse_layer():
    model = models.build("hrnet_tiny", seed=0)
    module = model.stage3[0]  # three branches
    found = texts(viz.draw_hrnet_fusion(module, into=1, input_size=(96, 64)))
    assert {"1 x 3x3/2", "=", "1x1, up x2"} <= set(found)  # from the finer, its own, the coarser branch
    found = texts(viz.draw_hrnet_fusion(module, into=0, input_size=(96, 64)))
    assert {"=", "1x1, up x2", "1x1, up x4"} <= set(found)
    found = texts(viz.draw_hrnet_fusion(module, into=2, input_size=(96, 64)))
    assert {"2 x 3x3/2", "1 x 3x3/2", "="} <= set(found)
    with pytest.raises(ValueError, match="into"):
        viz.draw_hrnet_fusion(model.stage4[-1], into=1)  # the last module fuses into the 1/4 branch only
    plt.close("all")


@pytest.mark.parametrize("pooler, name", [("align", "ROIAlign"), ("pool", "ROIPool")])
def test_roi_keypoint_diagram_names_its_pooler_and_head(pooler, name):
    found = texts(viz.draw_roi_keypoint_model(roi_keypoints.RoiKeypointNet(pooler)))
    assert any(t.startswith(f"{name}\n14x14") for t in found)
    assert "4 x conv 3x3\n64 ch" in found and "17 x 56x56\nlogits" in found
    plt.close("all")
