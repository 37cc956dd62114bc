"""COCO 2017 person keypoints: download, verify, and lay out for ``course_lib.data.CocoKeypoints``.

    python data_scripts/coco.py --out data/coco --split val2017
    python data_scripts/coco.py --out data/coco --split train2017 --max-images 2000
    python data_scripts/coco.py --out data/coco --split val2017 --no-images

What it does, each step skipped when its result is already there (so an interrupted run
is continued by running the same command again):

1. download ``annotations_trainval2017.zip`` (241 MiB) from images.cocodataset.org and
   check its published MD5;
2. extract ``annotations/person_keypoints_<split>.json`` from it;
3. keep the person category and (by default) the images with at least one person;
   ``--max-images N`` keeps the first N of those (by image id);
4. images: the whole split comes from the split's zip (``val2017.zip`` 778 MiB,
   ``train2017.zip`` 18 GiB, MD5 checked), a ``--max-images`` subset is fetched image by
   image (no zip; every image is decoded to check it, COCO publishes no per-image sums);
5. write ``OUT/<split>/annotations.json`` last, with COCO's own fields unchanged.

Layout::

    OUT/downloads/annotations_trainval2017.zip, person_keypoints_<split>.json, <split>.zip
    OUT/<split>/annotations.json
    OUT/<split>/images/<file_name>            (file_name as in COCO: "000000000139.jpg")

The MD5 sums and sizes are those COCO serves (the same values appear in many public
download scripts, e.g. PaddleDetection's COCO tests and MLPerf's COCO download scripts).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

try:  # run as a script: data_scripts/ is on sys.path
    from download import DownloadError, download
except ImportError:  # imported as data_scripts.coco
    from data_scripts.download import DownloadError, download

from course_lib.data import DATA_ROOT
from course_lib.validation import check_choice

COCO_BASE_URL = "http://images.cocodataset.org"
SPLITS = ("val2017", "train2017")


class DataError(ValueError):
    """A source file is malformed, corrupted or lacks what it should hold (the message names it)."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set: its path under the base URL and what we know to check it."""

    path: str
    md5: str | None = None
    size: int | None = None  # bytes, as served

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


COCO_FILES: dict[str, RemoteFile] = {
    "annotations": RemoteFile("annotations/annotations_trainval2017.zip",
                              md5="f4bbac642086de4f52a3fdda2de5fa2c", size=252_907_541),
    "val2017": RemoteFile("zips/val2017.zip", md5="442b8da7639aecaf257c1dceb8ba8c80", size=815_585_330),
    "train2017": RemoteFile("zips/train2017.zip", md5="cced6f7f71b7629ddf16f17bbcfab6b2",
                            size=19_336_861_798),
}

# Fields every image entry must have (the script names, fetches and checks images by them).
IMAGE_FIELDS = ("id", "file_name", "width", "height")


# --------------------------------------------------------------------------- the steps
def prepare_coco(
    out: str | os.PathLike,
    split: str = "val2017",
    images: bool = True,
    max_images: int | None = None,
    people_only: bool = True,
    base_url: str = COCO_BASE_URL,
    verify: bool = True,
    image_source: str = "auto",
    delete_downloads: bool = False,
    progress: bool = True,
    files: dict[str, RemoteFile] | None = None,
) -> Path:
    """Download and lay out one COCO 2017 split; return the path of its ``annotations.json``.

    Args:
        out: root folder (``OUT/downloads``, ``OUT/<split>``).
        split: ``"val2017"`` or ``"train2017"``.
        images: also fetch the images (else only ``annotations.json``).
        max_images: keep only the first N images (by id) after filtering.
        people_only: keep only images with at least one person annotation.
        base_url: where the files are (a mirror, or a local ``file://`` copy).
        verify: check the published MD5 sums (turn off only for a mirror that repacked them).
        image_source: ``"zip"`` (the split's zip), ``"files"`` (image by image) or
            ``"auto"`` (files when ``max_images`` is given, else the zip).
        delete_downloads: delete the image zip once its images are extracted.
        progress: show progress bars.
        files: the remote files and their sums (default :data:`COCO_FILES`).
    """
    check_choice(split, "split", SPLITS)
    check_choice(image_source, "image_source", ("auto", "zip", "files"))
    if max_images is not None and (isinstance(max_images, bool) or not isinstance(max_images, int)
                                   or max_images <= 0):
        raise ValueError(f"max_images must be a positive int or None, got {max_images!r}")
    files = COCO_FILES if files is None else files
    out = Path(out)
    downloads = out / "downloads"
    split_dir = out / split
    base_url = base_url.rstrip("/")

    # 1-2. annotations
    source = downloads / f"person_keypoints_{split}.json"
    if not source.exists():
        archive = fetch(files["annotations"], base_url, downloads, verify, progress)
        extract_member(archive, f"annotations/person_keypoints_{split}.json", source)

    # 3. the subset
    data = select_people(read_json(source), source, people_only=people_only, max_images=max_images)
    print(f"{split}: {len(data['images'])} images, {len(data['annotations'])} person annotations")

    # 4. images
    if images:
        image_dir = split_dir / "images"
        missing = [im["file_name"] for im in data["images"] if not (image_dir / im["file_name"]).exists()]
        if missing:
            use_files = image_source == "files" or (image_source == "auto" and max_images is not None)
            if use_files:
                fetch_images(data["images"], missing, f"{base_url}/{split}", image_dir, progress)
            else:
                archive = fetch(files[split], base_url, downloads, verify, progress)
                extract_images(archive, split, missing, image_dir, progress)
                if delete_downloads:
                    archive.unlink()

    # 5. annotations.json last: its presence means the split is complete
    target = split_dir / "annotations.json"
    write_json(data, target)
    print(f"wrote {target}; read it with course_lib.data.CocoKeypoints({str(target)!r})")
    return target


