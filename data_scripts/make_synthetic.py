"""Make synthetic people in COCO keypoint format.

    python data_scripts/make_synthetic.py --out DIR --images N --size H W --persons MIN MAX --seed S
    python data_scripts/make_synthetic.py --default        # the course's default sets (what `make data` runs)

Writes ``DIR/images/000001.png`` ... and ``DIR/annotations.json`` (into a temporary folder, moved
into place at the end: a failed run leaves nothing behind, a rerun replaces the old images); see
``course_lib.data.make_synthetic``.  The same arguments give byte-identical files.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

try:
    from course_lib import data
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from course_lib import data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="output folder")
    parser.add_argument("--images", type=int, help="number of images")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=(128, 128),
                        help=f"image size, each {data.MIN_IMAGE_SIZE} to {data.MAX_IMAGE_SIZE} (default 128 128)")
    parser.add_argument("--persons", type=int, nargs=2, metavar=("MIN", "MAX"), default=(1, 1),
                        help=f"people per image, 1 <= MIN <= MAX <= {data.MAX_PERSONS} (default 1 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--no-side-tints", action="store_true", help="same stripe colour on left and right limbs")
    parser.add_argument("--default", action="store_true", help="make the course's default sets under --root")
    parser.add_argument("--root", type=Path, default=None,
                        help=f"root for --default (default {data.DATA_ROOT / 'synthetic'})")
    args = parser.parse_args(argv)

    try:
        if args.default:
            start = time.perf_counter()
            root = data.ensure_default_data(args.root, verbose=True)
            print(f"default synthetic data ready in {root} ({time.perf_counter() - start:.1f} s)")
            return 0
        if args.out is None or args.images is None:
            parser.error("--out and --images are required (or use --default)")
        start = time.perf_counter()
        path = data.make_synthetic(
            args.out, args.images, tuple(args.size), tuple(args.persons), args.seed, side_tints=not args.no_side_tints
        )
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    seconds = time.perf_counter() - start
    print(f"made {args.images} images of {args.size[0]}x{args.size[1]} in {seconds:.1f} s "
          f"({args.images / seconds:.0f} images/s) -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
