# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # Chapter 10: From synthetic people to real ones
#
# Every model of this course has seen only stick figures. This chapter takes the last step
# that a practitioner takes on day one: run a pose model on a **photograph**, load the
# **weights the papers released**, and evaluate on **COCO val** the way the papers did, so
# that the numbers can be compared with theirs. On the way we meet the details that decide
# whether the same weights give the same keypoints: how a person box becomes a crop, which
# colour order the weights expect, how the predictions travel back to the photograph.
#
# ## Learning goals
#
# After this chapter you can
#
# - turn a person box into the crop of SimpleBaseline and HRNet (centre, scale, aspect ratio,
#   padding) and map the predicted keypoints back to the photograph through the inverse warp;
# - prepare a crop as a network's weights expect it (channel order, ImageNet normalisation)
#   and say why a wrong colour order fails silently;
# - measure the **domain gap**: the same tiny model on synthetic people and on a real
#   photograph, in OKS and PCK;
# - run the papers' pipeline on COCO val: detected boxes, flip test, rescoring, OKS-NMS, AP;
#   load the released SimpleBaseline and HRNet weights and export a model to ONNX.
#
# ## The papers
#
# - **SimpleBaseline**: B. Xiao, H. Wu, Y. Wei, *Simple Baselines for Human Pose Estimation and
#   Tracking*, ECCV 2018 ([arXiv:1804.06208](https://arxiv.org/abs/1804.06208)); code and weights:
#   [microsoft/human-pose-estimation.pytorch](https://github.com/microsoft/human-pose-estimation.pytorch).
# - **HRNet**: K. Sun, B. Xiao, D. Liu, J. Wang, *Deep High-Resolution Representation Learning for
#   Human Pose Estimation*, CVPR 2019 ([arXiv:1902.09212](https://arxiv.org/abs/1902.09212)); code
#   and weights: [leoxiaobin/deep-high-resolution-net.pytorch](https://github.com/leoxiaobin/deep-high-resolution-net.pytorch).
# - **COCO**: T.-Y. Lin et al., *Microsoft COCO: Common Objects in Context*, ECCV 2014
#   ([arXiv:1405.0312](https://arxiv.org/abs/1405.0312)).
# - **MMPose**, the toolbox whose checkpoints the course also reads:
#   [open-mmlab/mmpose](https://github.com/open-mmlab/mmpose).

# %%
import json
import tempfile
from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np
import skimage.data
import torch

from course_lib import data, evaluate_coco, geometry, inference, metrics, report, training, viz, widgets, zoo
from course_lib.grading import ch10_real_photographs as checks
from course_lib.keypoints import COCO_KEYPOINTS

data.ensure_default_data()
plt.rcParams["figure.dpi"] = 80

# %% [markdown]
# ## 1. A real photograph with labels
#
# scikit-image ships a few photographs; one of them, `skimage.data.astronaut()` (Eileen
# Collins, NASA), comes with COCO keypoints annotated by hand for this course
# (`data.astronaut()`): the face, the shoulders and the arms are labelled, the left elbow is
# hidden behind the helmet ($v = 1$), the rest of the body is out of the frame ($v = 0$).

# %%
astronaut = data.astronaut()
fig, ax = plt.subplots(figsize=(4, 4))
viz.show_image(astronaut["image"], ax)
viz.draw_pose(astronaut["keypoints"], astronaut["visibility"], ax=ax, names=list(COCO_KEYPOINTS))
viz.draw_box(astronaut["box"], ax, color="white")
ax.set_title("the astronaut and her labels", fontsize=10)
print("labelled keypoints:", [COCO_KEYPOINTS[k] for k in np.flatnonzero(astronaut["visibility"] > 0)])

# %% [markdown]
# ## 2. From a box to a crop
#
# A top-down model sees a fixed-size crop, 256 x 192 (H x W) for the papers' COCO models and
# 96 x 64 for our tiny ones. The official code (`_box2cs` in `lib/dataset/coco.py`) turns a
# person box $[x, y, w, h]$ into a **centre** and a **scale**:
#
# 1. the centre is the middle of the box, $c = (x + w/2,\; y + h/2)$;
# 2. the box is **enlarged**, never shrunk, until $w / h$ equals the input's aspect ratio
#    $r = W / H$ (0.75): if $w > r h$ the height grows to $w / r$, otherwise the width grows
#    to $r h$;
# 3. both sides are multiplied by a padding of 1.25, so the crop shows some context and no
#    limb is cut off.
#
# The official scale is that size divided by 200 ("pixel_std"); the course keeps it in pixels.
# The crop itself is the affine warp that sends the centre to the middle of the input and the
# scale onto its size.
#
# ### Exercise 1: box to centre and scale
#
# Write it for one box. Return two arrays of shape `(2,)`: the centre $(c_x, c_y)$ and the
# scale $(w, h)$ in pixels.


