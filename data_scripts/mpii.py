"""MPII Human Pose: download, and convert its MATLAB annotations to COCO keypoint JSON.

    python data_scripts/mpii.py --out data/mpii
    python data_scripts/mpii.py --out data/mpii --no-images            # annotations only (12 MB)
    python data_scripts/mpii.py --out data/mpii --keypoints coco       # COCO-17 keypoints

Andriluka et al., "2D Human Pose Estimation: New Benchmark and State of the Art
Analysis", CVPR 2014, http://human-pose.mpi-inf.mpg.de.  Two files:

* ``mpii_human_pose_v1_u12_2.zip`` (12 MB): ``mpii_human_pose_v1_u12_1.mat`` with the
  MATLAB struct ``RELEASE``.  No checksum is published for it; the zip's own CRC-32 of
  the .mat is checked when it is extracted.
* ``mpii_human_pose_v1.tar.gz`` (12.9 GB): ``images/*.jpg``; MD5
  ``b6bc9c6869d3f035a5570b2e68ec84c4`` (as in public MPII loaders, e.g. anibali/dlds).

The MATLAB struct, as far as this converter reads it (``i`` an image, ``r`` a person)::

    RELEASE.annolist(i).image.name           image file name
    RELEASE.annolist(i).vididx               video the frame comes from (may be empty)
    RELEASE.annolist(i).annorect(r).x1, y1, x2, y2      head rectangle
    RELEASE.annolist(i).annorect(r).annopoints.point(j) .id (0-based joint id), .x, .y,
                                                         .is_visible (1, 0, '1', '0' or empty)
    RELEASE.annolist(i).annorect(r).objpos.x, .y, .scale  rough centre, height / 200 px
    RELEASE.img_train(i)                     1: training image (annotated), 0: test image
    RELEASE.single_person{i}                 indices r of well separated people

Conversion to COCO (``OUT/<split>/annotations.json``, one per split):

* **Splits.**  Only training images (``img_train == 1``) carry joints, so only they are
  written.  MPII's own validation list is not part of the release (the one used in
  papers comes from the Stacked Hourglass / HRNet repositories), so this script holds out
  its own: every ``val_every``-th *video* (``vididx % val_every == 0``; images without a
  video by their index), so that frames of one video never sit on both sides.
  ``--val-every 0`` puts everything in ``train``.
* **Coordinates.**  MATLAB counts pixels from 1, the course from 0 (pixel centres at
  integers), so 1 is subtracted from every x and y (joints, head box, objpos), as the
  official HRNet / SimpleBaseline MPII loaders do.
* **Joints** in the MPII-16 order of ``course_lib.keypoints.MPII_KEYPOINTS`` (the mat's
  ``id``), or, with ``--keypoints coco``, in COCO-17 order via
  ``course_lib.keypoints.convert_keypoints`` (nose, eyes and ears get v=0; neck, head top,
  pelvis and thorax have no COCO counterpart and are dropped; a person left with no
  labelled joint keeps ``num_keypoints`` 0, like COCO's unlabelled people).
* **Visibility**: see :data:`VISIBILITY_FROM_MPII`: ``is_visible`` 1 -> v=2, 0 -> v=1, a
  point whose ``is_visible`` is empty or absent -> v=2 (it is labelled; MPII gives no
  occlusion flag, and MPII's PCKh scores every labelled joint); a joint with no point at
  all -> v=0 and (0, 0).  People without any point are skipped.
* **head_box** ``[x1 - 1, y1 - 1, x2 - x1, y2 - y1]``: its diagonal is the official one,
  PCKh's threshold is 0.5 x 0.6 x that diagonal (the HRNet evaluation's ``SC_BIAS``).
* **bbox**: MPII has no person boxes, so the box is derived: the tight box around the
  labelled MPII joints (all 16, whichever set is written) and the head rectangle, grown
  by :data:`BOX_MARGIN` of its width (height) on the left and right (top and bottom),
  clipped to the image when its size is known.  **area is that box's area** (w x h),
  *not* a segmentation area as in COCO.
* Extra fields per person: ``scale``, ``objpos``, ``single_person`` (listed in
  ``RELEASE.single_person``), ``mpii_rect`` (the 1-based ``r``); per image ``vididx``.
  Image ids are the 1-based MATLAB index ``i``; ``width``/``height`` are read from the
  images when they are there, absent with ``--no-images``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tarfile
import zlib
from pathlib import Path

import numpy as np

try:  # run as a script: data_scripts/ is on sys.path
    from coco import DataError, RemoteFile, extract_member, fetch, save_stream, write_json
    from download import DownloadError
except ImportError:  # imported as data_scripts.mpii
    from data_scripts.coco import DataError, RemoteFile, extract_member, fetch, save_stream, write_json
    from data_scripts.download import DownloadError

from course_lib.keypoints import MPII_KEYPOINTS, MPII_SKELETON, coco_category, convert_keypoints
from course_lib.data import DATA_ROOT
from course_lib.validation import check_choice

MPII_BASE_URL = "https://datasets.d2.mpi-inf.mpg.de/andriluka14cvpr"
MPII_FILES: dict[str, RemoteFile] = {
    "annotations": RemoteFile("mpii_human_pose_v1_u12_2.zip"),  # no published checksum (see above)
    "images": RemoteFile("mpii_human_pose_v1.tar.gz", md5="b6bc9c6869d3f035a5570b2e68ec84c4"),
}
MAT_NAME = "mpii_human_pose_v1_u12_1.mat"

# MPII is_visible -> COCO v.  None: the point is there but its is_visible is empty/absent.
VISIBILITY_FROM_MPII: dict[int | None, int] = {1: 2, 0: 1, None: 2}
# The derived person box grows by this fraction of its size on each side.
BOX_MARGIN = 0.1
NUM_MPII = len(MPII_KEYPOINTS)


# --------------------------------------------------------------------------- reading the .mat
def matlab_to_python(value):
    """Turn what ``scipy.io.loadmat`` returns into plain Python: dicts, lists, str, int/float, None.

    Works for both struct styles of loadmat (``struct_as_record=True``: NumPy record
    arrays; ``False``: ``mat_struct`` objects), squeezed or not:

    * a struct -> ``dict``; a struct array of n > 1 elements -> ``list`` of dicts;
    * a char array -> ``str``; a numeric array -> a number if it holds one value, a list if more;
    * anything empty (``[]``, ``''``, a 0 x 0 struct) -> ``None``.

    MATLAB cannot tell a 1 x 1 struct array from a struct, so a one-person ``annorect`` comes
    back as a dict, not a list of one: read lists with :func:`as_list`.
    """
    if isinstance(value, dict):
        return {key: matlab_to_python(item) for key, item in value.items() if not key.startswith("__")}
    if isinstance(value, (list, tuple)):
        return [matlab_to_python(item) for item in value]
    if hasattr(value, "_fieldnames"):  # scipy.io.matlab.mat_struct
        return {name: matlab_to_python(getattr(value, name)) for name in value._fieldnames}
    if isinstance(value, np.void) and value.dtype.names:  # one record of a struct array
        return {name: matlab_to_python(value[name]) for name in value.dtype.names}
    if isinstance(value, np.ndarray):
        if value.size == 0:
            return None
        items = value.ravel(order="F")  # MATLAB's linear order
        if value.dtype.names:  # struct array
            records = [{name: matlab_to_python(item[name]) for name in value.dtype.names} for item in items]
            return records[0] if len(records) == 1 else records
        if value.dtype.kind == "U":  # char array: one str per row
            strings = [str(item) for item in items]
            return strings[0] if len(strings) == 1 else strings
        converted = [matlab_to_python(item) for item in items]
        return converted[0] if len(converted) == 1 else converted
    if isinstance(value, str):  # also NumPy's str_
        return str(value) if value else None
    if isinstance(value, np.generic):
        return value.item()
    return value


def as_list(value) -> list:
    """``None`` -> ``[]``, a list -> itself, anything else -> ``[value]`` (see :func:`matlab_to_python`)."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def load_release(mat_path: str | os.PathLike) -> dict:
    """Load ``RELEASE`` from the MPII .mat file as plain Python (see :func:`matlab_to_python`)."""
    from scipy.io import loadmat

    try:
        mat = loadmat(mat_path)
    except Exception as error:  # scipy raises ValueError, OSError, MatReadError... on a broken file
        raise DataError(f"{mat_path} is not a readable MATLAB file ({error.__class__.__name__}: {error})") from None
    if "RELEASE" not in mat:
        found = sorted(name for name in mat if not name.startswith("__"))
        raise DataError(f"{mat_path} has no variable 'RELEASE' (found {found})")
    return matlab_to_python(mat["RELEASE"])