def fetch(remote: RemoteFile, base_url: str, folder: Path, verify: bool, progress: bool) -> Path:
    """Download one :class:`RemoteFile` into ``folder`` (resuming, checking its MD5 if ``verify``)."""
    size = f" ({remote.size / 2**20:,.0f} MiB)" if remote.size else ""
    dest = folder / remote.name
    if not dest.exists():
        print(f"downloading {base_url}/{remote.path}{size}")
    return download(f"{base_url}/{remote.path}", dest, md5=remote.md5 if verify else None, progress=progress)


def extract_member(archive: Path, member: str, dest: Path) -> Path:
    """Copy one member of a zip archive to ``dest`` (written whole or not at all).

    A corrupted archive (bad zip, CRC mismatch) is deleted so that the next run fetches it
    again; the error says so.
    """
    try:
        with zipfile.ZipFile(archive) as zipped:
            if member not in zipped.namelist():
                raise DataError(f"{archive} has no member {member!r} (is it the right file?)")
            with zipped.open(member) as source:
                save_stream(dest, source)
    except (zipfile.BadZipFile, EOFError, zlib.error) as error:
        archive.unlink(missing_ok=True)
        raise DataError(f"{archive} is corrupted ({error}); it was deleted, run again to download it anew") from None
    return dest


def read_json(path: Path) -> dict:
    """Read a JSON file; a truncated or invalid file raises :class:`DataError` naming it."""
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except json.JSONDecodeError as error:
        raise DataError(f"{path} is not valid JSON ({error}); delete it and run again") from None


def check_keypoint_file(data: dict, source: str | os.PathLike) -> int:
    """Check the COCO keypoint format of ``data``; return K, the number of keypoints.

    The checks of ``course_lib.data.load_coco_keypoints`` (every annotation has an id, a
    listed ``image_id``, ``keypoints`` of 3 K finite numbers with v in {0, 1, 2}, a ``bbox``
    with w, h >= 0), plus what this script relies on: the first category is ``person`` and
    every image has :data:`IMAGE_FIELDS`.  Errors name the file and the annotation or image id.
    """
    from course_lib.data import load_coco_keypoints

    try:
        load_coco_keypoints(data)
    except (ValueError, TypeError) as error:
        raise DataError(f"{source}: {error}") from None
    category = data["categories"][0]
    if category.get("name") != "person":
        raise DataError(f"{source}: the first category must be 'person', got {category.get('name')!r}")
    for image in data["images"]:
        for field in IMAGE_FIELDS:
            if field not in image:
                raise DataError(f"{source}: image {image['id']}: missing field {field!r}")
    return len(category["keypoints"])


def select_people(data: dict, source: str | os.PathLike, people_only: bool = True,
                  max_images: int | None = None) -> dict:
    """The person-keypoint subset of a COCO file: person category only, images with people.

    ``info``, ``licenses`` and every field of the kept images and annotations are copied
    unchanged; ``max_images`` keeps the first N images by id.
    """
    check_keypoint_file(data, source)
    person = data["categories"][0]
    annotations = [a for a in data["annotations"] if a["category_id"] == person["id"]]
    images = sorted(data["images"], key=lambda image: image["id"])
    if people_only:
        with_people = {a["image_id"] for a in annotations}
        images = [image for image in images if image["id"] in with_people]
    if max_images is not None:
        images = images[:max_images]
    kept = {image["id"] for image in images}
    subset = {key: value for key, value in data.items() if key not in ("images", "annotations", "categories")}
    subset["images"] = images
    subset["annotations"] = [a for a in annotations if a["image_id"] in kept]
    subset["categories"] = [person]
    return subset