# %%
def box_to_center_scale(box, aspect_ratio, padding=1.25):
    """Person box -> the crop's centre and size.

        c = (x + w / 2, y + h / 2)
        (w, h) -> (max(w, r h), max(h, w / r)) * padding,    r = aspect_ratio = W / H

    Args:
        box: (4,) COCO [x, y, w, h] in pixels.
        aspect_ratio: the model input's W / H (0.75 for 256 x 192).
        padding: factor applied to both sides.

    Returns:
        center (2,) and scale (2,) = (w, h), float arrays.
    """
    ### BEGIN SOLUTION
    x, y, w, h = np.asarray(box, dtype=float)
    center = np.array([x + w / 2, y + h / 2])
    width, height = max(w, h * aspect_ratio), max(h, w / aspect_ratio)
    return center, np.array([width, height]) * padding
    ### END SOLUTION


# %%
checks.check_box_to_center_scale(box_to_center_scale)

# %%
# points: 2
checks.check_box_to_center_scale(box_to_center_scale)
### BEGIN HIDDEN TESTS
checks.hidden_box_to_center_scale(box_to_center_scale)
### END HIDDEN TESTS

# %% [markdown]
# With your function, the astronaut's crop for a 256 x 192 model and for our 96 x 64 tiny one
# (the same region, at two resolutions):

# %%
center, scale = box_to_center_scale(astronaut["box"], 192 / 256)
crop = geometry.warp_image(astronaut["image"], center, scale, 0.0, (256, 192))
small = geometry.warp_image(astronaut["image"], center, scale, 0.0, (96, 64))
fig, axes = plt.subplots(1, 3, figsize=(8, 3.4), gridspec_kw={"width_ratios": [4, 1.5, 1.5]})
viz.show_image(astronaut["image"], axes[0])
x0, y0 = center - scale / 2
axes[0].add_patch(plt.Rectangle((x0, y0), *scale, fill=False, color="yellow", lw=2))
viz.draw_box(astronaut["box"], axes[0], color="white")
axes[0].set_title("box (white) and crop (yellow)", fontsize=9)
viz.show_image(crop, axes[1])
axes[1].set_title("256 x 192", fontsize=9)
viz.show_image(small, axes[2])
axes[2].set_title("96 x 64", fontsize=9)
print("centre", center.round(1), " scale", scale.round(1))

# %% [markdown]
# ## 3. What the weights expect
#
# A network's weights were trained on inputs prepared one way, and they only work on inputs
# prepared the same way. Every model here takes ImageNet-normalised pixels,
# $(x / 255 - \mu) / \sigma$ per channel with $\mu = (0.485, 0.456, 0.406)$ and
# $\sigma = (0.229, 0.224, 0.225)$, in channels-first order $(3, H, W)$. The **channel
# order** is the release's own: HRNet's configs say `COLOR_RGB: true`, SimpleBaseline's say
# `COLOR_RGB: false`: its weights were trained on OpenCV's BGR images, and the official code
# normalises those with the mean and std **as listed**, so the blue channel gets 0.485. MMPose's
# checkpoints and the course's models take RGB. A wrong order raises no error; the keypoints
# are just a little worse, which is the hardest kind of bug to find.
#
# ### Exercise 2: the model's input
#
# Turn an RGB `uint8` crop `(H, W, 3)` into the float32 tensor `(3, H, W)` that weights of
# colour order `color` (`"rgb"` or `"bgr"`) expect.


# %%
def to_model_input(crop, color="rgb"):
    """RGB uint8 crop (H, W, 3) -> float32 tensor (3, H, W): channel order, / 255, ImageNet mean and std.

        x = (pixel / 255 - mean) / std,   mean = (0.485, 0.456, 0.406), std = (0.229, 0.224, 0.225)

    For color="bgr" the channels are reversed first (crop[..., ::-1]); mean and std stay as listed.
    """
    ### BEGIN SOLUTION
    image = np.asarray(crop)[..., ::-1] if color == "bgr" else np.asarray(crop)
    x = torch.from_numpy(np.ascontiguousarray(image)).float() / 255.0
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    return ((x - mean) / std).permute(2, 0, 1).contiguous()
    ### END SOLUTION