# --------------------------------------------------------------------------- one person
def read_person(rect: dict, where: str) -> tuple[np.ndarray, np.ndarray, list[float] | None]:
    """Joints, visibility and head box of one ``annorect`` entry, in 0-based pixels.

    Returns ``keypoints`` (16, 2) MPII order, ``visibility`` (16,) COCO flags and the head
    box ``[x, y, w, h]`` (None if the rectangle is missing).  ``where`` names the person in
    errors.
    """
    keypoints = np.zeros((NUM_MPII, 2))
    visibility = np.zeros(NUM_MPII, dtype=np.int64)
    annopoints = rect.get("annopoints")
    points = as_list(annopoints.get("point")) if isinstance(annopoints, dict) else []
    for point in points:
        if not isinstance(point, dict) or not {"id", "x", "y"} <= point.keys():
            raise DataError(f"{where}: a point lacks id, x or y: {point!r}")
        joint, x, y = point["id"], point["x"], point["y"]
        if not isinstance(joint, (int, float)) or joint != int(joint) or not 0 <= joint < NUM_MPII:
            raise DataError(f"{where}: joint id must be an integer 0..{NUM_MPII - 1}, got {joint!r}")
        joint = int(joint)
        if not all(isinstance(c, (int, float)) and math.isfinite(c) for c in (x, y)):
            raise DataError(f"{where}: joint {joint} ({MPII_KEYPOINTS[joint]}) has non-numeric x, y: {x!r}, {y!r}")
        if visibility[joint] > 0:
            raise DataError(f"{where}: joint {joint} ({MPII_KEYPOINTS[joint]}) is labelled twice")
        keypoints[joint] = (x - 1.0, y - 1.0)  # MATLAB pixels start at 1
        visibility[joint] = VISIBILITY_FROM_MPII[_visible_flag(point.get("is_visible"), where, joint)]
    corners = [rect.get(name) for name in ("x1", "y1", "x2", "y2")]
    if all(corner is None for corner in corners):
        return keypoints, visibility, None
    if not all(isinstance(c, (int, float)) and math.isfinite(c) for c in corners):
        raise DataError(f"{where}: head rectangle x1, y1, x2, y2 must be four numbers, got {corners!r}")
    x1, y1, x2, y2 = corners
    head_box = [min(x1, x2) - 1.0, min(y1, y2) - 1.0, abs(x2 - x1), abs(y2 - y1)]
    return keypoints, visibility, head_box


