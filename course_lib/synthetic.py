"""Synthetic people in COCO keypoint format: the course's default data (chapter 00).

:func:`synthetic_scene` draws one image from a 2D projection of a 3D kinematic tree;
:func:`make_synthetic` writes a whole set (images + ``annotations.json``) that
``pycocotools.coco.COCO`` and :class:`course_lib.data.CocoKeypoints` read.  The default sets
of the course (:data:`course_lib.data.DEFAULT_SPLITS`) are made with it.

Layout of a data set folder::

    DIR/annotations.json       COCO keypoint format, written last
    DIR/images/000001.png      ``file_name`` is "000001.png": relative to the image folder, COCO's convention

Letters: K keypoints per person (17 for COCO); ``size`` is ``(H, W)`` in pixels, like the image
array's shape.  Keypoints are image pixels ``x, y`` with pixel centres at integer coordinates
(see ``course_lib/__init__.py``).
"""

from __future__ import annotations

import bisect
import colorsys
import json
import math
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import NormalDist
from typing import Any, Callable, Sequence

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from course_lib.keypoints import COCO_KEYPOINTS, COCO_PCP_LIMBS, coco_category
from course_lib.validation import check_integer, check_pair


# The person is a 3D kinematic tree posed by joint angles, seen by an orthographic camera, then
# drawn with OpenCV.  Body frame: origin at the mid-hip point, x to the person's LEFT, y up,
# z forward (out of the chest); lengths in units of standing height H.  A person facing the
# camera therefore shows their left side on the right of the image, as in real photographs.


@dataclass(frozen=True)
class BodyProportions:
    """Segment lengths and thicknesses as fractions of standing height H.

    Lengths from Winter, "Biomechanics and Motor Control of Human Movement" (4th ed., 2009),
    Fig. 4.1 (after Drillis & Contini 1966): shoulder at 0.818 H, hip joint at 0.530 H, upper
    arm 0.186 H, forearm 0.146 H, thigh 0.245 H, shank 0.246 H; the head (chin to crown) is
    0.130 H, about H / 7.5.  Widths are between joint centres, where COCO puts its keypoints.
    """

    torso: float = 0.288  # mid-hip to mid-shoulder: 0.818 - 0.530
    shoulder_width: float = 0.230  # between the shoulder joints (biacromial breadth 0.259 H)
    hip_width: float = 0.130  # between the hip joints (hip breadth 0.191 H)
    neck: float = 0.110  # mid-shoulder to the centre of the head
    head_height: float = 0.130  # chin to crown
    head_width: float = 0.100
    upper_arm: float = 0.186
    forearm: float = 0.146
    hand: float = 0.060  # wrist to the centre of the drawn hand
    thigh: float = 0.245
    shank: float = 0.246
    foot: float = 0.110  # ankle to toes
    # Thicknesses (diameters) of the drawn segments.
    upper_arm_thickness: float = 0.055
    forearm_thickness: float = 0.045
    hand_radius: float = 0.028
    thigh_thickness: float = 0.085
    shank_thickness: float = 0.062
    foot_thickness: float = 0.040
    neck_thickness: float = 0.050
    torso_depth: float = 0.120  # chest front to back


@dataclass(frozen=True)
class Pose:
    """Joint angles in degrees; ``(left, right)`` pairs for the limbs.

    Each range is a human one: elbows and knees bend one way only (flexion >= 0).

    * ``yaw``: rotation of the whole body about the vertical; 0 faces the camera, 90 shows the
      person's left side turned away (they face the right of the image), 180 is a back view.
    * ``torso_lean`` (forward), ``torso_side`` (sideways): the upper body about the hips.
    * ``head_yaw`` (to the person's left), ``head_pitch`` (down), ``head_roll``.
    * ``shoulder_flexion`` raises the arm forward, ``shoulder_abduction`` sideways, from hanging;
      ``arm_rotation`` turns the elbow's bending plane (internal rotation > 0); ``elbow`` bends.
    * ``hip_flexion`` raises the thigh forward, ``hip_abduction`` sideways; ``knee`` bends
      backward; ``ankle`` points the toes down.
    """

    kind: str
    yaw: float
    torso_lean: float
    torso_side: float
    head_yaw: float
    head_pitch: float
    head_roll: float
    shoulder_flexion: tuple[float, float]
    shoulder_abduction: tuple[float, float]
    arm_rotation: tuple[float, float]
    elbow: tuple[float, float]
    hip_flexion: tuple[float, float]
    hip_abduction: tuple[float, float]
    knee: tuple[float, float]
    ankle: tuple[float, float]


POSE_KINDS = ("standing", "walking", "arms_up", "sitting", "crouching", "lying", "free")
POSE_KIND_WEIGHTS = (0.28, 0.20, 0.12, 0.10, 0.08, 0.06, 0.16)

# Colours (RGB).  The side tints make left and right visible from the pixels: every left limb
# (and ear) carries the orange tint and a stripe of it, every right one the blue, whatever the
# clothes.  This is a *chiral* cue: a mirrored image shows orange on the right, so training with
# flip augmentation removes it and the model must use the face direction and body geometry instead.
LEFT_TINT = (255, 128, 0)
RIGHT_TINT = (0, 128, 255)
SKIN_COLOURS = (
    (255, 224, 196), (241, 194, 160), (224, 172, 135), (198, 134, 94),
    (161, 102, 64), (120, 75, 45), (90, 56, 37), (232, 190, 172),
)
HAIR_COLOURS = (
    (40, 30, 25), (70, 45, 30), (110, 75, 40), (185, 145, 85),
    (225, 205, 150), (135, 135, 135), (20, 20, 20), (140, 60, 30),
)