# %%
checks.check_to_model_input(to_model_input)

# %%
# points: 2
checks.check_to_model_input(to_model_input)
### BEGIN HIDDEN TESTS
checks.hidden_to_model_input(to_model_input)
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Back to the photograph
#
# The tiny SimpleBaseline of chapter 06 (`zoo.pretrained`, trained on the synthetic people
# and cached) predicts heatmaps of the crop, at a quarter of its resolution. The crop was cut
# with an affine map $q = A p + t$ from image pixels $p$ to crop pixels $q$; a peak found in
# the crop goes back through the **inverse** map $p = A^{-1}(q - t)$. For heatmap pixels the
# same holds with the heatmap's size in place of the crop's (the official `transform_preds`).
#
# ### Exercise 3: the inverse warp
#
# Invert an affine map given as its `(2, 3)` matrix $[A \mid t]$. Rotations are allowed (the
# training crops are rotated), so $A$ is any invertible 2 x 2 matrix.


# %%
def invert_affine(matrix):
    """[A | t] (2, 3) -> [A^-1 | -A^-1 t] (2, 3): the map that undoes q = A p + t."""
    ### BEGIN SOLUTION
    matrix = np.asarray(matrix, dtype=float)
    inverse = np.linalg.inv(matrix[:, :2])
    return np.concatenate([inverse, -inverse @ matrix[:, 2:]], axis=1)
    ### END SOLUTION


# %%
checks.check_invert_affine(invert_affine)

# %%
# points: 2
checks.check_invert_affine(invert_affine)
### BEGIN HIDDEN TESTS
checks.hidden_invert_affine(invert_affine)
### END HIDDEN TESTS

# %% [markdown]
# Everything together: your crop, your input, the tiny model, the quarter-offset decoding, and
# your inverse warp. `inference.estimate` does the same steps (the official pipeline, with the
# flip test when asked), so the two must agree.

# %%
model = zoo.pretrained("simplebaseline_tiny")
center, scale = box_to_center_scale(astronaut["box"], model.input_size[1] / model.input_size[0])
crop = geometry.warp_image(astronaut["image"], center, scale, 0.0, model.input_size)
with torch.no_grad():
    heatmaps = model(to_model_input(crop)[None])  # (1, 17, 24, 16)
peaks, peak_scores = inference.decode(heatmaps)  # heatmap pixels
to_heatmap = geometry.get_affine_transform(center, scale, 0.0, tuple(heatmaps.shape[-2:]))
mine = geometry.transform_points(peaks[0], invert_affine(to_heatmap))
estimator = inference.PoseEstimator(model, "simplebaseline_tiny")
people = inference.estimate(estimator, astronaut["image"], [astronaut["box"]])
print(f"largest difference to inference.estimate: {np.abs(mine - people.keypoints[0]).max():.2e} px")

# %% [markdown]
# ## 5. The domain gap, in numbers and pictures
#
# The same model, the same code: on synthetic validation people and on the astronaut. OKS
# (chapter 08) uses her labelled area; PCK@0.2 the larger side of her box.


# %%
def scores_of(keypoints, truth, visibility, area, box):
    """OKS and PCK@0.2 of one prediction against labels."""
    oks = metrics.object_keypoint_similarity(keypoints, truth, visibility, area)
    pck = metrics.pck(keypoints[None], truth[None], visibility[None], metrics.bbox_size(np.asarray(box)[None]), 0.2)
    return float(oks), float(pck.mean)


val = training.top_down_data(data.default_split_dir("single/val"), *training.model_sizes(model))
val = torch.utils.data.Subset(val, range(training.budget(500, 64)))
run = training.evaluate(model, val, decoder="quarter_offset", device="cpu", coco_ap=False)
p = run.predictions
synthetic = np.array([scores_of(p.keypoints[i], p.gt_keypoints[i], p.gt_visibility[i], p.areas[i], p.boxes[i])
                      for i in range(len(p.keypoints))])
rows = [{"people": f"synthetic val ({len(synthetic)} people)", "mean OKS": synthetic[:, 0].mean(),
         "PCK@0.2": synthetic[:, 1].mean()}]