def _visible_flag(value, where: str, joint: int) -> int | None:
    """MPII's ``is_visible``: 1, 0, '1', '0', True/False, or empty (None)."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return int(value.strip())
    if isinstance(value, (bool, int, float)) and value in (0, 1):
        return int(value)
    raise DataError(f"{where}: joint {joint} has is_visible {value!r}, expected 1, 0 or empty")


def person_box(keypoints: np.ndarray, visibility: np.ndarray, head_box: list[float] | None,
               image_size: tuple[int, int] | None = None, margin: float = BOX_MARGIN) -> list[float]:
    """Derived person box ``[x, y, w, h]``: labelled joints and head box, grown by ``margin`` per side.

    x0 = min x - margin * (max x - min x), x1 = max x + margin * (max x - min x) (and so
    for y), clipped to ``[-0.5, W - 0.5]`` x ``[-0.5, H - 0.5]`` when ``image_size`` (H, W) is given.
    """
    points = keypoints[visibility > 0]  # (L, 2)
    if head_box is not None:
        x, y, w, h = head_box
        points = np.concatenate([points, [[x, y], [x + w, y + h]]])
    if len(points) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    low, high = points.min(axis=0), points.max(axis=0)  # (2,) each
    grow = margin * (high - low)
    low, high = low - grow, high + grow
    if image_size is not None:
        height, width = image_size
        low = np.maximum(low, -0.5)
        high = np.minimum(high, [width - 0.5, height - 0.5])
    return [float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1])]


# --------------------------------------------------------------------------- the whole release
def convert_release(release, keypoint_set: str = "mpii", val_every: int = 10,
                    image_sizes: dict[str, tuple[int, int]] | None = None) -> dict[str, dict]:
    """Convert MPII's ``RELEASE`` to COCO keypoint dicts, ``{"train": ..., "val": ...}``.

    ``release`` is what :func:`load_release` returns, or the raw ``loadmat(...)["RELEASE"]``
    in either struct style.  ``image_sizes`` maps file names to (H, W) (fills ``width``
    and ``height`` and clips boxes).  See the module docstring for every rule.
    """
    check_choice(keypoint_set, "keypoint_set", ("mpii", "coco"))
    if isinstance(val_every, bool) or not isinstance(val_every, int) or val_every < 0:
        raise ValueError(f"val_every must be an int >= 0, got {val_every!r}")
    if not isinstance(release, dict):  # raw loadmat output, not yet plain Python
        release = matlab_to_python(release)
    if not isinstance(release, dict) or not {"annolist", "img_train"} <= release.keys():
        raise DataError("RELEASE must be a struct with fields 'annolist' and 'img_train'")
    annolist = as_list(release["annolist"])
    img_train = as_list(release["img_train"])
    single_person = as_list(release.get("single_person"))
    if len(img_train) != len(annolist):
        raise DataError(f"RELEASE.img_train has {len(img_train)} entries but annolist has {len(annolist)}")
    image_sizes = image_sizes or {}

    splits = {name: {"info": {"description": f"MPII Human Pose v1 ({name}), converted to COCO keypoint format",
                              "url": "http://human-pose.mpi-inf.mpg.de", "keypoint_set": keypoint_set},
                     "images": [], "annotations": [], "categories": [mpii_category(keypoint_set)]}
              for name in ("train", "val")}
    annotation_id = 0
    for index, entry in enumerate(annolist):
        if img_train[index] != 1:
            continue  # a test image: MPII keeps its joints private
        where_image = f"RELEASE.annolist({index + 1})"
        if not isinstance(entry, dict):
            raise DataError(f"{where_image}: not a struct")
        image = as_list(entry.get("image"))
        name = image[0].get("name") if image and isinstance(image[0], dict) else None
        if not isinstance(name, str):
            raise DataError(f"{where_image}: missing image.name")
        where_image += f" ({name})"
        singles = {int(r) for r in as_list(single_person[index] if index < len(single_person) else None)}
        size = image_sizes.get(name)

        people = []
        for r, rect in enumerate(as_list(entry.get("annorect"))):
            if not isinstance(rect, dict):
                continue
            person = convert_person(rect, f"{where_image}, annorect({r + 1})", keypoint_set, size)
            if person is None:
                continue
            annotation_id += 1
            people.append({"id": annotation_id, "image_id": index + 1, "category_id": 1, **person,
                           "single_person": (r + 1) in singles, "mpii_rect": r + 1})
        if not people:
            continue

        vididx = entry.get("vididx")
        video = int(vididx) if isinstance(vididx, (int, float)) else None
        in_val = val_every > 0 and (video if video is not None else index + 1) % val_every == 0
        image_entry = {"id": index + 1, "file_name": name}
        if size is not None:
            image_entry["height"], image_entry["width"] = int(size[0]), int(size[1])
        if video is not None:
            image_entry["vididx"] = video
        split = splits["val" if in_val else "train"]
        split["images"].append(image_entry)
        split["annotations"].extend(people)
    return splits


def mpii_category(keypoint_set: str = "mpii") -> dict:
    """The COCO ``categories`` entry for the written keypoint set (1-based skeleton, as COCO)."""
    if keypoint_set == "coco":
        return coco_category()
    return {"id": 1, "name": "person", "supercategory": "person", "keypoints": list(MPII_KEYPOINTS),
            "skeleton": [[a + 1, b + 1] for a, b in MPII_SKELETON]}


def convert_person(rect: dict, where: str, keypoint_set: str = "mpii",
                   image_size: tuple[int, int] | None = None) -> dict | None:
    """The COCO annotation fields of one ``annorect`` entry (None for a person without joints).

    Fields: ``keypoints`` ``[x1, y1, v1, ...]`` (v=0 joints as 0, 0, 0), ``num_keypoints``,
    the derived ``bbox`` and its ``area``, ``iscrowd`` 0, and when MPII has them
    ``head_box``, ``objpos`` (0-based) and ``scale``.
    """
    keypoints, visibility, head_box = read_person(rect, where)
    if not visibility.any():
        return None
    box = person_box(keypoints, visibility, head_box, image_size)  # from all 16 MPII joints
    if keypoint_set == "coco":
        keypoints, visibility = convert_keypoints(keypoints, visibility, "mpii", "coco")
    flat = []
    for (x, y), v in zip(keypoints, visibility):
        flat += [round(float(x), 2), round(float(y), 2), int(v)] if v > 0 else [0, 0, 0]
    person = {"keypoints": flat, "num_keypoints": int((visibility > 0).sum()),
              "bbox": [round(c, 2) for c in box], "area": round(box[2] * box[3], 2), "iscrowd": 0}
    if head_box is not None:
        person["head_box"] = [round(c, 2) for c in head_box]
    objpos = rect.get("objpos")
    if isinstance(objpos, dict) and all(isinstance(objpos.get(c), (int, float)) for c in "xy"):
        person["objpos"] = [round(objpos["x"] - 1.0, 2), round(objpos["y"] - 1.0, 2)]
    if isinstance(rect.get("scale"), (int, float)):
        person["scale"] = float(rect["scale"])
    return person


# --------------------------------------------------------------------------- images
def extract_images(archive: Path, wanted: dict[str, Path], progress: bool = True) -> None:
    """Stream through the images tar.gz once and write each wanted image (by base name) to its path.

    ``wanted`` maps a file name (``"015601864.jpg"``) to its destination.  A truncated or
    corrupted archive is deleted (run again to download it anew).
    """
    from tqdm import tqdm

    todo = dict(wanted)
    bar = tqdm(total=len(todo), desc="extracting images", unit="img", disable=not progress, leave=False)
    try:
        with tarfile.open(archive, mode="r|gz") as tar:
            for member in tar:
                name = member.name.rsplit("/", 1)[-1]
                if not member.isfile() or name not in todo:
                    continue
                save_stream(todo.pop(name), tar.extractfile(member))
                bar.update(1)
                if not todo:
                    break
    except (tarfile.TarError, EOFError, zlib.error) as error:
        archive.unlink(missing_ok=True)
        raise DataError(f"{archive} is corrupted ({error}); it was deleted, run again to download it anew") from None
    finally:
        bar.close()
    if todo:
        raise DataError(f"{archive} lacks {len(todo)} of the annotated images, e.g. {next(iter(todo))}")


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image file, read from its header (no decoding)."""
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
    return height, width