# Parts drawn for each person; a part's number goes into the id image that decides visibility.
PARTS = (
    "torso", "neck", "head",
    "left_upper_arm", "left_forearm", "left_hand", "right_upper_arm", "right_forearm", "right_hand",
    "left_thigh", "left_shank", "left_foot", "right_thigh", "right_shank", "right_foot",
)
# The parts on which each COCO keypoint is seen: a keypoint is visible (v=2) when the front-most
# thing drawn at its pixel is one of these parts of the same person.
KEYPOINT_PARTS = (
    ("head",), ("head",), ("head",), ("head",), ("head",),
    ("left_upper_arm", "torso"), ("right_upper_arm", "torso"),
    ("left_upper_arm", "left_forearm"), ("right_upper_arm", "right_forearm"),
    ("left_forearm", "left_hand"), ("right_forearm", "right_hand"),
    ("left_thigh", "torso"), ("right_thigh", "torso"),
    ("left_thigh", "left_shank"), ("right_thigh", "right_shank"),
    ("left_shank", "left_foot"), ("right_shank", "right_foot"),
)
# Shoulders and hips sit on the sides of the torso: seen on the torso only from the near side.
# The far one goes behind the body once the person turns more than ~35 degrees from the camera,
# i.e. when it is farther than sin(35) x half the shoulder (hip) width behind the neck (pelvis).
TORSO_JOINT_CENTRES = {"left_shoulder": "neck", "right_shoulder": "neck", "left_hip": "pelvis", "right_hip": "pelvis"}
_PART_INDEX = {name: i for i, name in enumerate(PARTS)}
_IDS_PER_PERSON = 32  # id of part q of person p: 1 + 32 p + q; 0 is background
_OCCLUDER_ID = np.iinfo(np.uint16).max
MAX_PERSONS = 10  # beyond ten people, crowded scenes hide whole people behind the others
MIN_IMAGE_SIZE = 32
MAX_IMAGE_SIZE = 4096


def _pick(rng: np.random.Generator, options: Sequence, weights: Sequence[float] | None = None) -> Any:
    """One of ``options``, uniformly or with ``weights`` (summing to 1); cheaper than ``rng.choice``."""
    u = rng.random()
    if weights is None:
        return options[int(u * len(options))]
    return options[min(bisect.bisect(np.cumsum(weights), u), len(options) - 1)]


def sample_pose(rng: np.random.Generator) -> Pose:
    """Draw joint angles for one person: a pose kind, then angles within its ranges (degrees)."""
    kind = _pick(rng, POSE_KINDS, POSE_KIND_WEIGHTS)

    def pair(low: float, high: float) -> np.ndarray:
        return rng.uniform(low, high, 2)

    # Standing, the default that the other kinds modify.
    shoulder_flexion, shoulder_abduction = pair(-20, 35), pair(5, 35)
    arm_rotation, elbow = pair(-20, 40), pair(0, 70)
    hip_flexion, hip_abduction, knee = pair(-8, 12), pair(0, 12), pair(0, 15)
    torso_lean, torso_side = rng.uniform(-8, 10), rng.uniform(-6, 6)

    if kind == "walking":
        sign = _pick(rng, (-1.0, 1.0))
        swing = rng.uniform(15, 35)
        hip_flexion = sign * swing * np.array([1.0, -0.8]) + pair(-5, 5)
        knee = np.where(hip_flexion < 0, rng.uniform(15, 50, 2), rng.uniform(0, 15, 2))
        shoulder_flexion = -sign * rng.uniform(10, 35) * np.array([1.0, -1.0]) + pair(-5, 5)
        shoulder_abduction, elbow = pair(5, 20), pair(10, 50)
    elif kind == "arms_up":
        raised = rng.random(2) < 0.8
        shoulder_abduction = np.where(raised, pair(80, 170), shoulder_abduction)
        shoulder_flexion = np.where(raised, pair(-10, 60), shoulder_flexion)
        elbow = np.where(raised, pair(0, 100), elbow)
    elif kind == "sitting":
        hip_flexion, knee, hip_abduction = pair(70, 100), pair(70, 110), pair(0, 25)
        torso_lean = rng.uniform(-15, 15)
        shoulder_flexion, shoulder_abduction, elbow = pair(0, 50), pair(0, 30), pair(20, 110)
    elif kind == "crouching":
        hip_flexion, knee, hip_abduction = pair(90, 130), pair(110, 150), pair(5, 30)
        torso_lean = rng.uniform(15, 45)
        shoulder_flexion, elbow = pair(0, 80), pair(10, 100)
    elif kind == "free" or (kind == "lying" and rng.random() < 0.5):
        shoulder_flexion, shoulder_abduction = pair(-40, 170), pair(0, 170)
        arm_rotation, elbow = pair(-40, 90), pair(0, 145)
        hip_flexion, hip_abduction, knee = pair(-25, 120), pair(-10, 45), pair(0, 145)
        torso_lean, torso_side = rng.uniform(-20, 40), rng.uniform(-20, 20)

    view = rng.random()
    if view < 0.75:  # facing the camera, more or less
        yaw = float(np.clip(rng.normal(0.0, 30.0), -80, 80))
    elif view < 0.9:  # profile
        yaw = _pick(rng, (-1.0, 1.0)) * rng.uniform(70, 100)
    else:  # back view
        yaw = float(180.0 + rng.uniform(-40, 40))

    def as_pair(values: np.ndarray) -> tuple[float, float]:
        return (float(values[0]), float(values[1]))

    return Pose(
        kind=kind,
        yaw=yaw,
        torso_lean=float(torso_lean),
        torso_side=float(torso_side),
        head_yaw=float(np.clip(rng.normal(0.0, 25.0), -60, 60)),
        head_pitch=float(rng.uniform(-20, 25)),
        head_roll=float(rng.uniform(-12, 12)),
        shoulder_flexion=as_pair(shoulder_flexion),
        shoulder_abduction=as_pair(shoulder_abduction),
        arm_rotation=as_pair(arm_rotation),
        elbow=as_pair(elbow),
        hip_flexion=as_pair(hip_flexion),
        hip_abduction=as_pair(hip_abduction),
        knee=as_pair(knee),
        ankle=as_pair(pair(-15, 30)),
    )