for flip in (False, True):
    estimator = inference.PoseEstimator(model, "simplebaseline_tiny", flip_test=flip)
    found = inference.estimate(estimator, astronaut["image"], [astronaut["box"]])
    oks, pck = scores_of(found.keypoints[0], astronaut["keypoints"], astronaut["visibility"], astronaut["area"],
                         astronaut["box"])
    rows.append({"people": f"the astronaut{' (flip test)' if flip else ''}", "mean OKS": oks, "PCK@0.2": pck})
print("\n".join(f"{r['people']:32s} OKS {r['mean OKS']:.3f}   PCK@0.2 {r['PCK@0.2']:.3f}" for r in rows))

# %% [markdown]
# In pictures: the astronaut, and two photographs without anybody in them. A top-down model
# always answers with a whole skeleton; only the keypoint scores (the heatmap maxima, drawn
# here when above 0.2) say how sure it is.

# %%
photos = {"astronaut": astronaut["image"], "coffee": skimage.data.coffee(), "chelsea (a cat)": skimage.data.chelsea()}
estimator = inference.PoseEstimator(model, "simplebaseline_tiny")
fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
for ax, (name, image) in zip(axes, photos.items()):
    box = astronaut["box"] if name == "astronaut" else [0, 0, image.shape[1] - 1, image.shape[0] - 1]
    found = inference.estimate(estimator, image, [box])
    ax.imshow(inference.draw_people(image, found))
    ax.set_title(f"{name}: mean keypoint score {found.scores.mean():.2f}", fontsize=9)
    ax.axis("off")
fig.tight_layout()

# %% [markdown]
# The prediction browser of chapter 06 also takes a folder of photographs (any folder: put
# your own pictures in one): one joint's heatmap over the crop, the skeleton on the photo.