# --------------------------------------------------------------------------- the steps
def prepare_mpii(
    out: str | os.PathLike,
    images: bool = True,
    keypoint_set: str = "mpii",
    val_every: int = 10,
    base_url: str = MPII_BASE_URL,
    verify: bool = True,
    delete_downloads: bool = False,
    progress: bool = True,
    files: dict[str, RemoteFile] | None = None,
) -> dict[str, Path]:
    """Download MPII and write ``OUT/<split>/annotations.json`` (+ ``images/``); return the JSON paths.

    Steps already done (downloads, the extracted .mat, images present) are skipped, so
    running again continues an interrupted run; the JSON files are rewritten each time
    (seconds).
    """
    check_choice(keypoint_set, "keypoint_set", ("mpii", "coco"))
    files = MPII_FILES if files is None else files
    out = Path(out)
    downloads = out / "downloads"
    base_url = base_url.rstrip("/")

    mat_path = downloads / MAT_NAME
    if not mat_path.exists():
        archive = fetch(files["annotations"], base_url, downloads, verify, progress)
        extract_member(archive, _find_member(archive, MAT_NAME), mat_path)
    release = load_release(mat_path)
    splits = convert_release(release, keypoint_set=keypoint_set, val_every=val_every)

    if images:
        wanted = {image["file_name"]: out / split / "images" / image["file_name"]
                  for split, data in splits.items() for image in data["images"]}
        missing = {name: path for name, path in wanted.items() if not path.exists()}
        if missing:
            archive = fetch(files["images"], base_url, downloads, verify, progress)
            extract_images(archive, missing, progress)
            if delete_downloads:
                archive.unlink()
        sizes = {name: image_size(path) for name, path in wanted.items()}
        splits = convert_release(release, keypoint_set=keypoint_set, val_every=val_every, image_sizes=sizes)

    written = {}
    for split, data in splits.items():
        if not data["images"]:
            continue
        written[split] = write_json(data, out / split / "annotations.json")
        print(f"wrote {written[split]}: {len(data['images'])} images, {len(data['annotations'])} people; "
              f"read it with course_lib.data.CocoKeypoints({str(written[split])!r})")
    return written