def _rotation_x(degrees: float) -> np.ndarray:
    """Rotation about x: y turns toward +z (a positive angle leans forward / looks down)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rotation_y(degrees: float) -> np.ndarray:
    """Rotation about the vertical: forward (+z) turns toward the person's left (+x)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rotation_z(degrees: float) -> np.ndarray:
    """Rotation about z (the forward axis): a sideways lean."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a x b for 3-vectors (``np.cross`` is slow on single small vectors)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _limb_directions(flexion: float, abduction: float, side: float) -> tuple[np.ndarray, np.ndarray]:
    """Direction of a limb raised from hanging, and the unit direction it swings forward in.

    d = (side sin(a) cos(f), -cos(a) cos(f), sin(f)) for flexion f (forward) and abduction a
    (sideways, outward; side = +1 for the left limb, -1 for the right).  The second vector is
    dd/df, perpendicular to d: elbows bend toward it, knees away from it.
    """
    f, a = math.radians(flexion), math.radians(abduction)
    direction = np.array([side * math.sin(a) * math.cos(f), -math.cos(a) * math.cos(f), math.sin(f)])
    forward = np.array([-side * math.sin(a) * math.sin(f), math.cos(a) * math.sin(f), math.cos(f)])
    return direction, forward


# Local coordinates of the face keypoints on the head ellipsoid (units of its semi-axes: left, up,
# forward) and how far round the head each stays in view: a point is seen while its surface
# normal, turned by the head and the body, has a nearness above the threshold (the ears stick
# out and stay visible from the front; an eye hides behind the nose bridge beyond ~65 degrees).
FACE_POINTS = {
    "nose": ((0.0, -0.15, 1.05), -0.1),
    "left_eye": ((0.38, 0.12, 0.86), 0.0),
    "right_eye": ((-0.38, 0.12, 0.86), 0.0),
    "left_ear": ((1.0, 0.0, -0.1), -0.5),
    "right_ear": ((-1.0, 0.0, -0.1), -0.5),
}


def skeleton_3d(pose: Pose, body: BodyProportions = BodyProportions()) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Forward kinematics: 3D points of the posed body in the body frame (units of H).

    Returns ``(points, head_axes)``: the 17 COCO keypoints by name plus the points the drawing
    needs (``neck``, ``head``, ``crown``, ``face``, ``hair``, hands, toes, ``chest``, torso and
    pelvis box corners), and the head's rotation matrix (columns: its left, up, forward).
    The body's yaw is not applied here; :func:`project_points` turns the body toward the camera.
    """
    points: dict[str, np.ndarray] = {}
    torso_axes = _rotation_z(pose.torso_side) @ _rotation_x(pose.torso_lean)
    half_shoulders, half_hips = body.shoulder_width / 2, body.hip_width / 2
    points["pelvis"] = np.zeros(3)
    points["neck"] = torso_axes @ np.array([0.0, body.torso, 0.0])
    points["torso_centre"] = torso_axes @ np.array([0.0, body.torso / 2, 0.0])

    for index, (side_name, side) in enumerate((("left", 1.0), ("right", -1.0))):
        # Arm, in the torso's frame, then carried along by the torso.
        shoulder = torso_axes @ np.array([side * half_shoulders, body.torso - 0.01, 0.0])
        upper, forward = _limb_directions(pose.shoulder_flexion[index], pose.shoulder_abduction[index], side)
        twist = math.radians(pose.arm_rotation[index])
        bend = forward * math.cos(twist) + side * _cross(upper, forward) * math.sin(twist)
        elbow_angle = math.radians(pose.elbow[index])
        lower = math.cos(elbow_angle) * upper + math.sin(elbow_angle) * bend
        upper, lower = torso_axes @ upper, torso_axes @ lower
        points[f"{side_name}_shoulder"] = shoulder
        points[f"{side_name}_elbow"] = shoulder + body.upper_arm * upper
        points[f"{side_name}_wrist"] = points[f"{side_name}_elbow"] + body.forearm * lower
        points[f"{side_name}_hand"] = points[f"{side_name}_wrist"] + body.hand * lower

        # Leg, in the pelvis (body) frame: the knee bends backward, away from `forward`.
        hip = np.array([side * half_hips, 0.0, 0.0])
        thigh, forward = _limb_directions(pose.hip_flexion[index], pose.hip_abduction[index], side)
        knee_angle = math.radians(pose.knee[index])
        shank = math.cos(knee_angle) * thigh - math.sin(knee_angle) * forward
        toes = math.sin(knee_angle) * thigh + math.cos(knee_angle) * forward  # perpendicular to the shank
        ankle_angle = math.radians(pose.ankle[index])
        foot = math.cos(ankle_angle) * toes + math.sin(ankle_angle) * shank
        points[f"{side_name}_hip"] = hip
        points[f"{side_name}_knee"] = hip + body.thigh * thigh
        points[f"{side_name}_ankle"] = points[f"{side_name}_knee"] + body.shank * shank
        points[f"{side_name}_toe"] = points[f"{side_name}_ankle"] + body.foot * foot

    # Head: an ellipsoid with the face on its front (+z of the head frame), hair at the back.
    head_axes = torso_axes @ _rotation_y(pose.head_yaw) @ _rotation_x(pose.head_pitch) @ _rotation_z(pose.head_roll)
    head = points["neck"] + torso_axes @ np.array([0.0, body.neck, 0.0])
    radii = np.array([body.head_width / 2, body.head_height / 2, body.head_width / 2 * 1.1])
    points["head"] = head
    points["crown"] = head + head_axes @ (radii * (0.0, 1.0, 0.0))
    points["face"] = head + head_axes @ (radii * (0.0, -0.12, 0.40))
    points["hair"] = head + head_axes @ (radii * (0.0, 0.22, -0.35))
    for name, (local, _) in FACE_POINTS.items():
        points[name] = head + head_axes @ (radii * local)

    # Torso and pelvis as boxes (their corners outline them), a badge on the front of the chest.
    depth = body.torso_depth / 2
    corners = [(sx, sz) for sx in (1, -1) for sz in (1, -1)]
    for i, (sx, sz) in enumerate(corners):
        points[f"torso_{i}"] = torso_axes @ np.array([sx * (half_shoulders + 0.03), body.torso + 0.015, sz * depth])
        points[f"pelvis_{i}"] = np.array([sx * (half_hips + 0.04), -0.035, sz * depth])
        points[f"pelvis_{i + 4}"] = np.array([sx * (half_hips + 0.035), 0.07, sz * depth])
    points["chest"] = torso_axes @ np.array([0.0, 0.62 * body.torso, depth + 0.005])
    return points, head_axes