# %%
folder = Path(tempfile.mkdtemp(prefix="photos-"))
for name, image in photos.items():
    cv2.imwrite(str(folder / f"{name.split()[0]}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
widgets.prediction_browser(model, folder, joint="right_wrist")

# %% [markdown]
# ## 6. Real data and the released weights
#
# Nothing here is downloaded while the notebook runs. To go further on your own machine:
#
# - **COCO val2017**: `python data_scripts/coco.py --out data/coco --split val2017 --all-images`
#   (the annotations, 241 MiB, and the images, 778 MiB; `--all-images` keeps the images without
#   people: the papers scored all 5000, and a detection on an empty image is a false positive).
# - **The person detections** the papers used (human AP 56.4 on val):
#   `COCO_val2017_detections_AP_H_56_person.json`, linked from the HRNet repository's README.
# - **The released weights**: `pose_resnet_50_256x192.pth` (SimpleBaseline-R50) and
#   `pose_hrnet_w32_256x192.pth` (HRNet-W32), linked from the two repositories' READMEs; MMPose's
#   top-down ResNet and HRNet checkpoints load too. `--weights` reads all of them with
#   `torch.load(..., weights_only=True)` (a file that needs code to be read is refused).
#
# Then, in a terminal:
#
# ```
# python -m course_lib.predict --model hrnet_w32 --weights pose_hrnet_w32_256x192.pth --image photo.jpg --box 100 40 220 430 --flip-test --out out/
# python -m course_lib.evaluate_coco --model hrnet_w32 --weights pose_hrnet_w32_256x192.pth --data data/coco/val2017 --detections COCO_val2017_detections_AP_H_56_person.json --flip-test
# python -m course_lib.export --model hrnet_w32 --weights pose_hrnet_w32_256x192.pth --onnx hrnet_w32.onnx
# ```
#
# The next cell uses the released HRNet-W32 on the astronaut if you put the file in
# `data/weights/`.

# %%
released = data.DATA_ROOT / "weights" / "pose_hrnet_w32_256x192.pth"
if released.is_file():
    hrnet = inference.load_estimator("hrnet_w32", released, flip_test=True)
    found = inference.estimate(hrnet, astronaut["image"], [astronaut["box"]])
    oks, pck = scores_of(found.keypoints[0], astronaut["keypoints"], astronaut["visibility"], astronaut["area"],
                         astronaut["box"])
    rows.append({"people": "the astronaut, released HRNet-W32", "mean OKS": oks, "PCK@0.2": pck})
    plt.imshow(inference.draw_people(astronaut["image"], found))
else:
    print(f"skipped: no {released} (the released HRNet-W32 weights; see above)")

# %% [markdown]
# ## 7. COCO val the way the papers scored it
#
# `evaluate_coco.evaluate` runs the official pipeline end to end: every detected person box
# becomes a crop, the flip test averages the heatmaps, each pose is rescored (box score times
# the mean of its keypoint scores above 0.2), OKS-NMS at 0.9 removes duplicates within an image,
# and the course's COCO evaluator (equal to pycocotools, chapter 08) gives AP. Here it runs on a
# small folder in COCO's formats, made from the astronaut and her mirror image, with a
# detections file that has a duplicate box and a box on nobody.

# %%
def small_val_folder(root: Path) -> tuple[Path, Path]:
    """val2017/ (annotations.json, images/) with two labelled photos, and a detections file in COCO's format."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    annotation = json.loads(data.ASTRONAUT_ANNOTATIONS.read_text())["annotations"][0]
    mirrored_xy, mirrored_v = geometry.flip_keypoints(astronaut["keypoints"], astronaut["visibility"], 512)
    x, y, w, h = (float(v) for v in astronaut["box"])
    mirrored = dict(annotation, id=2, image_id=2, bbox=[511 - x - w, y, w, h],
                    keypoints=np.concatenate([mirrored_xy, mirrored_v[:, None]], 1).ravel().tolist())
    for image_id, image in ((1, astronaut["image"]), (2, astronaut["image"][:, ::-1])):
        cv2.imwrite(str(root / "images" / f"{image_id:012d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    truth = {"images": [{"id": i, "file_name": f"{i:012d}.jpg", "height": 512, "width": 512} for i in (1, 2)],
             "annotations": [dict(annotation, image_id=1), mirrored],
             "categories": [json.loads(data.ASTRONAUT_ANNOTATIONS.read_text())["categories"][0]]}
    (root / "annotations.json").write_text(json.dumps(truth))
    detections = [{"image_id": 1, "category_id": 1, "bbox": [float(v) for v in astronaut["box"]], "score": 0.95},
                  {"image_id": 1, "category_id": 1, "bbox": [float(v) + 3 for v in astronaut["box"]], "score": 0.9},
                  {"image_id": 2, "category_id": 1, "bbox": mirrored["bbox"], "score": 0.9},
                  {"image_id": 2, "category_id": 1, "bbox": [380.0, 300.0, 120.0, 200.0], "score": 0.5}]
    (root / "detections.json").write_text(json.dumps(detections))
    return root, root / "detections.json"


folder, detections = small_val_folder(Path(tempfile.mkdtemp()) / "val2017")
for flip in (False, True):
    estimator = inference.PoseEstimator(model, "simplebaseline_tiny", flip_test=flip)
    stats, results, _ = evaluate_coco.evaluate(estimator, folder, detections, progress=False)
    print(f"flip test {'on ' if flip else 'off'}: AP {stats['AP']:.3f}  AP50 {stats['AP50']:.3f}   "
          f"{len(results)} poses kept of 4 detections")

# %% [markdown]
# The tiny model's AP on these two photographs is close to zero: its keypoints are rarely within
# COCO's tolerances on a real person (section 5). The pipeline is the papers'; the weights are
# not. With COCO val and the released weights in place (section 6), the same function gives the
# papers' numbers; a full run takes about an hour on a CPU and minutes on a GPU.

# %%
coco_val = data.DATA_ROOT / "coco" / "val2017"
official_boxes = data.DATA_ROOT / "coco" / "COCO_val2017_detections_AP_H_56_person.json"
if released.is_file() and (coco_val / "annotations.json").is_file() and official_boxes.is_file():
    stats, _, _ = evaluate_coco.evaluate(hrnet, coco_val, official_boxes, max_images=training.budget(None, 20))
    print(metrics.format_coco_summary(stats))
else:
    print("skipped: COCO val2017, the official detections or the released HRNet-W32 are not in data/ (see section 6)")

# %% [markdown]
# ## 8. Experiment: the domain gap
#
# The table gathers the numbers of section 5 (and the released HRNet's, if you ran it).

# %% tags=["experiment"]
synthetic_oks, photo_oks = rows[0]["mean OKS"], rows[1]["mean OKS"]
note = (f"Mean OKS {synthetic_oks:.2f} on synthetic people and {photo_oks:.2f} on the photograph. "
        + ("The model loses on the real picture: it has never seen texture, clothing or a real face; the papers' "
           "models, trained on COCO, close that gap." if photo_oks < synthetic_oks else
           "Here the photograph is not worse: this model is weak everywhere (a short training run), and one "
           "photograph is a small sample; run the full profile to see the gap."))
table = report.experiment_table(rows, chapter="10", title="One tiny model on synthetic people and on a photograph",
                                note=note)
table

# %% [markdown]
# ## What the paper reported
#
# On COCO val2017 at 256 x 192, with the flip test and the same person detections (human AP
# 56.4), the official code reports **70.4 AP** for SimpleBaseline-R50 and **74.4 AP** for
# HRNet-W32 (Sun et al. 2019, Table 1; SimpleBaseline's own paper gives 70.4 for ResNet-50 as
# well). With ground-truth boxes the numbers are about two points higher, which measures what
# the detector costs. The course's `evaluate_coco` follows the same steps (crop, flip test with
# the one-pixel shift, quarter-offset decoding, rescoring, OKS-NMS at 0.9) and the same
# evaluator, so with the released weights it should give these numbers; they were not run
# while writing this chapter, which never downloads.

# %% [markdown]
# ## Stretch exercise: steady keypoints on video
#
# Run `predict --video` on a clip of someone standing still and the skeleton trembles: each
# frame's detector box moves by a few pixels, each crop differs a little, and the keypoints
# follow. Video pose tools smooth each coordinate over time; the usual filter is the **One
# Euro filter** (G. Casiez, N. Roussel, D. Vogel, *1 Euro Filter: A Simple Speed-based Low-pass
# Filter for Noisy Input in Interactive Systems*, CHI 2012,
# [doi:10.1145/2207676.2208639](https://doi.org/10.1145/2207676.2208639)), which MMPose also
# offers for its video demos. It is an exponential smoothing whose cutoff frequency rises with
# the speed: a still joint is smoothed hard (no jitter), a moving one lightly (no lag). For a
# signal $x_t$ sampled at `rate` frames per second,
#
# $$\alpha(f) = \frac{1}{1 + \dfrac{\text{rate}}{2\pi f}}, \qquad
# d_t = \alpha(f_d)\,(x_t - s_{t-1})\,\text{rate} + (1 - \alpha(f_d))\,d_{t-1}, \qquad
# f_t = f_{\min} + \beta\,|d_t|, \qquad s_t = \alpha(f_t)\,x_t + (1 - \alpha(f_t))\,s_{t-1},$$
#
# starting from $s_0 = x_0$ and $d_0 = 0$. Every coordinate of every joint is filtered on its
# own (the formulas hold element-wise). (Worth bonus points: it goes beyond the chapter's core.)


# %%
def one_euro_filter(signal, rate, min_cutoff=1.0, beta=0.0, d_cutoff=1.0):
    """Smooth ``signal`` (T, ...) along its first axis (time) with the One Euro filter -> same shape.

        alpha(f) = 1 / (1 + rate / (2 pi f))
        d_t = alpha(d_cutoff) (x_t - s_{t-1}) rate + (1 - alpha(d_cutoff)) d_{t-1},   d_0 = 0
        f_t = min_cutoff + beta |d_t|
        s_t = alpha(f_t) x_t + (1 - alpha(f_t)) s_{t-1},   s_0 = x_0
    """
    ### BEGIN SOLUTION
    signal = np.asarray(signal, dtype=float)
    smoothed = np.empty_like(signal)
    smoothed[0] = signal[0]
    speed = np.zeros_like(signal[0])
    alpha_speed = 1.0 / (1.0 + rate / (2 * np.pi * d_cutoff))
    for t in range(1, len(signal)):
        speed = alpha_speed * (signal[t] - smoothed[t - 1]) * rate + (1 - alpha_speed) * speed
        alpha = 1.0 / (1.0 + rate / (2 * np.pi * (min_cutoff + beta * np.abs(speed))))
        smoothed[t] = alpha * signal[t] + (1 - alpha) * smoothed[t - 1]
    return smoothed
    ### END SOLUTION


# %%
checks.check_one_euro_filter(one_euro_filter)

# %%
# bonus: 2
checks.check_one_euro_filter(one_euro_filter)
### BEGIN HIDDEN TESTS
checks.hidden_one_euro_filter(one_euro_filter)
### END HIDDEN TESTS

# %% [markdown]
# A still astronaut filmed for two seconds at 30 frames per second, seen through a detector
# whose box wanders by about 2 % of its size from frame to frame: the raw keypoints move from
# frame to frame although she does not; the filtered ones hold still.

# %%
rng = np.random.default_rng(10)
box = np.asarray(astronaut["box"], dtype=float)  # [x, y, w, h]
estimator = inference.PoseEstimator(model, "simplebaseline_tiny")
frames = 60
jittered = box + rng.normal(0, 0.02, (frames, 4)) * box[[2, 3, 2, 3]]  # (T, 4)
track = np.stack([inference.estimate(estimator, astronaut["image"], [b]).keypoints[0] for b in jittered])  # (T, K, 2)
steady = one_euro_filter(track, rate=30.0, min_cutoff=1.0, beta=0.01)
raw_motion = np.linalg.norm(np.diff(track, axis=0), axis=-1).mean()
steady_motion = np.linalg.norm(np.diff(steady, axis=0), axis=-1).mean()
print(f"mean keypoint motion between frames: raw {raw_motion:.2f} px, filtered {steady_motion:.2f} px "
      f"({steady_motion / max(raw_motion, 1e-9):.0%} of the raw)")
fig, ax = plt.subplots(figsize=(7, 2.8))
joint = COCO_KEYPOINTS.index("left_wrist")
ax.plot(track[:, joint, 0], label="raw", color="0.6")
ax.plot(steady[:, joint, 0], label="One Euro filter", color="C0")
ax.set_xlabel("frame")
ax.set_ylabel("left wrist x (px)")
ax.legend()
fig.tight_layout()

# %% [markdown]
# ## Check your understanding
#
# 1. The released SimpleBaseline weights get RGB crops instead of BGR. Will anything raise an
#    error? What happens to AP?
#
# <details><summary>Answer</summary>
#
# Nothing raises: the tensor has the same shape and range. The first convolution's filters
# see red where they learned blue, and the keypoints get somewhat worse; AP drops by an amount
# that looks like "a slightly weaker model", which is why the colour order is part of the
# weights' description and not an afterthought.
# </details>
#
# 2. Why is the box enlarged to the aspect ratio instead of stretched to it?
#
# <details><summary>Answer</summary>
#
# Stretching would change the person's proportions differently for every box, and the model
# would have to learn people of every width-to-height ratio. Enlarging keeps the image's own
# geometry (one scale for both axes), so a person looks the same in every crop.
# </details>
#
# 3. OKS-NMS runs at 0.9 per image, after rescoring. What would go wrong if it ran on the box
#    scores before rescoring?
#
# <details><summary>Answer</summary>
#
# Among two duplicate poses, NMS keeps the one with the higher score. On box scores it keeps
# the pose of the better box, not the better pose; after rescoring the kept pose is the one
# whose keypoints are most confident, which is what AP ranks.
# </details>
#
# 4. A top-down model drew a skeleton on the cat. How would you stop that in an application?
#
# <details><summary>Answer</summary>
#
# The pose model assumes a person in the box; the detector decides whether there is one. Keep
# only boxes the person detector scores highly, and threshold the pose score (box score times
# the mean confident keypoint score); the keypoint scores on the cat are low.
# </details>


# %% [markdown]
# ## Summary
#
# - A model trained on synthetic people meets photographs through the same **top-down
#   pipeline**: a person box, a crop of the model's aspect ratio padded by 1.25, heatmaps, the
#   decoded peaks mapped back through the **inverse warp**.
# - Weights carry a **contract** beyond their tensors: the input size, the keypoint set, the
#   colour order (RGB for HRNet's release, BGR for SimpleBaseline's) and the ImageNet
#   normalisation; break it and nothing raises, the keypoints just get worse.
# - The **domain gap** shows in numbers (OKS and PCK on a labelled photograph against synthetic
#   validation people) and in pictures: a top-down model draws a whole skeleton in any box, so
#   the keypoint scores, not the drawing, say whether anyone is there.
# - The course reads the papers' **released weights** (official and MMPose parameter names) and
#   scores COCO val as the papers did: detected boxes, flip test with the one-pixel shift,
#   quarter-offset decoding, rescoring, OKS-NMS at 0.9, COCO AP.
# - `python -m course_lib.predict` runs any of these models on a photograph, a folder, a video
#   or a webcam, and `python -m course_lib.export` writes an ONNX model for deployment.
# - On video, a speed-adaptive low-pass filter (One Euro) removes the frame-to-frame jitter
#   that detector boxes put into the keypoints, without making moving joints lag.