def _find_member(archive: Path, base_name: str) -> str:
    """The path inside a zip of the member called ``base_name`` (wherever it sits)."""
    import zipfile

    try:
        with zipfile.ZipFile(archive) as zipped:
            names = [n for n in zipped.namelist() if n.rsplit("/", 1)[-1] == base_name]
    except zipfile.BadZipFile as error:
        archive.unlink(missing_ok=True)
        raise DataError(f"{archive} is corrupted ({error}); it was deleted, run again to download it anew") from None
    if not names:
        raise DataError(f"{archive} has no {base_name} (is it the right file?)")
    return names[0]


# --------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Download MPII Human Pose and convert it to COCO format.")
    parser.add_argument("--out", type=Path, default=DATA_ROOT / "mpii",
                        help=f"root folder (default {DATA_ROOT / 'mpii'})")
    parser.add_argument("--images", action=argparse.BooleanOptionalAction, default=True,
                        help="also fetch the images, 12.9 GB (default: yes)")
    parser.add_argument("--keypoints", choices=("mpii", "coco"), default="mpii",
                        help="keypoint set written: MPII-16 (default) or COCO-17")
    parser.add_argument("--val-every", type=int, default=10,
                        help="hold out every N-th video as 'val' (0: no val split; default 10)")
    parser.add_argument("--base-url", default=MPII_BASE_URL, help=f"where the files are (default {MPII_BASE_URL})")
    parser.add_argument("--no-verify", action="store_true", help="skip the MD5 check of the images archive")
    parser.add_argument("--delete-downloads", action="store_true", help="delete the images archive after extracting")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.val_every < 0:
        parser.error(f"--val-every must be >= 0, got {args.val_every}")
    try:
        prepare_mpii(args.out, images=args.images, keypoint_set=args.keypoints, val_every=args.val_every,
                     base_url=args.base_url, verify=not args.no_verify, delete_downloads=args.delete_downloads,
                     progress=not args.quiet)
    except (DownloadError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