def project_points(points: dict[str, np.ndarray], yaw: float, roll: float) -> tuple[dict, dict]:
    """Orthographic view of the body turned by ``yaw``: 2D points (units of H) and their nearness.

    With p' = R_y(yaw) p, the image point is (p'_x, -p'_y) (image y points down) rotated in the
    image plane by ``roll`` degrees; the nearness p'_z orders overlapping parts (larger is
    nearer the camera).
    """
    names = list(points)
    xyz = np.stack([points[name] for name in names]) @ _rotation_y(yaw).T  # (P, 3)
    c, s = math.cos(math.radians(roll)), math.sin(math.radians(roll))
    image_xy = np.stack([xyz[:, 0], -xyz[:, 1]], axis=1) @ np.array([[c, s], [-s, c]])  # (P, 2)
    return dict(zip(names, image_xy)), dict(zip(names, xyz[:, 2]))


def _clothing_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.15, 0.9), rng.uniform(0.2, 0.95))
    return (int(255 * r), int(255 * g), int(255 * b))


def _skin_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return _pick(rng, SKIN_COLOURS)


def _mix(colour: tuple, other: tuple, weight: float) -> tuple[int, int, int]:
    """(1 - weight) * colour + weight * other, as integer RGB."""
    (r0, g0, b0), (r1, g1, b1) = colour, other
    return (round(r0 + weight * (r1 - r0)), round(g0 + weight * (g1 - g0)), round(b0 + weight * (b1 - b0)))


def _shade(colour: tuple, factor: float) -> tuple[int, int, int]:
    """A darker (factor < 1) version of colour."""
    return _mix((0, 0, 0), colour, factor)


def _fixed(point: np.ndarray) -> tuple[int, int]:
    """Sub-pixel coordinates for OpenCV's ``shift=4`` drawing (1/16 pixel); pixel centres are integers."""
    return (int(round(float(point[0]) * 16)), int(round(float(point[1]) * 16)))


class _Canvas:
    """The RGB image and the id image (which part is in front at each pixel), drawn together.

    The image is drawn anti-aliased; the id image (``uint16``, 0 = background) with hard edges.
    ``part_id=None`` draws on the image only (background clutter, stripes).
    """

    def __init__(self, height: int, width: int) -> None:
        self.image = np.zeros((height, width, 3), dtype=np.uint8)
        self.ids = np.zeros((height, width), dtype=np.uint16)

    def line(self, p0, p1, thickness: float, colour, part_id: int | None) -> None:
        t = max(1, int(round(thickness)))
        cv2.line(self.image, _fixed(p0), _fixed(p1), colour, t, cv2.LINE_AA, 4)
        if part_id is not None:
            cv2.line(self.ids, _fixed(p0), _fixed(p1), part_id, t, cv2.LINE_8, 4)

    def circle(self, centre, radius: float, colour, part_id: int | None) -> None:
        r = max(8, int(round(radius * 16)))
        cv2.circle(self.image, _fixed(centre), r, colour, -1, cv2.LINE_AA, 4)
        if part_id is not None:
            cv2.circle(self.ids, _fixed(centre), r, part_id, -1, cv2.LINE_8, 4)

    def ellipse(self, centre, axes, angle: float, colour, part_id: int | None) -> None:
        size = (max(8, int(round(axes[0] * 16))), max(8, int(round(axes[1] * 16))))
        cv2.ellipse(self.image, _fixed(centre), size, angle, 0, 360, colour, -1, cv2.LINE_AA, 4)
        if part_id is not None:
            cv2.ellipse(self.ids, _fixed(centre), size, angle, 0, 360, part_id, -1, cv2.LINE_8, 4)

    def polygon(self, points: np.ndarray, colour, part_id: int | None) -> None:
        hull = cv2.convexHull(np.round(np.asarray(points) * 16).astype(np.int32))
        cv2.fillConvexPoly(self.image, hull, colour, cv2.LINE_AA, 4)
        if part_id is not None:
            cv2.fillConvexPoly(self.ids, hull, part_id, cv2.LINE_8, 4)


@dataclass
class _Person:
    """One person placed in a scene."""

    pose: Pose
    body: BodyProportions
    xy: dict  # name -> image point (pixels)
    near: dict  # name -> nearness (units of H; larger is nearer the camera)
    scale: float  # pixels per unit of height H
    view: np.ndarray  # (3, 3) camera rotation R_y(yaw) @ head axes: where the face points
    chest_facing: float  # nearness of the chest's normal: > 0 when the front faces the camera


def _random_body(rng: np.random.Generator) -> BodyProportions:
    """Average proportions with a few percent of variation in length and ~10% in width."""
    base = BodyProportions()
    length = rng.normal(1.0, 0.04, 6).clip(0.9, 1.1)
    width = rng.normal(1.0, 0.1, 2).clip(0.8, 1.25)
    return replace(
        base,
        upper_arm=base.upper_arm * length[0], forearm=base.forearm * length[1], thigh=base.thigh * length[2],
        shank=base.shank * length[3], torso=base.torso * length[4], neck=base.neck * length[5],
        shoulder_width=base.shoulder_width * width[0], upper_arm_thickness=base.upper_arm_thickness * width[0],
        hip_width=base.hip_width * width[1], thigh_thickness=base.thigh_thickness * width[1],
    )


def _place_person(
    rng: np.random.Generator, size: tuple[int, int], fraction: float, centre: np.ndarray, roll: float
) -> _Person:
    """Pose a person and scale it so that its extent is ``fraction`` of the image, centred at ``centre``."""
    pose, body = sample_pose(rng), _random_body(rng)
    if pose.kind == "lying":
        roll = _pick(rng, (-1.0, 1.0)) * rng.uniform(65, 115)
    points, head_axes = skeleton_3d(pose, body)
    xy, near = project_points(points, pose.yaw, roll)
    outline = np.stack(list(xy.values()))  # (P, 2)
    low, high = outline.min(axis=0) - 0.05, outline.max(axis=0) + 0.05  # margin: the limbs' thickness
    extent = high - low  # (w, h) in units of H
    scale = fraction / max(extent[1] / size[0], extent[0] / size[1])
    offset = np.asarray(centre, dtype=np.float64) - scale * (low + high) / 2
    xy = {name: scale * p + offset for name, p in xy.items()}
    view = _rotation_y(pose.yaw) @ head_axes
    chest_normal = _rotation_z(pose.torso_side) @ _rotation_x(pose.torso_lean) @ np.array([0.0, 0.0, 1.0])
    chest_facing = float((_rotation_y(pose.yaw) @ chest_normal)[2])
    return _Person(pose, body, xy, near, scale, view, chest_facing)


