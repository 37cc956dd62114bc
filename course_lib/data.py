"""Data: the synthetic people, the COCO keypoint reader, and image <-> tensor conversion (chapter 00).

Four parts, top to bottom:

1. **Image <-> tensor** for the models (ImageNet normalisation).
2. **Reading COCO keypoint files** (Lin et al. 2014, "Microsoft COCO: Common Objects in Context",
   https://cocodataset.org/#format-data): :func:`load_coco_keypoints` validates a file,
   :class:`CocoKeypoints` serves one item per annotated person.  It reads the synthetic set
   below and real COCO/MPII files (converted by ``data_scripts/``) alike.
3. **The default data**: :data:`DEFAULT_SPLITS` and :func:`ensure_default_data`, which makes the
   course's synthetic sets under ``data/synthetic/`` with :func:`make_synthetic` (the renderer
   lives in :mod:`course_lib.synthetic` and is re-exported here).
4. **The astronaut**: one real photograph (``skimage.data.astronaut()``) with hand-annotated
   COCO keypoints, :func:`astronaut`.

Layout of a data set folder (the synthetic one and the one ``CocoKeypoints`` expects)::

    DIR/annotations.json       COCO keypoint format, written last
    DIR/images/000001.png      ``file_name`` is "000001.png": relative to the image folder, COCO's convention

Letters: K keypoints per person (17 for COCO); an image is ``(H, W)`` pixels, an array of shape
``(H, W, 3)``.  Keypoints are image pixels ``x, y`` with pixel centres at integer coordinates
(see ``course_lib/__init__.py``), so an image of width W spans ``x`` from -0.5 to W - 0.5.
"""

from __future__ import annotations

import json
import numbers
import os
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping

import cv2
import numpy as np
import torch

from course_lib.synthetic import (  # noqa: F401  (re-exported)
    MAX_IMAGE_SIZE,
    MAX_PERSONS,
    MIN_IMAGE_SIZE,
    make_synthetic,
    split_spec,
    synthetic_scene,
)
from course_lib.validation import check_array

# Where the course keeps its data: ``data/`` next to ``course_lib/`` (override with COURSE_DATA).
DATA_ROOT = Path(os.environ.get("COURSE_DATA", Path(__file__).resolve().parents[1] / "data"))

# ImageNet statistics (RGB), the normalisation every model of the course expects.
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)


