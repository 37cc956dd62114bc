"""Command line: the keypoints of the people in photographs, folders, videos or a webcam.

    python -m course_lib.predict --model simplebaseline_tiny --image photo.jpg --box 150 20 260 490 --out out/
    python -m course_lib.predict --model hrnet_w32 --weights pose_hrnet_w32_256x192.pth --images photos/ \\
        --detections detections.json --flip-test --out out/
    python -m course_lib.predict --model hrnet_w32 --weights W.pth --video clip.mp4 --detector torchvision --out out/
    python -m course_lib.predict --weights runs/sb_tiny.pt --webcam 0 --box 100 50 200 400 --max-frames 300 --out out/

People come from ``--box X Y W H`` (the same box in every image), ``--detections FILE``
(COCO detection results, e.g. the official person detections of COCO val), or a detector:
``--detector synthetic`` (the course's, trained on the synthetic scenes) or
``--detector torchvision`` (torchvision's Faster R-CNN, where torchvision is installed).

``--out DIR`` receives ``results.json`` (COCO keypoint results: ``image_id`` or ``file_name``,
``category_id`` 1, ``keypoints`` ``[x, y, score] * K`` in image pixels, ``score``, ``bbox``;
videos add ``frame``) and the images, or the video, with the skeletons drawn.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from course_lib import inference

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command's options (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.predict", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", type=Path, help="one image file")
    source.add_argument("--images", type=Path, help="a folder of images")
    source.add_argument("--video", type=Path, help="a video file")
    source.add_argument("--webcam", type=int, help="a camera index (OpenCV VideoCapture)")
    people = parser.add_mutually_exclusive_group(required=True)
    people.add_argument("--box", type=float, nargs=4, metavar=("X", "Y", "W", "H"), help="one person box, image pixels")
    people.add_argument("--detections", type=Path, help="COCO detection results (JSON)")
    people.add_argument("--detector", choices=("synthetic", "torchvision"), help="find the people with a detector")
    parser.add_argument("--detection-threshold", type=float, default=None,
                        help="keep boxes scoring at least this (default: 0 for files, 0.3 synthetic, 0.5 torchvision)")
    parser.add_argument("--model", default=None, help="a preset of models.list_models() (a course checkpoint names its own)")
    parser.add_argument("--weights", type=Path, default=None, help="course checkpoint, official or MMPose file")
    parser.add_argument("--decoder", choices=inference.DECODERS, default="quarter_offset")
    parser.add_argument("--flip-test", action="store_true", help="average with the mirrored crop's heatmaps")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    parser.add_argument("--max-frames", type=int, default=None, help="stop a video or webcam after this many frames")
    parser.add_argument("--out", type=Path, required=True, help="folder for results.json and the drawings")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def people_finder(args: argparse.Namespace) -> Callable[[np.ndarray, Path | None], tuple[np.ndarray, np.ndarray, dict]]:
    """A function ``(image, path) -> (boxes, box scores, identity)`` for the chosen source of people."""
    if args.box is not None:
        return lambda image, path: (np.array([args.box]), np.ones(1), {})
    if args.detections is not None:
        found = inference.read_detections(args.detections, args.detection_threshold or 0.0)
        return lambda image, path: inference.boxes_for(found, path)
    if args.detector == "synthetic":
        detector = inference.synthetic_detector()
        threshold = 0.3 if args.detection_threshold is None else args.detection_threshold
        return lambda image, path: (*inference.detect_synthetic(detector, image, threshold), {})
    detector = inference.torchvision_detector()
    threshold = 0.5 if args.detection_threshold is None else args.detection_threshold
    return lambda image, path: (*inference.detect_torchvision(detector, image, threshold), {})


def image_files(folder: Path) -> list[Path]:
    """The images of a folder, sorted by name (ValueError if it has none)."""
    if not folder.is_dir():
        raise ValueError(f"--images {folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"--images {folder} holds no image ({', '.join(IMAGE_SUFFIXES)})")
    return files


def frames(capture: cv2.VideoCapture, max_frames: int | None) -> Iterator[np.ndarray]:
    """RGB frames of an open capture, until it ends or ``max_frames`` are read."""
    count = 0
    while max_frames is None or count < max_frames:
        ok, frame = capture.read()
        if not ok:
            return
        count += 1
        yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def open_capture(args: argparse.Namespace) -> tuple[cv2.VideoCapture, str]:
    """The video file or the webcam, opened (ValueError naming it if OpenCV cannot)."""
    if args.video is not None and not args.video.is_file():
        raise ValueError(f"--video {args.video} does not exist")
    source = str(args.video) if args.video is not None else args.webcam
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        raise ValueError(f"{'--video' if args.video is not None else '--webcam'} {source} could not be opened by OpenCV")
    name = args.video.name if args.video is not None else f"webcam{args.webcam}"
    return capture, name


def run_images(args, estimator, find, progress) -> list[dict]:
    """One image or a folder: results and a drawing per image."""
    files = [args.image] if args.image is not None else image_files(args.images)
    results = []
    for path in progress(files, "images", len(files)):
        image = inference.read_image(path)
        boxes, scores, identity = find(image, path)
        people = inference.estimate(estimator, image, boxes, scores)
        results += inference.coco_results(people, **(identity or {"file_name": path.name}))
        drawn = inference.draw_people(image, people, estimator.keypoint_set)
        cv2.imwrite(str(args.out / f"{path.stem}_pose.png"), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
    return results


def run_video(args, estimator, find, progress) -> list[dict]:
    """A video or a webcam: results per frame and the video with the skeletons drawn (MJPG ``.avi``)."""
    capture, name = open_capture(args)
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    if args.max_frames is not None:
        total = min(total or args.max_frames, args.max_frames)
    writer, results = None, []
    try:
        for index, frame in enumerate(progress(frames(capture, args.max_frames), "frames", total)):
            boxes, scores, _ = find(frame, None)
            people = inference.estimate(estimator, frame, boxes, scores)
            results += inference.coco_results(people, file_name=name, frame=index)
            if writer is None:
                size = (frame.shape[1], frame.shape[0])
                writer = cv2.VideoWriter(str(args.out / f"{Path(name).stem}_pose.avi"),
                                         cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
            writer.write(cv2.cvtColor(inference.draw_people(frame, people, estimator.keypoint_set), cv2.COLOR_RGB2BGR))
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if writer is None:
        raise ValueError(f"{name} gave no frame")
    return results


def check_inputs_first(args: argparse.Namespace) -> None:
    """Fail on an unreadable ``--image`` or a ``--box`` outside it before a model is loaded (or trained)."""
    if args.image is None:
        return
    image = inference.read_image(args.image)
    if args.box is not None:
        inference.check_boxes(np.asarray(args.box, dtype=float).reshape(-1, 4), image.shape[:2])


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    from tqdm.auto import tqdm

    def progress(items, unit, total):
        return tqdm(items, unit=unit, total=total, disable=args.quiet or (total is not None and total < 2), file=sys.stderr)

    try:
        if args.model is None and args.weights is None:
            raise ValueError("give --model PRESET (and --weights FILE), or --weights with a course checkpoint")
        check_inputs_first(args)
        estimator = inference.load_estimator(args.model, args.weights, decoder=args.decoder,
                                             flip_test=args.flip_test, device=args.device, progress=not args.quiet)
        find = people_finder(args)
        args.out.mkdir(parents=True, exist_ok=True)
        still = args.image is not None or args.images is not None
        results = (run_images if still else run_video)(args, estimator, find, progress)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    (args.out / "results.json").write_text(json.dumps(results))
    print(f"{len(results)} people -> {args.out / 'results.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