def _faces_camera(person: _Person, name: str) -> bool:
    """A face keypoint is seen when its surface normal does not point too far away from the camera."""
    local, threshold = FACE_POINTS[name]
    normal = np.asarray(local) / math.hypot(*local)
    return float(person.view[2] @ normal) > threshold  # the nearness (z) row of the rotation


def _draw_person(canvas: _Canvas, person: _Person, base_id: int, rng: np.random.Generator, side_tints: bool) -> None:
    """Draw one person part by part, back to front (painter's algorithm on each part's nearness)."""
    xy, near, px, body = person.xy, person.near, person.scale, person.body
    skin = _mix(_skin_colour(rng), _clothing_colour(rng), 0.08)
    hair = _pick(rng, HAIR_COLOURS)
    shirt, trousers, badge = _clothing_colour(rng), _clothing_colour(rng), _clothing_colour(rng)
    shoes = _shade(_clothing_colour(rng), 0.5)
    sleeves = _pick(rng, ("long", "short", "none"), (0.6, 0.3, 0.1))
    shorts = rng.random() < 0.25
    plain_stripe = _clothing_colour(rng)  # drawn either way, so that side_tints changes colours only
    if side_tints:
        stripe = {"left": LEFT_TINT, "right": RIGHT_TINT}
    else:  # the same stripe on both sides: left and right only from the geometry
        stripe = {"left": plain_stripe, "right": plain_stripe}

    def part_id(name: str) -> int:
        return base_id + _PART_INDEX[name]

    def tinted(colour: tuple, side: str) -> tuple:
        return _mix(colour, stripe[side], 0.3) if side_tints else colour

    drawings = []  # (nearness, insertion order, draw function)

    def add(nearness: float, draw: Callable[[], None]) -> None:
        drawings.append((nearness, len(drawings), draw))

    def limb(part: str, a: str, b: str, thickness: float, colour: tuple, side: str) -> None:
        def draw() -> None:
            canvas.line(xy[a], xy[b], thickness * px, tinted(colour, side), part_id(part))
            canvas.line(xy[a], xy[b], 0.35 * thickness * px, stripe[side], None)

        # Limbs hang at the sides of the torso, not inside it: an arm goes behind the body only
        # when it is well behind the torso's middle (about 40 degrees of yaw for the far arm).
        outside = 0.07 if "arm" in part else 0.05
        add((near[a] + near[b]) / 2 + outside, draw)

    def hand(side: str) -> None:
        canvas.circle(xy[f"{side}_hand"], body.hand_radius * px, skin, part_id(f"{side}_hand"))

    def foot(side: str) -> None:
        colour = tinted(shoes, side)
        canvas.line(xy[f"{side}_ankle"], xy[f"{side}_toe"], body.foot_thickness * px, colour, part_id(f"{side}_foot"))

    for side in ("left", "right"):
        limb(f"{side}_upper_arm", f"{side}_shoulder", f"{side}_elbow", body.upper_arm_thickness,
             shirt if sleeves != "none" else skin, side)
        limb(f"{side}_forearm", f"{side}_elbow", f"{side}_wrist", body.forearm_thickness,
             shirt if sleeves == "long" else skin, side)
        add(drawings[-1][0] + 1e-6, lambda side=side: hand(side))
        limb(f"{side}_thigh", f"{side}_hip", f"{side}_knee", body.thigh_thickness, trousers, side)
        limb(f"{side}_shank", f"{side}_knee", f"{side}_ankle", body.shank_thickness, skin if shorts else trousers, side)
        add(drawings[-1][0] + 1e-6, lambda side=side: foot(side))

    def torso() -> None:
        outline = np.stack([xy[f"torso_{i}"] for i in range(4)] + [xy[f"pelvis_{i}"] for i in range(8)])
        canvas.polygon(outline, shirt, part_id("torso"))
        canvas.polygon(np.stack([xy[f"pelvis_{i}"] for i in range(8)]), trousers, part_id("torso"))
        if person.chest_facing > 0.35:  # a badge seen only from the front: a cue for the facing direction
            canvas.circle(xy["chest"], 0.035 * px, badge, part_id("torso"))

    add(near["torso_centre"] / 2, torso)  # halfway between the pelvis (nearness 0) and the chest
    add((near["neck"] + near["head"]) / 2 - 0.01,
        lambda: canvas.line(xy["neck"], xy["head"], body.neck_thickness * px, skin, part_id("neck")))
    add(near["head"], lambda: _draw_head(canvas, person, skin, hair, stripe, part_id("head")))

    for _, _, draw in sorted(drawings, key=lambda drawing: drawing[:2]):
        draw()


def _draw_head(canvas: _Canvas, person: _Person, skin: tuple, hair: tuple, stripe: dict, head_id: int) -> None:
    """Hair and face as two ellipses (the nearer on top), then the features that face the camera."""
    xy, near, px, body = person.xy, person.near, person.scale, person.body
    up = xy["crown"] - xy["head"]
    angle = math.degrees(math.atan2(up[1], up[0])) + 90.0
    half_w, half_h = body.head_width / 2 * px, body.head_height / 2 * px
    layers = [
        (near["hair"], xy["hair"], (half_w * 0.98, half_h * 0.92), hair),
        (near["face"], xy["face"], (half_w * 0.86, half_h * 0.88), skin),
    ]
    for _, centre, axes, colour in sorted(layers, key=lambda layer: layer[0]):
        canvas.ellipse(centre, axes, angle, colour, head_id)
    for side in ("left", "right"):
        if _faces_camera(person, f"{side}_ear"):
            canvas.circle(xy[f"{side}_ear"], 0.2 * half_w, _mix(skin, stripe[side], 0.45), head_id)
    for side in ("left", "right"):
        if _faces_camera(person, f"{side}_eye"):
            canvas.circle(xy[f"{side}_eye"], 0.13 * half_w, (25, 25, 30), head_id)
    if _faces_camera(person, "nose"):
        canvas.circle(xy["nose"], 0.14 * half_w, _shade(skin, 0.7), head_id)