def extract_images(archive: Path, split: str, file_names: list[str], image_dir: Path,
                   progress: bool = True) -> None:
    """Extract ``<split>/<file_name>`` for each file name from a COCO image zip.

    The zip's CRC-32 of every member is checked while reading; a corrupted archive is
    deleted (run again to download it anew).
    """
    from tqdm import tqdm

    try:
        with zipfile.ZipFile(archive) as zipped:
            names = set(zipped.namelist())
            absent = [name for name in file_names if f"{split}/{name}" not in names]
            if absent:
                raise DataError(f"{archive} lacks {len(absent)} of the images, e.g. {split}/{absent[0]}")
            for name in tqdm(file_names, desc=f"extracting {split}", unit="img", disable=not progress,
                             leave=False):
                with zipped.open(f"{split}/{name}") as source:
                    save_stream(image_dir / name, source)
    except (zipfile.BadZipFile, EOFError, zlib.error) as error:
        archive.unlink(missing_ok=True)
        raise DataError(f"{archive} is corrupted ({error}); it was deleted, run again to download it anew") from None


def fetch_images(image_entries: list[dict], file_names: list[str], base_url: str, image_dir: Path,
                 progress: bool = True) -> None:
    """Download images one by one from ``base_url/<file_name>`` and check that each decodes.

    COCO publishes no per-image checksums, so each image is decoded and its size compared
    with ``width`` x ``height`` of its entry; a mismatch deletes it and raises :class:`DataError`.
    """
    import cv2
    import numpy as np
    from tqdm import tqdm

    sizes = {image["file_name"]: (image["height"], image["width"]) for image in image_entries}
    for name in tqdm(file_names, desc="images", unit="img", disable=not progress, leave=False):
        path = download(f"{base_url}/{name}", image_dir / name, progress=False)
        pixels = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_COLOR)
        if pixels is None or pixels.shape[:2] != sizes[name]:
            got = "not a readable image" if pixels is None else f"{pixels.shape[1]} x {pixels.shape[0]}"
            path.unlink()
            raise DataError(f"{path}: expected a {sizes[name][1]} x {sizes[name][0]} image, got {got}; "
                            "it was deleted, run again to fetch it anew")


def write_json(data: dict, path: Path) -> Path:
    """Write JSON to ``path`` atomically (a half-written file never has the final name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(data, file)
    os.replace(temporary, path)
    return path


def save_stream(dest: Path, source) -> None:
    """Copy a readable binary stream to ``dest`` atomically (via ``dest.tmp``)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    temporary = dest.with_name(dest.name + ".tmp")
    with open(temporary, "wb") as file:
        while block := source.read(1 << 20):
            file.write(block)
    os.replace(temporary, dest)


# --------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Download COCO 2017 person keypoints for the course.")
    parser.add_argument("--out", type=Path, default=DATA_ROOT / "coco",
                        help=f"root folder (default {DATA_ROOT / 'coco'})")
    parser.add_argument("--split", choices=SPLITS, default="val2017")
    parser.add_argument("--images", action=argparse.BooleanOptionalAction, default=True,
                        help="also fetch the images (default: yes)")
    parser.add_argument("--max-images", type=int, default=None, help="keep only the first N images (by id)")
    parser.add_argument("--all-images", action="store_true", help="keep images without people too")
    parser.add_argument("--image-source", choices=("auto", "zip", "files"), default="auto",
                        help="zip: the split's zip; files: image by image; auto: files with --max-images")
    parser.add_argument("--base-url", default=COCO_BASE_URL, help=f"where the files are (default {COCO_BASE_URL})")
    parser.add_argument("--no-verify", action="store_true", help="skip the MD5 check (a mirror with other files)")
    parser.add_argument("--delete-downloads", action="store_true", help="delete the image zip after extracting it")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.max_images is not None and args.max_images <= 0:
        parser.error(f"--max-images must be a positive integer, got {args.max_images}")
    try:
        prepare_coco(args.out, split=args.split, images=args.images, max_images=args.max_images,
                     people_only=not args.all_images, base_url=args.base_url, verify=not args.no_verify,
                     image_source=args.image_source, delete_downloads=args.delete_downloads,
                     progress=not args.quiet)
    except (DownloadError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