# =========================================================================== 1. image <-> tensor
def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """RGB ``uint8`` image ``(H, W, 3)`` (or a batch ``(N, H, W, 3)``) -> normalised float tensor ``(3, H, W)``.

    x = (pixel / 255 - mean) / std, per channel.
    """
    image = check_array(image, "image", (..., None, None, 3), dtype=None)
    channels_first = torch.from_numpy(np.ascontiguousarray(image)).movedim(-1, -3)  # (..., 3, H, W), a view
    tensor = torch.empty(channels_first.shape).copy_(channels_first)  # float32, contiguous, in one pass
    mean = torch.tensor(IMAGE_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(3, 1, 1)
    return tensor.div_(255.0).sub_(mean).div_(std)


def tensor_to_image(tensor: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`image_to_tensor`: ``(3, H, W)`` or ``(N, 3, H, W)`` -> RGB ``uint8`` ``(..., H, W, 3)``."""
    tensor = check_array(tensor, "tensor", (..., 3, None, None), allow_torch=True)
    tensor = torch.as_tensor(tensor).detach().float().cpu()
    mean = torch.tensor(IMAGE_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(3, 1, 1)
    image = (tensor * std + mean).clamp(0, 1).mul(255).round().to(torch.uint8)
    return image.movedim(-3, -1).numpy()


# =========================================================================== 2. reading COCO keypoints
def load_coco_keypoints(path_or_dict: str | os.PathLike | dict) -> dict:
    """Read (or take) a COCO keypoint data set and check every annotation; return the parsed dict.

    The number of keypoints K is ``len(categories[0]["keypoints"])``, so the same reader serves
    COCO-17, MPII-16 converted to COCO format, or any other set.  Every image needs an integer
    ``id`` and a ``file_name``; each annotation an integer ``id``, the integer ``image_id`` of a
    listed image, ``keypoints`` (``[x1, y1, v1, ..., xK, yK, vK]``, v in {0, 1, 2}) and ``bbox``
    (``[x, y, w, h]``, w, h >= 0), all numbers finite, and ``iscrowd``, where present, 0 or 1.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: a file that is not JSON (the message names the path), or a malformed
            image or annotation (the message names its id and the problem).
    """
    if isinstance(path_or_dict, (str, os.PathLike)):
        path = Path(path_or_dict)
        if not path.is_file():
            raise FileNotFoundError(f"annotations file not found: {path}")
        try:
            with open(path, encoding="utf-8") as file:
                coco = json.load(file)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{path} is not a COCO keypoint file: it is not valid JSON ({error})") from None
    elif isinstance(path_or_dict, dict):
        coco = path_or_dict
    else:
        raise TypeError(f"path_or_dict must be a path or a dict, got {type(path_or_dict).__name__}")
    _check_coco_keypoints(coco)
    return coco


def _check_coco_keypoints(coco: Any) -> None:
    if not isinstance(coco, dict):
        raise ValueError(f"COCO keypoint data must be a JSON object (dict), got {type(coco).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise ValueError(f"COCO keypoint data needs a list '{key}', got {type(coco.get(key)).__name__}")
    categories = coco["categories"]
    if not categories or not isinstance(categories[0], dict) or not isinstance(categories[0].get("keypoints"), list):
        raise ValueError("categories[0] must be a dict with a 'keypoints' list of names")
    num_keypoints = len(categories[0]["keypoints"])
    if num_keypoints == 0:
        raise ValueError("categories[0]['keypoints'] is empty")
    image_ids = _check_images(coco["images"])
    for index, annotation in enumerate(coco["annotations"]):
        _check_annotation_fields(annotation, index, image_ids, num_keypoints)
    _check_unique(coco["annotations"])
    if coco["annotations"]:
        _check_annotation_values(coco["annotations"])


def _check_images(images: list) -> set[int]:
    """Every image has an integer ``id`` (no two alike) and a ``file_name``; returns the ids."""
    image_ids: set[int] = set()
    for index, image in enumerate(images):
        if not isinstance(image, dict) or "id" not in image:
            raise ValueError(f"image at index {index}: missing field 'id'")
        if not _is_integer(image["id"]):
            raise ValueError(f"image at index {index}: id must be an integer, got {image['id']!r}")
        if image["id"] in image_ids:
            raise ValueError(f"image {image['id']}: duplicate image id")
        if not isinstance(image.get("file_name"), str) or not image["file_name"]:
            raise ValueError(f"image {image['id']}: missing field 'file_name' "
                             "(the image file, relative to the image folder)")
        image_ids.add(image["id"])
    return image_ids


def _check_annotation_fields(annotation: Any, index: int, image_ids: set[int], num_keypoints: int) -> None:
    """One annotation's structure: integer ids, required fields, list lengths, ``iscrowd`` 0 or 1."""
    if not isinstance(annotation, dict):
        raise ValueError(f"annotation at index {index}: must be a dict, got {type(annotation).__name__}")
    if "id" not in annotation:
        raise ValueError(f"annotation at index {index} (no id): missing field 'id'")
    if not _is_integer(annotation["id"]):
        raise ValueError(f"annotation at index {index}: id must be an integer, got {annotation['id']!r}")
    name = f"annotation {annotation['id']}"
    for field in ("image_id", "keypoints", "bbox"):
        if field not in annotation:
            raise ValueError(f"{name}: missing field '{field}'")
    if not _is_integer(annotation["image_id"]):
        raise ValueError(f"{name}: image_id must be an integer, got {annotation['image_id']!r}")
    if annotation["image_id"] not in image_ids:
        raise ValueError(f"{name}: image_id {annotation['image_id']!r} is not in 'images'")
    if annotation.get("iscrowd", 0) not in (0, 1):  # a string "0" would read as a crowd
        raise ValueError(f"{name}: iscrowd must be 0 or 1, got {annotation['iscrowd']!r}")
    for field, length in (("keypoints", 3 * num_keypoints), ("bbox", 4), ("head_box", 4)):
        values = annotation.get(field, [0] * length)
        if not isinstance(values, (list, tuple)):
            raise ValueError(f"{name}: {field} must be a list of numbers, got {type(values).__name__}")
        if field == "keypoints" and len(values) != length:
            raise ValueError(f"{name}: keypoints has {len(values)} values, expected 3 * {num_keypoints} = {length}")
        if len(values) != length:
            raise ValueError(f"{name}: {field} must be [x, y, w, h], got {len(values)} values")
    if "area" in annotation:
        _numbers([annotation["area"]], name, "area")


def _check_unique(annotations: list[dict]) -> None:
    seen: set[int] = set()
    for annotation in annotations:
        if annotation["id"] in seen:
            raise ValueError(f"annotation {annotation['id']}: duplicate annotation id")
        seen.add(annotation["id"])


def _check_annotation_values(annotations: list[dict]) -> None:
    """Values, all annotations at once (a COCO file has a quarter of a million people)."""
    names = [f"annotation {annotation['id']}" for annotation in annotations]
    keypoints = _number_table(annotations, "keypoints", names)  # (M, 3K)
    flags = keypoints[:, 2::3]  # (M, K)
    bad = ~((flags == 0) | (flags == 1) | (flags == 2))
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise ValueError(f"{names[row]}: visibility flags v must be 0, 1 or 2, got {flags[row, column]:g}")
    for field in ("bbox", "head_box"):
        boxes = _number_table(annotations, field, names)  # (M, 4)
        negative = (boxes[:, 2] < 0) | (boxes[:, 3] < 0)
        if negative.any():
            row = int(np.argmax(negative))
            raise ValueError(f"{names[row]}: {field} has negative size (w={boxes[row, 2]:g}, h={boxes[row, 3]:g})")


def _is_integer(value: Any) -> bool:
    """A JSON integer: ``int`` but not ``bool`` (``"7"``, ``7.0`` and ``True`` are not ids)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _number_table(annotations: list[dict], field: str, names: list[str]) -> np.ndarray:
    """``annotation[field]`` of every annotation as one float array ``(M, L)`` (zeros where absent).

    Raises ValueError naming the first annotation with a non-numeric, NaN or infinite value.
    """
    rows = [annotation.get(field, (0, 0, 0, 0)) for annotation in annotations]
    table = np.asarray(rows)
    if table.ndim != 2 or table.dtype.kind not in "iuf":  # a string, None or a bool somewhere: find it
        for row, name in zip(rows, names):
            _numbers(row, name, field)
    table = table.astype(np.float64)
    finite = np.isfinite(table).all(axis=1)
    if not finite.all():
        raise ValueError(f"{names[int(np.argmin(finite))]}: {field} contains NaN or infinite values")
    return table


def _numbers(values: Any, name: str, field: str) -> np.ndarray:
    """The JSON list ``values`` as a float array; ValueError naming the annotation if it is not all finite numbers."""
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{name}: {field} contains a non-numeric value {value!r}")
    array = np.asarray(values, dtype=np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: {field} contains NaN or infinite values")
    return array


def person_item(annotation: dict, image: np.ndarray) -> dict:
    """The item dict of one COCO person annotation (see :class:`CocoKeypoints`)."""
    values = np.asarray(annotation["keypoints"], dtype=np.float32).reshape(-1, 3)  # (K, 3): x, y, v
    item = {
        "image": image,
        "keypoints": values[:, :2].copy(),
        "visibility": values[:, 2].astype(np.int64),
        "box": np.asarray(annotation["bbox"], dtype=np.float32),
        "area": float(annotation.get("area", 0.0)),
        "image_id": int(annotation["image_id"]),
        "annotation_id": int(annotation["id"]),
    }
    if "head_box" in annotation:
        item["head_box"] = np.asarray(annotation["head_box"], dtype=np.float32)
    return item


class CocoKeypoints:
    """A map-style data set with one item per annotated person of a COCO keypoint file.

    Works with ``torch.utils.data.DataLoader`` (items of equal image size batch with the default
    collate).  Item ``i`` is a dict:

    =================  =================================================================
    ``image``          ``np.uint8 (H, W, 3)`` RGB, the whole image the person is in
    ``keypoints``      ``float32 (K, 2)`` image pixels ``x, y``
    ``visibility``     ``int64 (K,)`` COCO flags 0 / 1 / 2
    ``box``            ``float32 (4,)`` the person box, COCO ``[x, y, w, h]``
    ``area``           ``float``, the segmented area in pixels
    ``head_box``       ``float32 (4,)`` ``[x, y, w, h]`` for PCKh, only when the file has one
    ``image_id``       ``int``
    ``annotation_id``  ``int``
    =================  =================================================================

    Args:
        annotations: path to ``annotations.json`` or an already loaded dict.
        image_dir: folder the ``file_name`` entries are relative to.  Default for a path:
            ``<its folder>/images`` if that exists, else its folder.  Needed for a dict to
            load images.  When known, every image file a person is in must exist (a
            FileNotFoundError names the first missing one).
        min_keypoints: keep people with at least this many labelled (v > 0) keypoints.
        include_crowd: keep ``iscrowd=1`` annotations (COCO's groups of people).
        cache_images: keep decoded images in memory (training reads each image many times).
        transform: optional function applied to each item dict before it is returned.
    """

    def __init__(
        self,
        annotations: str | os.PathLike | dict,
        image_dir: str | os.PathLike | None = None,
        min_keypoints: int = 1,
        include_crowd: bool = False,
        cache_images: bool = False,
        transform: Callable[[dict], Any] | None = None,
    ) -> None:
        if isinstance(min_keypoints, bool) or not isinstance(min_keypoints, numbers.Integral) or min_keypoints < 0:
            raise ValueError(f"min_keypoints must be an integer >= 0, got {min_keypoints!r}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        self.coco = load_coco_keypoints(annotations)
        if image_dir is None and not isinstance(annotations, dict):
            folder = Path(annotations).resolve().parent
            image_dir = folder / "images" if (folder / "images").is_dir() else folder
        self.image_dir = None if image_dir is None else Path(image_dir)
        self.keypoint_names: list[str] = list(self.coco["categories"][0]["keypoints"])
        self.cache_images = bool(cache_images)
        self.transform = transform

        self._images = {image["id"]: image for image in self.coco["images"]}
        self.image_ids: list = [image["id"] for image in self.coco["images"]]
        self._by_image: dict[Any, list[dict]] = {image_id: [] for image_id in self.image_ids}
        for annotation in self.coco["annotations"]:
            self._by_image[annotation["image_id"]].append(annotation)
        self._people = [
            annotation
            for annotation in self.coco["annotations"]
            if (include_crowd or not annotation.get("iscrowd", 0))
            and int(np.count_nonzero(np.asarray(annotation["keypoints"][2::3]) > 0)) >= min_keypoints
        ]
        self._cache: dict[Any, np.ndarray] = {}
        self._check_image_files()

    def _check_image_files(self) -> None:
        """Every image a person of this data set is in must exist (checked now, not at the first access)."""
        if self.image_dir is None:
            return
        needed = dict.fromkeys(annotation["image_id"] for annotation in self._people)
        missing = [image_id for image_id in needed if not self.image_path(image_id).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} of the {len(needed)} image files are missing from {self.image_dir}, e.g. image "
                f"{missing[0]}: {self.image_path(missing[0])} (is image_dir right?)"
            )

    def __len__(self) -> int:
        return len(self._people)

    def __getitem__(self, index: int) -> Any:
        annotation = self._people[index]
        item = person_item(annotation, self.load_image(annotation["image_id"]))
        return self.transform(item) if self.transform is not None else item

    def __repr__(self) -> str:
        return (
            f"CocoKeypoints({len(self)} people in {len(self.image_ids)} images, "
            f"K={len(self.keypoint_names)}, image_dir={self.image_dir})"
        )

    def image_path(self, image_id: Any) -> Path:
        """Path of the image file of ``image_id``."""
        if image_id not in self._images:
            raise KeyError(f"image_id {image_id!r} is not in this data set")
        if self.image_dir is None:
            raise ValueError("image_dir is needed to load images when annotations were given as a dict")
        return self.image_dir / self._images[image_id]["file_name"]

    def load_image(self, image_id: Any) -> np.ndarray:
        """The RGB ``uint8 (H, W, 3)`` image of ``image_id`` (read with OpenCV, BGR -> RGB)."""
        if image_id in self._cache:
            return self._cache[image_id].copy()
        path = self.image_path(image_id)
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"cannot read image {image_id!r}: {path}")
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if self.cache_images:
            self._cache[image_id] = image
            return image.copy()
        return image

    def annotations_for(self, image_id: Any) -> list[dict]:
        """The raw COCO annotation dicts of one image (all of them, crowds included)."""
        if image_id not in self._by_image:
            raise KeyError(f"image_id {image_id!r} is not in this data set")
        return list(self._by_image[image_id])


# The course's default data (name -> make_synthetic arguments): single-person crops for chapters
# 01-08, multi-person scenes for chapter 09.  `make lab` / `make data` makes them in about 25 s
# of one CPU core (about 190 MB).
DEFAULT_SPLITS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "single/train": MappingProxyType({"images": 4000, "size": (128, 128), "persons": (1, 1), "seed": 1}),
    "single/val": MappingProxyType({"images": 500, "size": (128, 128), "persons": (1, 1), "seed": 2}),
    "multi/train": MappingProxyType({"images": 1000, "size": (256, 256), "persons": (2, 5), "seed": 3}),
    "multi/val": MappingProxyType({"images": 200, "size": (256, 256), "persons": (2, 5), "seed": 4}),
})


def default_split_dir(name: str, root: str | os.PathLike | None = None) -> Path:
    """Folder of a default split, e.g. ``default_split_dir("single/train")`` -> ``DATA_ROOT/synthetic/single/train``."""
    if name not in DEFAULT_SPLITS:
        raise ValueError(f"name must be one of {sorted(DEFAULT_SPLITS)}, got {name!r}")
    return (Path(root) if root is not None else DATA_ROOT / "synthetic") / name


def split_is_complete(directory: str | os.PathLike, spec: Mapping[str, Any]) -> bool:
    """True when ``directory/annotations.json`` was made with ``spec`` and all its images exist."""
    path = Path(directory) / "annotations.json"
    if not path.is_file():
        return False
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    wanted = split_spec(spec["images"], spec["size"], spec["persons"], spec["seed"], spec.get("side_tints", True))
    if coco.get("info", {}).get("synthetic") != wanted:
        return False
    return all((Path(directory) / "images" / image["file_name"]).is_file() for image in coco.get("images", []))


def ensure_default_data(
    root: str | os.PathLike | None = None, splits: Mapping[str, Mapping[str, Any]] | None = None, verbose: bool = False
) -> Path:
    """Make every split that is missing or incomplete, then write ``root/.complete``; return ``root``.

    ``root`` defaults to ``DATA_ROOT/synthetic`` and ``splits`` to :data:`DEFAULT_SPLITS`
    (name -> :func:`make_synthetic` arguments; the name is the sub-folder).  A split is complete
    when its ``annotations.json`` (written last) was made with the same arguments and all its
    images exist, so an interrupted run resumes where it stopped.  With ``verbose``, print what
    is made and the images per second.
    """
    root = Path(root) if root is not None else DATA_ROOT / "synthetic"
    splits = DEFAULT_SPLITS if splits is None else splits
    if not isinstance(splits, Mapping) or not splits:
        raise ValueError(f"splits must be a non-empty mapping name -> make_synthetic arguments, got {splits!r}")
    marker = root / ".complete"
    marker.unlink(missing_ok=True)
    for name, spec in splits.items():
        directory = root / name
        if split_is_complete(directory, spec):
            if verbose:
                print(f"{name}: complete ({directory})")
            continue
        start = time.perf_counter()
        make_synthetic(directory, **dict(spec))
        seconds = time.perf_counter() - start
        if verbose:
            size = "x".join(str(s) for s in spec.get("size", (128, 128)))
            print(f"{name}: made {spec['images']} images of {size} in {seconds:.1f} s "
                  f"({spec['images'] / seconds:.0f} images/s) -> {directory}")
    marker.write_text("\n".join(sorted(splits)) + "\n", encoding="utf-8")
    return root


# =========================================================================== 4. the astronaut
ASTRONAUT_ANNOTATIONS = Path(__file__).resolve().parent / "fixtures" / "astronaut_keypoints.json"


def astronaut() -> dict:
    """``skimage.data.astronaut()`` (Eileen Collins, NASA; 512 x 512 RGB) with hand-annotated COCO keypoints.

    Returns an item like :class:`CocoKeypoints` gives: ``image``, ``keypoints`` ``float32 (17, 2)``,
    ``visibility`` ``int64 (17,)`` (the face, shoulders, right arm visible; the left elbow hidden
    behind the helmet, v = 1; the left wrist and everything below the waist out of frame, v = 0),
    ``box``, ``area``, ``head_box``, ``image_id``, ``annotation_id``.  The annotation lives in
    ``course_lib/fixtures/astronaut_keypoints.json`` (COCO format).
    """
    import skimage.data

    coco = load_coco_keypoints(ASTRONAUT_ANNOTATIONS)
    return person_item(coco["annotations"][0], skimage.data.astronaut())