def _draw_background(canvas: _Canvas, rng: np.random.Generator, side_tints: bool) -> None:
    """A colour gradient and clutter: blocks, blobs, and limb-like bars in the people's colours."""
    height, width = canvas.image.shape[:2]
    # The gradient: the ramp's values at the four corners, stretched over the image by bilinear resizing.
    colours = np.array([_clothing_colour(rng), _clothing_colour(rng)], dtype=np.float32)  # (2, 3)
    angle = rng.uniform(0, 2 * math.pi)
    c, s = math.cos(angle), math.sin(angle)
    ramp = np.array([[0.0, c], [s, c + s]], dtype=np.float32)  # (2, 2) corners
    ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min())
    corners = (colours[0] + ramp[..., None] * (colours[1] - colours[0])).astype(np.uint8)  # (2, 2, 3)
    canvas.image[:] = cv2.resize(corners, (width, height), interpolation=cv2.INTER_LINEAR)

    scale = min(height, width)
    for _ in range(int(rng.uniform(5, 13) * math.sqrt(height * width) / 128)):
        kind = rng.random()
        colour = _clothing_colour(rng) if rng.random() < 0.7 else _skin_colour(rng)
        centre = rng.uniform((0, 0), (width, height))
        size = scale * rng.uniform(0.04, 0.3)
        if kind < 0.25:
            canvas.ellipse(centre, (size / 2, size * rng.uniform(0.2, 0.6)), rng.uniform(0, 180), colour, None)
        elif kind < 0.5:
            canvas.polygon(centre + rng.uniform(-size, size, (_pick(rng, (3, 4, 5, 6)), 2)), colour, None)
        else:  # a limb-like bar, sometimes striped like a limb, sometimes ending in a blob like a hand
            direction = rng.uniform(0, 2 * math.pi)
            end = centre + 1.5 * size * np.array([math.cos(direction), math.sin(direction)])
            thickness = scale * rng.uniform(0.02, 0.07)
            canvas.line(centre, end, thickness, colour, None)
            if rng.random() < 0.3:
                tint, plain = _pick(rng, (LEFT_TINT, RIGHT_TINT)), _clothing_colour(rng)
                canvas.line(centre, end, 0.35 * thickness, tint if side_tints else plain, None)
            if rng.random() < 0.3:
                canvas.circle(end, 0.6 * thickness, _skin_colour(rng), None)


def _draw_occluder(canvas: _Canvas, rng: np.random.Generator, centre: np.ndarray, size: float) -> None:
    """A random block, disc or bar over ``centre``, written as "occluder" in the id image."""
    colour = _clothing_colour(rng)
    kind = rng.random()
    turn = rng.uniform(0, math.pi)
    c, s = math.cos(turn), math.sin(turn)
    if kind < 0.35:
        half = size / 2 * rng.uniform(0.5, 1.0, 2)
        corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * half @ np.array([[c, s], [-s, c]]) + centre
        canvas.polygon(corners, colour, _OCCLUDER_ID)
    elif kind < 0.65:
        canvas.ellipse(centre, (size / 2, size / 2 * rng.uniform(0.4, 1.0)), math.degrees(turn), colour, _OCCLUDER_ID)
    else:
        half_bar = 0.7 * size * np.array([c, s])
        canvas.line(centre - half_bar, centre + half_bar, size * rng.uniform(0.2, 0.4), colour, _OCCLUDER_ID)
    if rng.random() < 0.5:  # a second tone, so that occluders are not flat
        canvas.circle(centre + rng.uniform(-0.15, 0.15, 2) * size, size * 0.12, _clothing_colour(rng), None)


def _keypoint_visibility(canvas: _Canvas, person: _Person, base_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints ``(K, 2)`` rounded to 0.01 px and their COCO visibility ``(K,)``.

    v = 0 when the keypoint falls outside the image (then written as 0, 0); v = 2 when the
    front-most thing drawn at its pixel is one of its own parts (:data:`KEYPOINT_PARTS`) and, for
    the face, it faces the camera (for shoulders and hips on the torso, it is on the near side,
    :data:`TORSO_JOINT_CENTRES`); v = 1 otherwise (hidden by an occluder, another person or the
    person's own body).
    """
    height, width = canvas.ids.shape
    body = person.body
    keypoints = np.round(np.stack([person.xy[name] for name in COCO_KEYPOINTS]), 2)  # (K, 2)
    pixels = np.floor(keypoints + 0.5).astype(np.int64)  # the pixel whose centre is nearest
    inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < width) & (pixels[:, 1] >= 0) & (pixels[:, 1] < height)
    visibility = np.zeros(len(COCO_KEYPOINTS), dtype=np.int64)
    for k, name in enumerate(COCO_KEYPOINTS):
        if not inside[k]:
            continue
        front = int(canvas.ids[pixels[k, 1], pixels[k, 0]])
        seen = front in {base_id + _PART_INDEX[part] for part in KEYPOINT_PARTS[k]}
        if name in FACE_POINTS:
            seen = seen and _faces_camera(person, name)
        if name in TORSO_JOINT_CENTRES and front == base_id + _PART_INDEX["torso"]:
            half_width = (body.shoulder_width if "shoulder" in name else body.hip_width) / 2
            seen = person.near[name] - person.near[TORSO_JOINT_CENTRES[name]] > -math.sin(math.radians(35)) * half_width
        visibility[k] = 2 if seen else 1
    keypoints[visibility == 0] = 0.0
    return keypoints, visibility


def synthetic_scene(
    seed: int,
    index: int,
    size: tuple[int, int] = (128, 128),
    persons: tuple[int, int] = (1, 1),
    side_tints: bool = True,
) -> tuple[np.ndarray, list[dict]]:
    """Draw image number ``index`` (0-based) of the synthetic set made with ``seed``: ``(image, people)``.

    The random stream is ``np.random.default_rng([seed, index])``, so any image can be made alone
    and equals the one :func:`make_synthetic` writes.  ``persons=(1, 1)`` gives single-person
    crops (the person spans 50-90% of the image, sometimes cut by the border); otherwise a
    scene with ``persons[0]`` to ``persons[1]`` people at different scales that overlap.

    Returns:
        image: RGB ``uint8 (H, W, 3)``.
        people: one dict per person, back to front, with ``keypoints`` ``(17, 2)`` (0, 0 where
        v = 0), ``visibility`` ``(17,)``, ``mask`` ``bool (H, W)`` (the visible silhouette),
        ``bbox`` (COCO ``[x, y, w, h]`` of the mask: pixel ``j`` covers x in [j - 0.5, j + 0.5]),
        ``area`` (mask pixels, always > 0), ``head_box`` (a square of side = head height,
        centred on the head, not clipped to the image: PCKh's size reference) and ``pose``
        (the pose kind).  The scene is re-drawn (up to 30 times) while someone is almost
        entirely hidden; a person still without a visible pixel after that is left out, since
        no box can be drawn around it.
    """
    size, persons = _check_synthetic_arguments(1, size, persons, seed, side_tints)
    check_integer(index, "index", minimum=0)
    rng = np.random.default_rng([seed, index])
    single = persons == (1, 1)
    for _attempt in range(30):  # re-draw the scene while someone is (almost) entirely hidden
        canvas = _Canvas(*size)
        _draw_background(canvas, rng, side_tints)
        count = _pick(rng, range(persons[0], persons[1] + 1))
        placed = [_place_person(rng, size, *_layout(rng, size, single)) for _ in range(count)]
        placed.sort(key=lambda person: person.scale)  # small (far) people first, behind the others

        drawn_area = []  # each person's pixels just after drawing it, before anything covers it
        for p, person in enumerate(placed):
            base = 1 + _IDS_PER_PERSON * p
            _draw_person(canvas, person, base, rng, side_tints)
            drawn_area.append(int(np.count_nonzero((canvas.ids >= base) & (canvas.ids < base + _IDS_PER_PERSON))))

        occluders = int(rng.random() < 0.45) + int(rng.random() < 0.15) if single else _pick(rng, (0, 1, 2))
        for _ in range(occluders):
            person = _pick(rng, placed)
            joint = person.xy[_pick(rng, COCO_KEYPOINTS[5:])]
            centre = joint + rng.normal(0, 0.05, 2) * person.scale
            _draw_occluder(canvas, rng, centre, person.scale * rng.uniform(0.15, 0.4))

        people = [_annotate(canvas, person, 1 + _IDS_PER_PERSON * p) for p, person in enumerate(placed)]
        if _well_shown(people, drawn_area, single):
            break
    # After 30 draws of a very crowded scene someone may still be hidden entirely: a person with no
    # visible pixel has no box, so it is left out (the image then holds fewer than persons[0]).
    return _finish(canvas.image, rng), [person for person in people if person["area"] > 0]


def _annotate(canvas: _Canvas, person: _Person, base: int) -> dict:
    """The annotation of one drawn person: keypoints, visibility, silhouette, box, area, head box, pose."""
    mask = (canvas.ids >= base) & (canvas.ids < base + _IDS_PER_PERSON)
    keypoints, visibility = _keypoint_visibility(canvas, person, base)
    head_x, head_y = (round(float(c), 2) for c in person.xy["head"])
    side = round(float(person.body.head_height * person.scale), 2)
    return {
        "keypoints": keypoints,
        "visibility": visibility,
        "mask": mask,
        "bbox": _mask_box(mask),
        "area": int(np.count_nonzero(mask)),
        "head_box": [round(head_x - side / 2, 2), round(head_y - side / 2, 2), side, side],
        "pose": person.pose.kind,
    }


def _well_shown(people: list[dict], drawn_area: list[int], single: bool) -> bool:
    """Keep a draw when everyone is labelled enough and not (almost) entirely hidden by the others."""
    labelled = [int(np.count_nonzero(person["visibility"])) for person in people]
    seen = [int(np.count_nonzero(person["visibility"] == 2)) for person in people]
    shown = [person["area"] / max(area, 1) for person, area in zip(people, drawn_area)]
    if single:
        return labelled[0] >= 8 and shown[0] >= 0.5
    return min(labelled) >= 4 and min(seen) >= 3 and min(shown) >= 0.3


def _layout(rng: np.random.Generator, size: tuple[int, int], single: bool) -> tuple[float, np.ndarray, float]:
    """Where a person goes: ``(fraction of the image it spans, centre (x, y) in pixels, in-plane roll)``."""
    height, width = size
    roll = float(rng.normal(0, 8)) if rng.random() < 0.9 else float(rng.uniform(-180, 180))  # mostly upright
    if single:
        fraction = rng.uniform(0.5, 0.9)
        shift = rng.normal(0, 0.06, 2)
        if rng.random() < 0.25:  # pushed toward a border, which cuts it
            shift = rng.uniform(0.2, 0.4) * np.sign(rng.random(2) - 0.5) * (rng.random(2) < 0.7)
        return fraction, np.array([width, height]) * (0.5 + shift), roll
    fraction = math.exp(rng.uniform(math.log(0.15), math.log(0.8)))  # small and large people alike
    return fraction, rng.uniform((0.05 * width, 0.2 * height), (0.95 * width, 0.8 * height)), roll


def _mask_box(mask: np.ndarray) -> list[float]:
    """COCO ``[x, y, w, h]`` of a mask; pixel ``(i, j)`` covers x in [j - 0.5, j + 0.5]."""
    rows, cols = np.any(mask, axis=1), np.any(mask, axis=0)
    if not rows.any():
        return [0.0, 0.0, 0.0, 0.0]
    top, bottom = np.flatnonzero(rows)[[0, -1]]
    left, right = np.flatnonzero(cols)[[0, -1]]
    return [float(left) - 0.5, float(top) - 0.5, float(right - left + 1), float(bottom - top + 1)]


# Standard normal values at 256 equally likely levels: ``table[uniform byte]`` is Gaussian noise
# at a fraction of the cost of drawing normal numbers (a constant, never written).
_NORMAL_LEVELS = np.array([NormalDist().inv_cdf((i + 0.5) / 256) for i in range(256)], dtype=np.float32)
_NORMAL_LEVELS.setflags(write=False)


def _finish(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Light camera effects: sometimes a blur, usually a little Gaussian noise."""
    if rng.random() < 0.25:
        image = cv2.GaussianBlur(image, (3, 3), rng.uniform(0.4, 1.0))
    if rng.random() < 0.5:
        sigma = np.float32(rng.uniform(1.0, 4.0))
        noise = _NORMAL_LEVELS[rng.integers(0, 256, image.shape, dtype=np.uint8)] * sigma
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
    return image


def _check_synthetic_arguments(images: Any, size: Any, persons: Any, seed: Any, side_tints: Any) -> tuple[tuple, tuple]:
    """Check make_synthetic's arguments (errors name the argument); return ``size`` and ``persons`` as int pairs."""
    check_integer(images, "images", minimum=1)
    if not isinstance(side_tints, (bool, np.bool_)):
        raise TypeError(f"side_tints must be True or False, got {side_tints!r}")
    size = check_pair(size, "size", "(H, W)", minimum=MIN_IMAGE_SIZE, maximum=MAX_IMAGE_SIZE)
    persons = check_pair(persons, "persons", "(min, max)", minimum=1, maximum=MAX_PERSONS)
    if persons[0] > persons[1]:
        raise ValueError(f"persons must be (min, max) with min <= max, got {persons}")
    check_integer(seed, "seed", minimum=0)
    return size, persons


def make_synthetic(
    out_dir: str | os.PathLike,
    images: int,
    size: tuple[int, int] = (128, 128),
    persons: tuple[int, int] = (1, 1),
    seed: int = 0,
    side_tints: bool = True,
) -> Path:
    """Write a synthetic COCO keypoint data set; return the path of its ``annotations.json``.

    Writes ``out_dir/images/000001.png`` ... (image ``i`` is :func:`synthetic_scene` ``(seed, i - 1)``)
    and ``out_dir/annotations.json`` in COCO keypoint format (``pycocotools.coco.COCO`` loads
    it): ``file_name`` relative to ``out_dir/images``; per person ``keypoints`` ``[x, y, v] * 17``
    rounded to 0.01 px, ``num_keypoints`` (count of v > 0), ``bbox`` and ``area`` of the visible
    silhouette (never empty), compressed-RLE ``segmentation``, ``iscrowd`` 0, ``head_box`` for
    PCKh, and ``pose`` (the kind).  The category adds ``pcp_limbs`` (1-based like ``skeleton``).
    The same arguments give byte-identical files.

    Everything is written into a temporary folder beside ``out_dir`` and moved into place at
    the end: an error or an interrupted run leaves no half-written folder, and a set written
    over an earlier one replaces its ``images/`` entirely (no stale images of a larger set).

    Args:
        out_dir: folder to write (created if needed; must not be a file).
        images: number of images (>= 1).
        size: ``(H, W)`` in pixels, each from 32 to 4096.
        persons: ``(min, max)`` people per image, 1 <= min <= max <= 10.
        seed: integer >= 0.
        side_tints: tint left limbs orange and right limbs blue (see :data:`LEFT_TINT`).
    """
    size, persons = _check_synthetic_arguments(images, size, persons, seed, side_tints)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir must be a folder, but {out_dir} is an existing file")
    staging = out_dir.parent / f".{out_dir.name}.{os.getpid()}.partial"  # same disk: moving it is a rename
    shutil.rmtree(staging, ignore_errors=True)  # left by a killed run of the same process id
    try:
        (staging / "images").mkdir(parents=True)
        coco = _coco_header(split_spec(images, size, persons, seed, side_tints))
        for index in range(images):
            image, people = synthetic_scene(seed, index, size, persons, side_tints)
            _add_image(staging / "images", coco, index + 1, image, people)
        (staging / "annotations.json").write_text(json.dumps(coco, sort_keys=True, separators=(",", ":")),
                                                  encoding="utf-8")
        _move_into_place(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir / "annotations.json"


def _coco_header(spec: dict) -> dict[str, Any]:
    """A COCO keypoint dict with no image yet: info (with the split's arguments), licenses, the category."""
    category = coco_category()
    category["pcp_limbs"] = {name: [a + 1, b + 1] for name, (a, b) in COCO_PCP_LIMBS.items()}
    return {
        "info": {
            "description": "Synthetic people for the course '2D human pose estimation, from DeepPose to HRNet'; "
            "file_name is relative to the folder 'images' next to this file; keypoints and bbox put pixel "
            "centres at integer coordinates",
            "version": "1.0",
            "synthetic": spec,
        },
        "licenses": [],
        "images": [],
        "annotations": [],
        "categories": [category],
    }


def _add_image(image_dir: Path, coco: dict, image_id: int, image: np.ndarray, people: list[dict]) -> None:
    """Write image ``image_id`` as ``image_dir/<id>.png`` and add it and its people to ``coco``."""
    file_name = f"{image_id:06d}.png"
    cv2.imwrite(str(image_dir / file_name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    height, width = image.shape[:2]
    coco["images"].append({"id": image_id, "file_name": file_name, "height": height, "width": width})
    for person in people:
        rle = mask_utils.encode(np.asfortranarray(person["mask"].astype(np.uint8)))
        values = np.concatenate([person["keypoints"], person["visibility"][:, None]], axis=1)  # (K, 3)
        coco["annotations"].append({
            "id": len(coco["annotations"]) + 1,
            "image_id": image_id,
            "category_id": 1,
            "keypoints": [round(float(v), 2) if i % 3 < 2 else int(v) for i, v in enumerate(values.ravel())],
            "num_keypoints": int(np.count_nonzero(person["visibility"])),
            "bbox": person["bbox"],
            "area": float(person["area"]),
            "iscrowd": 0,
            "segmentation": {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")},
            "head_box": person["head_box"],
            "pose": person["pose"],
        })


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Replace ``out_dir``'s data set by the one written in ``staging`` (other files in ``out_dir`` stay)."""
    if not out_dir.exists():
        os.replace(staging, out_dir)
        return
    (out_dir / "annotations.json").unlink(missing_ok=True)  # until the end, the folder reads as incomplete
    shutil.rmtree(out_dir / "images", ignore_errors=True)  # the old images go, whatever their number
    os.replace(staging / "images", out_dir / "images")
    os.replace(staging / "annotations.json", out_dir / "annotations.json")


def split_spec(images: int, size: tuple, persons: tuple, seed: int, side_tints: bool) -> dict:
    """The arguments of a split as ``make_synthetic`` records them in ``info["synthetic"]``."""
    return {
        "images": int(images),
        "size": list(size),
        "persons": list(persons),
        "seed": int(seed),
        "side_tints": bool(side_tints),
    }
