"""The real-data scripts (data_scripts/download.py, coco.py, mpii.py) on tiny fixtures.

No network: every fixture is built here, in the formats of the real files (a zip shaped
like annotations_trainval2017.zip, an image zip, a .mat shaped like MPII's RELEASE, a
tar.gz of images), and served from file:// or an HTTP server on 127.0.0.1 started here.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import cv2
import numpy as np
import pytest
import scipy.io

from course_lib import keypoints as kp

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "data_scripts"
sys.path.insert(0, str(SCRIPTS))

import coco  # noqa: E402  (data_scripts/coco.py)
import download as dl  # noqa: E402
import mpii  # noqa: E402


def md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# =========================================================================== a local HTTP server
class _Handler(BaseHTTPRequestHandler):
    """Serves files under ``server.root``; honours ``Range: bytes=N-`` unless told not to."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        server = self.server
        rng = self.headers.get("Range")
        path = server.root / unquote(urlparse(self.path).path).lstrip("/")
        if server.fail_status:
            server.log.append((self.path, rng, server.fail_status))
            self.send_error(server.fail_status)
            return
        if not path.is_file():
            server.log.append((self.path, rng, 404))
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if match and not server.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                server.log.append((self.path, rng, 416))
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        else:
            status = 200
        server.log.append((self.path, rng, status))
        body = data[start:]
        self.send_response(status)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.cut_after is not None:  # announce everything, send a part, hang up
            self.wfile.write(body[: server.cut_after])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def log_message(self, *args):  # keep the test output clean
        pass


@contextmanager
def serve(root: Path, ignore_range: bool = False, cut_after: int | None = None, fail_status: int | None = None):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.root, server.ignore_range, server.cut_after, server.fail_status = root, ignore_range, cut_after, fail_status
    server.log = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def payload(tmp_path) -> tuple[Path, bytes]:
    data = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    path = tmp_path / "served" / "blob.bin"
    path.parent.mkdir()
    path.write_bytes(data)
    return path, data


# =========================================================================== the downloader
def test_download_file_url_and_checksums(payload, tmp_path):
    source, data = payload
    dest = tmp_path / "out" / "sub" / "blob.bin"
    got = dl.download(source.as_uri(), dest, md5=md5_of(data), sha256=hashlib.sha256(data).hexdigest(),
                      size=len(data), progress=False)
    assert got == dest and dest.read_bytes() == data
    assert not dest.with_name("blob.bin.part").exists()
    assert dl.file_digests(dest) == {"md5": md5_of(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_download_resumes_an_interrupted_transfer_with_range(payload, tmp_path):
    source, data = payload
    dest = tmp_path / "blob.bin"
    part = tmp_path / "blob.bin.part"
    with serve(source.parent, cut_after=100_000) as (url, _):
        with pytest.raises(dl.DownloadError, match="run again to resume"):
            dl.download(f"{url}/blob.bin", dest, md5=md5_of(data), chunk=16_384, progress=False)
    kept = part.stat().st_size
    assert 0 < kept <= 100_000 and part.read_bytes() == data[:kept] and not dest.exists()

    with serve(source.parent) as (url, server):
        dl.download(f"{url}/blob.bin", dest, md5=md5_of(data), chunk=16_384, progress=False)
    assert server.log == [("/blob.bin", f"bytes={kept}-", 206)]  # asked for the rest only
    assert dest.read_bytes() == data and not part.exists()


def test_download_restarts_cleanly_when_the_server_ignores_range(payload, tmp_path):
    source, data = payload
    dest = tmp_path / "blob.bin"
    (tmp_path / "blob.bin.part").write_bytes(b"garbage that must not stay" * 100)
    with serve(source.parent, ignore_range=True) as (url, server):
        dl.download(f"{url}/blob.bin", dest, md5=md5_of(data), progress=False)
    assert server.log == [("/blob.bin", "bytes=2600-", 200)]
    assert dest.read_bytes() == data


def test_download_of_a_complete_part_answered_416_is_finished(payload, tmp_path):
    source, data = payload
    dest = tmp_path / "blob.bin"
    (tmp_path / "blob.bin.part").write_bytes(data)
    with serve(source.parent) as (url, server):
        dl.download(f"{url}/blob.bin", dest, md5=md5_of(data), progress=False)
    assert [status for *_, status in server.log] == [416]
    assert dest.read_bytes() == data


def test_checksum_mismatch_deletes_the_file_and_names_both_sums(payload, tmp_path):
    source, data = payload
    dest = tmp_path / "blob.bin"
    wrong = md5_of(b"something else")
    with serve(source.parent) as (url, _):
        with pytest.raises(dl.ChecksumError) as error:
            dl.download(f"{url}/blob.bin", dest, md5=wrong, progress=False)
    message = str(error.value)
    assert str(dest) in message and wrong in message and md5_of(data) in message
    assert not dest.exists() and not (tmp_path / "blob.bin.part").exists()


def test_a_corrupted_part_is_caught_by_the_checksum_after_resuming(payload, tmp_path):
    source, data = payload
    dest = tmp_path / "blob.bin"
    (tmp_path / "blob.bin.part").write_bytes(bytes(1000))  # wrong bytes where data[:1000] belongs
    with serve(source.parent) as (url, server):
        with pytest.raises(dl.ChecksumError, match="md5 expected"):
            dl.download(f"{url}/blob.bin", dest, md5=md5_of(data), progress=False)
    assert server.log[0][1:] == ("bytes=1000-", 206)
    assert not dest.exists() and not (tmp_path / "blob.bin.part").exists()


def test_wrong_size_is_reported(payload, tmp_path):
    source, data = payload
    with pytest.raises(dl.ChecksumError, match=f"size expected {len(data) + 1} bytes, got {len(data)} bytes"):
        dl.download(source.as_uri(), tmp_path / "blob.bin", size=len(data) + 1, progress=False)
    assert not (tmp_path / "blob.bin").exists()


def test_an_existing_file_is_verified_and_reused_without_a_request(payload, tmp_path):
    source, data = payload
    dest = tmp_path / "blob.bin"
    dest.write_bytes(data)
    with serve(source.parent) as (url, server):
        assert dl.download(f"{url}/blob.bin", dest, md5=md5_of(data), progress=False) == dest
        assert server.log == []
        dest.write_bytes(data[:-1])  # a truncated copy put there by hand
        with pytest.raises(dl.ChecksumError):
            dl.download(f"{url}/blob.bin", dest, md5=md5_of(data), progress=False)
    assert not dest.exists()


def test_http_and_connection_errors_are_clear(payload, tmp_path):
    source, _ = payload
    with serve(source.parent) as (url, _):
        with pytest.raises(dl.DownloadError, match=r"HTTP 404 .*missing\.bin|missing\.bin.*HTTP 404"):
            dl.download(f"{url}/missing.bin", tmp_path / "x.bin", progress=False)
    with serve(source.parent, fail_status=503) as (url, _):
        with pytest.raises(dl.DownloadError, match="HTTP 503"):
            dl.download(f"{url}/blob.bin", tmp_path / "x.bin", progress=False)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(dl.DownloadError, match="cannot reach"):
        dl.download(f"http://127.0.0.1:{port}/blob.bin", tmp_path / "x.bin", progress=False, timeout=5)
    with pytest.raises(dl.DownloadError, match="cannot reach"):
        dl.download((tmp_path / "nothing.bin").as_uri(), tmp_path / "x.bin", progress=False)
    assert not (tmp_path / "x.bin").exists()


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(url="ftp://example.org/x"), "url"),
        (dict(url=42), "url"),
        (dict(md5="abc"), "md5"),
        (dict(sha256="z" * 64), "sha256"),
        (dict(chunk=0), "chunk"),
        (dict(size=-1), "size"),
    ],
)
def test_download_rejects_bad_arguments(kwargs, argument, tmp_path):
    arguments = dict(url="file:///nonexistent", dest=tmp_path / "x.bin") | kwargs
    with pytest.raises((ValueError, TypeError), match=argument):
        dl.download(**arguments)


def test_download_rejects_a_folder_as_destination(tmp_path):
    with pytest.raises(ValueError, match="dest"):
        dl.download("file:///nonexistent", tmp_path)


# =========================================================================== COCO fixtures
def _jpeg(height: int, width: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", pixels)
    assert ok
    return encoded.tobytes()


def _coco_annotation(ann_id, image_id, keypoints, box, iscrowd=0):
    keypoints = list(keypoints)
    return {
        "id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": iscrowd,
        "keypoints": keypoints, "num_keypoints": sum(1 for v in keypoints[2::3] if v > 0),
        "bbox": box, "area": box[2] * box[3] * 0.6,
        "segmentation": {"counts": [0, 10], "size": [40, 48]} if iscrowd else [[1, 1, 5, 1, 5, 5]],
    }


def coco_source() -> dict:
    """A small person_keypoints_val2017.json: people, a crowd, a zero-keypoint person, an empty image."""
    images = [
        {"id": 632, "file_name": "000000000632.jpg", "height": 40, "width": 48, "license": 3,
         "coco_url": "http://images.cocodataset.org/val2017/000000000632.jpg"},
        {"id": 139, "file_name": "000000000139.jpg", "height": 32, "width": 56, "license": 2,
         "coco_url": "http://images.cocodataset.org/val2017/000000000139.jpg"},
        {"id": 724, "file_name": "000000000724.jpg", "height": 24, "width": 24, "license": 1,
         "coco_url": "http://images.cocodataset.org/val2017/000000000724.jpg"},
        {"id": 285, "file_name": "000000000285.jpg", "height": 40, "width": 48, "license": 4,
         "coco_url": "http://images.cocodataset.org/val2017/000000000285.jpg"},
    ]
    rng = np.random.default_rng(1)

    def pose(flags):
        xy = rng.uniform(2, 30, (17, 2)).round(1).tolist()
        return [value for (x, y), v in zip(xy, flags.tolist()) for value in ((x, y, v) if v else (0, 0, 0))]

    flags = rng.choice([0, 1, 2], size=(3, 17), p=[0.2, 0.2, 0.6])
    annotations = [
        _coco_annotation(101, 139, pose(flags[0]), [1.0, 2.0, 30.0, 28.0]),
        _coco_annotation(102, 632, pose(flags[1]), [0.5, 1.5, 31.0, 30.0]),
        _coco_annotation(103, 632, pose(flags[2]), [3.0, 1.0, 29.0, 31.0]),
        _coco_annotation(104, 285, [0] * 51, [5.0, 5.0, 10.0, 12.0]),  # a person with no labelled joint
        _coco_annotation(900100285, 285, [0] * 51, [0.0, 0.0, 40.0, 30.0], iscrowd=1),
    ]
    return {"info": {"description": "COCO 2017 Dataset", "year": 2017}, "licenses": [{"id": 1, "name": "x"}],
            "images": images, "annotations": annotations, "categories": [kp.coco_category()]}


def build_coco_mirror(root: Path, source: dict | None = None) -> dict:
    """Files laid out like images.cocodataset.org: annotations zip, image zip, single images."""
    source = coco_source() if source is None else source
    (root / "annotations").mkdir(parents=True)
    (root / "zips").mkdir()
    (root / "val2017").mkdir()
    with zipfile.ZipFile(root / "annotations" / "annotations_trainval2017.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("annotations/person_keypoints_val2017.json", json.dumps(source))
        z.writestr("annotations/instances_val2017.json", "{}")
    jpegs = {}
    with zipfile.ZipFile(root / "zips" / "val2017.zip", "w", zipfile.ZIP_STORED) as z:
        for seed, image in enumerate(source["images"]):
            jpegs[image["file_name"]] = _jpeg(image["height"], image["width"], seed)
            z.writestr(f"val2017/{image['file_name']}", jpegs[image["file_name"]])
            (root / "val2017" / image["file_name"]).write_bytes(jpegs[image["file_name"]])
    files = {key: coco.RemoteFile(remote.path, md5=md5_of((root / remote.path).read_bytes()))
             for key, remote in coco.COCO_FILES.items() if (root / remote.path).exists()}
    return {"source": source, "jpegs": jpegs, "files": files}


@pytest.fixture
def coco_mirror(tmp_path):
    root = tmp_path / "mirror"
    return root, build_coco_mirror(root)


def _images_with_people(source):
    return sorted({a["image_id"] for a in source["annotations"]})


def _check_coco_output(path: Path, source: dict, image_ids: list[int], jpegs: dict | None):
    from pycocotools.coco import COCO

    data = json.loads(path.read_text())
    assert [image["id"] for image in data["images"]] == image_ids
    originals = {image["id"]: image for image in source["images"]}
    assert data["images"] == [originals[i] for i in image_ids]  # COCO's fields unchanged
    expected = [a for a in source["annotations"] if a["image_id"] in image_ids]
    assert sorted(data["annotations"], key=lambda a: a["id"]) == sorted(expected, key=lambda a: a["id"])
    assert data["categories"] == source["categories"] and data["info"] == source["info"]
    api = COCO(str(path))
    assert sorted(api.getImgIds()) == image_ids
    assert len(api.getAnnIds(iscrowd=None)) == len(expected)
    if jpegs is not None:
        for image in data["images"]:
            assert (path.parent / "images" / image["file_name"]).read_bytes() == jpegs[image["file_name"]]
    return data


def _coco_keypoints_class():
    import course_lib.data

    if not hasattr(course_lib.data, "CocoKeypoints"):
        pytest.skip("course_lib.data.CocoKeypoints does not exist yet")
    return course_lib.data.CocoKeypoints


def _check_reader(path: Path, data: dict):
    """Every person with labelled joints comes back from CocoKeypoints with the file's numbers."""
    dataset = _coco_keypoints_class()(str(path))  # images/ next to annotations.json is its default
    names = data["categories"][0]["keypoints"]
    sizes = {image["id"]: (image.get("height"), image.get("width")) for image in data["images"]}
    wanted = {a["id"]: a for a in data["annotations"] if a["num_keypoints"] > 0 and not a["iscrowd"]}
    assert len(dataset) == len(wanted)
    for index in range(len(dataset)):
        item = dataset[index]
        annotation = wanted[item["annotation_id"]]
        flat = np.asarray(annotation["keypoints"], dtype=float).reshape(len(names), 3)
        np.testing.assert_allclose(item["keypoints"], flat[:, :2], atol=1e-4)
        np.testing.assert_array_equal(item["visibility"], flat[:, 2])
        np.testing.assert_allclose(item["box"], annotation["bbox"], atol=1e-4)
        assert item["image"].dtype == np.uint8 and item["image"].shape[2] == 3
        if sizes[item["image_id"]][0] is not None:
            assert item["image"].shape[:2] == sizes[item["image_id"]]
        if "head_box" in annotation:
            np.testing.assert_allclose(item["head_box"], annotation["head_box"], atol=1e-4)


# =========================================================================== COCO
def test_coco_script_end_to_end_from_a_file_url(coco_mirror, tmp_path, capsys):
    root, mirror = coco_mirror
    out = tmp_path / "coco"
    assert coco.main(["--out", str(out), "--base-url", root.as_uri(), "--no-verify", "--quiet"]) == 0
    path = out / "val2017" / "annotations.json"
    image_ids = _images_with_people(mirror["source"])
    assert image_ids == [139, 285, 632]  # 724 has no people
    data = _check_coco_output(path, mirror["source"], image_ids, mirror["jpegs"])
    assert not (out / "val2017" / "images" / "000000000724.jpg").exists()
    assert any(a["iscrowd"] for a in data["annotations"]) and any(a["num_keypoints"] == 0 for a in data["annotations"])
    _check_reader(path, data)


def test_coco_over_http_with_checksums_and_rerun_skips_finished_steps(coco_mirror, tmp_path):
    root, mirror = coco_mirror
    out = tmp_path / "coco"
    with serve(root) as (url, server):
        path = coco.prepare_coco(out, base_url=url, files=mirror["files"], progress=False)
        fetched = [p for p, *_ in server.log]
        assert fetched == ["/annotations/annotations_trainval2017.zip", "/zips/val2017.zip"]
        first = path.read_bytes()
        server.log.clear()

        coco.prepare_coco(out, base_url=url, files=mirror["files"], progress=False)
        assert server.log == [] and path.read_bytes() == first

        (out / "val2017" / "images" / "000000000139.jpg").unlink()  # a lost image: the kept zip restores it
        coco.prepare_coco(out, base_url=url, files=mirror["files"], progress=False)
        assert server.log == []
    _check_coco_output(path, mirror["source"], [139, 285, 632], mirror["jpegs"])


def test_coco_all_images_keeps_images_without_people(coco_mirror, tmp_path):
    root, mirror = coco_mirror
    path = coco.prepare_coco(tmp_path / "c", base_url=root.as_uri(), files=mirror["files"], people_only=False,
                             images=False, progress=False)
    _check_coco_output(path, mirror["source"], [139, 285, 632, 724], None)


def test_coco_max_images_fetches_only_those_images(coco_mirror, tmp_path):
    root, mirror = coco_mirror
    out = tmp_path / "coco"
    with serve(root) as (url, server):
        path = coco.prepare_coco(out, base_url=url, files=mirror["files"], max_images=2, progress=False)
    assert sorted(p for p, *_ in server.log) == [
        "/annotations/annotations_trainval2017.zip", "/val2017/000000000139.jpg", "/val2017/000000000285.jpg"]
    _check_coco_output(path, mirror["source"], [139, 285], mirror["jpegs"])
    assert sorted(os.listdir(out / "val2017" / "images")) == ["000000000139.jpg", "000000000285.jpg"]


def test_coco_subset_from_the_zip_and_delete_downloads(coco_mirror, tmp_path):
    root, mirror = coco_mirror
    out = tmp_path / "coco"
    path = coco.prepare_coco(out, base_url=root.as_uri(), files=mirror["files"], max_images=2, image_source="zip",
                             delete_downloads=True, progress=False)
    _check_coco_output(path, mirror["source"], [139, 285], mirror["jpegs"])
    assert sorted(os.listdir(out / "downloads")) == ["annotations_trainval2017.zip", "person_keypoints_val2017.json"]


def test_coco_no_images_writes_only_the_annotations(coco_mirror, tmp_path):
    root, mirror = coco_mirror
    out = tmp_path / "coco"
    with serve(root) as (url, server):
        coco.main(["--out", str(out), "--base-url", url, "--no-images", "--no-verify", "--quiet"])
    assert [p for p, *_ in server.log] == ["/annotations/annotations_trainval2017.zip"]
    assert not (out / "val2017" / "images").exists()
    _check_coco_output(out / "val2017" / "annotations.json", mirror["source"], [139, 285, 632], None)


def test_coco_checksum_failure_names_the_file_and_both_sums(coco_mirror, tmp_path, capsys):
    root, _ = coco_mirror
    out = tmp_path / "coco"
    served = (root / "annotations" / "annotations_trainval2017.zip").read_bytes()
    with serve(root) as (url, _):
        assert coco.main(["--out", str(out), "--base-url", url, "--quiet"]) == 1  # the real COCO sums
    message = capsys.readouterr().err
    assert "annotations_trainval2017.zip" in message
    assert coco.COCO_FILES["annotations"].md5 in message and md5_of(served) in message
    assert not (out / "downloads" / "annotations_trainval2017.zip").exists()
    assert not (out / "val2017" / "annotations.json").exists()


def test_coco_corrupted_zips_are_reported_and_deleted(coco_mirror, tmp_path):
    root, mirror = coco_mirror
    # A truncated annotations zip (as from a mirror without sums: --no-verify).
    zip_path = root / "annotations" / "annotations_trainval2017.zip"
    zip_path.write_bytes(zip_path.read_bytes()[:-200])
    out = tmp_path / "a"
    with pytest.raises(coco.DataError, match="annotations_trainval2017.zip is corrupted.*deleted"):
        coco.prepare_coco(out, base_url=root.as_uri(), verify=False, progress=False)
    assert not (out / "downloads" / "annotations_trainval2017.zip").exists()

    # An image zip with a damaged member: the zip's CRC-32 catches it.
    build = build_coco_mirror(tmp_path / "mirror2")
    image_zip = tmp_path / "mirror2" / "zips" / "val2017.zip"
    blob = bytearray(image_zip.read_bytes())
    jpeg = build["jpegs"]["000000000139.jpg"]
    at = bytes(blob).index(jpeg) + len(jpeg) // 2
    blob[at] ^= 0xFF
    image_zip.write_bytes(bytes(blob))
    with pytest.raises(coco.DataError, match="val2017.zip is corrupted"):
        coco.prepare_coco(tmp_path / "b", base_url=(tmp_path / "mirror2").as_uri(), verify=False, progress=False)
    assert not (tmp_path / "b" / "downloads" / "val2017.zip").exists()


def test_coco_image_with_the_wrong_size_is_rejected(tmp_path):
    root = tmp_path / "mirror"
    mirror = build_coco_mirror(root)
    (root / "val2017" / "000000000139.jpg").write_bytes(_jpeg(10, 10, 0))  # JSON says 56 x 32
    with pytest.raises(coco.DataError, match=r"000000000139\.jpg: expected a 56 x 32 image, got 10 x 10"):
        coco.prepare_coco(tmp_path / "c", base_url=root.as_uri(), files=mirror["files"], max_images=1,
                          progress=False)
    assert not (tmp_path / "c" / "val2017" / "images" / "000000000139.jpg").exists()


def _broken(change):
    source = coco_source()
    change(source)
    return source


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s["annotations"][1]["keypoints"].pop(), r"annotation 102: keypoints .*50"),
        (lambda s: s["annotations"][0].pop("bbox"), r"annotation 101: missing field 'bbox'"),
        (lambda s: s["annotations"][2]["keypoints"].__setitem__(3, "12"), r"annotation 103: keypoints .*non-numeric"),
        (lambda s: s["annotations"][2]["keypoints"].__setitem__(3, float("nan")), r"annotation 103: keypoints .*NaN"),
        (lambda s: s["annotations"][0]["keypoints"].__setitem__(2, 3), r"annotation 101: visibility flags"),
        (lambda s: s["annotations"][0].__setitem__("bbox", [0, 0, -1, 5]), r"annotation 101: bbox .*negative"),
        (lambda s: s["annotations"][0].__setitem__("image_id", 5), r"annotation 101: image_id 5 is not in 'images'"),
        (lambda s: s["images"][0].pop("file_name"), r"image 632: missing field 'file_name'"),
        (lambda s: s["categories"][0].__setitem__("name", "dog"), r"the first category must be 'person'"),
        (lambda s: s.pop("categories"), r".*'categories'"),
    ],
)
def test_coco_malformed_source_annotations_are_named(change, message):
    with pytest.raises(coco.DataError, match=r"person_keypoints_val2017\.json: " + message):
        coco.select_people(_broken(change), "person_keypoints_val2017.json")


def test_coco_malformed_source_end_to_end(tmp_path, capsys):
    root = tmp_path / "mirror"
    build_coco_mirror(root, _broken(lambda s: s["annotations"][1]["keypoints"].pop()))
    assert coco.main(["--out", str(tmp_path / "c"), "--base-url", root.as_uri(), "--no-verify", "--quiet"]) == 1
    message = capsys.readouterr().err
    assert "person_keypoints_val2017.json: annotation 102: keypoints" in message and "50" in message


def test_coco_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="split"):
        coco.prepare_coco(tmp_path, split="test2017")
    with pytest.raises(ValueError, match="max_images"):
        coco.prepare_coco(tmp_path, max_images=0)
    with pytest.raises(ValueError, match="image_source"):
        coco.prepare_coco(tmp_path, image_source="ftp")
    with pytest.raises(SystemExit):
        coco.main(["--out", str(tmp_path), "--max-images", "-3"])


# =========================================================================== MPII fixtures
EMPTY = np.zeros((0, 0))


def _struct_array(records: list[dict], fields: list[str]) -> np.ndarray:
    """A 1 x n MATLAB struct array; a field a record lacks is MATLAB's empty []."""
    array = np.zeros((1, len(records)), dtype=[(field, "O") for field in fields])
    for i, record in enumerate(records):
        for field in fields:
            array[0, i][field] = record.get(field, EMPTY)
    return array


# The truth, in 0-based course pixels: per image, per person, {joint id: (x, y, is_visible as stored)}.
# is_visible as stored: 1, 0, "1", "0", None (empty []), or "absent" (the field is missing).
MPII_PEOPLE = {
    # image index (0-based) -> list of people (None: an annorect entry without points)
    0: [  # two people, every flavour of is_visible
        {"points": {j: (10.0 + 3 * j, 20.0 + 2 * j, [1, 0, "1", "0", None][j % 5]) for j in range(16)},
         "head": (40, 30, 52, 45), "objpos": (30, 40), "scale": 1.5},
        {"points": {0: (5.0, 60.0, 1), 9: (7.5, 2.5, 0), 13: (50.0, 44.0, "1")}, "head": None,
         "objpos": (20, 30), "scale": 0.8},
    ],
    1: [  # the points carry no is_visible field at all
        {"points": {2: (11.0, 12.0, "absent"), 3: (21.0, 12.0, "absent"), 8: (16.0, 3.0, "absent")},
         "head": (12, 1, 20, 7), "objpos": (16, 10), "scale": 0.5},
    ],
    2: [None, {"points": {6: (30.0, 30.0, 1), 7: (30.0, 20.0, 1)}, "head": (25, 5, 35, 15),
               "objpos": (30, 25), "scale": 0.4}],
}
MPII_NAMES = ["015601864.jpg", "015599452.jpg", "005808361.jpg", "052475643.jpg", "060111501.jpg"]
MPII_TRAIN = [1, 1, 1, 0, 1]  # image 3 is a test image, image 4 has no people
MPII_VIDEOS = [4, 10, None, 7, None]  # vididx: image 1 sits in video 10 -> held out with val_every=10
MPII_SINGLE = [[1, 2], None, [2], None, None]  # RELEASE.single_person (1-based annorect indices)
MPII_SIZES = [(70, 80), (40, 30), (50, 60), (30, 30), (20, 20)]  # (H, W) of the fixture images


def _mpii_visibility(stored) -> int:
    """The documented mapping, written out independently of mpii.VISIBILITY_FROM_MPII."""
    return {1: 2, "1": 2, 0: 1, "0": 1, None: 2, "absent": 2}[stored]


def mpii_release() -> dict:
    annolist = []
    for index, name in enumerate(MPII_NAMES):
        rects = []
        for person in MPII_PEOPLE.get(index, []):
            if person is None:
                rects.append({"objpos": {"x": 1, "y": 1}, "scale": 1.0})  # a person without points
                continue
            has_flag = all(v != "absent" for *_, v in person["points"].values())
            fields = ["id", "x", "y"] + (["is_visible"] if has_flag else [])
            points = _struct_array(
                [{"id": j, "x": x + 1, "y": y + 1, "is_visible": EMPTY if v is None else v}
                 for j, (x, y, v) in person["points"].items()], fields)
            rect = {"annopoints": {"point": points}, "scale": person["scale"],
                    "objpos": {"x": person["objpos"][0] + 1, "y": person["objpos"][1] + 1}}
            if person["head"] is not None:
                rect |= dict(zip(("x1", "y1", "x2", "y2"), person["head"]))
            rects.append(rect)
        if index == 3:  # a test image: people with a position and scale only
            rects = [{"objpos": {"x": 10, "y": 10}, "scale": 2.0}]
        fields = ["x1", "y1", "x2", "y2", "annopoints", "scale", "objpos"]
        annolist.append({
            "image": {"name": name},
            "annorect": _struct_array(rects, fields) if rects else EMPTY,
            "frame_sec": EMPTY if MPII_VIDEOS[index] is None else 10,
            "vididx": EMPTY if MPII_VIDEOS[index] is None else MPII_VIDEOS[index],
        })
    single = np.empty((len(MPII_NAMES), 1), dtype=object)
    for index, value in enumerate(MPII_SINGLE):
        single[index, 0] = EMPTY if value is None else np.array(value, dtype=np.uint8).reshape(-1, 1)
    return {
        "annolist": _struct_array(annolist, ["image", "annorect", "frame_sec", "vididx"]),
        "img_train": np.array([MPII_TRAIN], dtype=np.uint8),
        "version": "12",
        "single_person": single,
    }


def write_mpii_mat(path: Path, release: dict | None = None) -> Path:
    scipy.io.savemat(path, {"RELEASE": mpii_release() if release is None else release})
    return path


def build_mpii_mirror(root: Path) -> dict:
    """Files laid out like MPII's download folder: the annotation zip and the images tar.gz."""
    root.mkdir(parents=True)
    mat = write_mpii_mat(root / "release.mat")
    with zipfile.ZipFile(root / "mpii_human_pose_v1_u12_2.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.write(mat, "mpii_human_pose_v1_u12_2/mpii_human_pose_v1_u12_1.mat")
        z.writestr("mpii_human_pose_v1_u12_2/README.md", "MPII")
    mat.unlink()
    jpegs = {}
    with tarfile.open(root / "mpii_human_pose_v1.tar.gz", "w:gz") as tar:
        for seed, (name, (height, width)) in enumerate(zip(MPII_NAMES, MPII_SIZES)):
            jpegs[name] = _jpeg(height, width, 10 + seed)
            info = tarfile.TarInfo(f"images/{name}")
            info.size = len(jpegs[name])
            tar.addfile(info, io.BytesIO(jpegs[name]))
    files = {key: coco.RemoteFile(remote.path, md5=md5_of((root / remote.path).read_bytes()))
             for key, remote in mpii.MPII_FILES.items()}
    return {"jpegs": jpegs, "files": files}


@pytest.fixture(scope="module")
def mpii_mat(tmp_path_factory) -> Path:
    return write_mpii_mat(tmp_path_factory.mktemp("mpii") / "release.mat")


# =========================================================================== MPII
@pytest.mark.parametrize("style", [dict(), dict(struct_as_record=False), dict(squeeze_me=True),
                                   dict(squeeze_me=True, struct_as_record=False)])
def test_mpii_both_loadmat_struct_styles_give_the_same_json(mpii_mat, style):
    reference = mpii.convert_release(mpii.load_release(mpii_mat))
    raw = scipy.io.loadmat(mpii_mat, **style)["RELEASE"]
    assert mpii.convert_release(raw) == reference


def test_mpii_conversion_matches_the_fixture(mpii_mat):
    splits = mpii.convert_release(mpii.load_release(mpii_mat), val_every=10)
    assert [im["file_name"] for im in splits["train"]["images"]] == [MPII_NAMES[0], MPII_NAMES[2]]
    assert [im["file_name"] for im in splits["val"]["images"]] == [MPII_NAMES[1]]  # video 10
    assert [im["id"] for im in splits["train"]["images"]] == [1, 3]  # MATLAB's 1-based index
    assert splits["train"]["images"][0]["vididx"] == 4 and "vididx" not in splits["train"]["images"][1]
    category = splits["train"]["categories"][0]
    assert category["keypoints"] == list(kp.MPII_KEYPOINTS)

    people = splits["train"]["annotations"] + splits["val"]["annotations"]
    assert len({p["id"] for p in people}) == len(people) == 4
    truth = [(0, 0, MPII_PEOPLE[0][0]), (0, 1, MPII_PEOPLE[0][1]), (2, 1, MPII_PEOPLE[2][1]), (1, 0, MPII_PEOPLE[1][0])]
    by_place = {(p["image_id"] - 1, p["mpii_rect"] - 1): p for p in people}
    for index, rect, person in truth:
        annotation = by_place[(index, rect)]
        flat = np.asarray(annotation["keypoints"], dtype=float).reshape(16, 3)
        for joint in range(16):
            if joint in person["points"]:
                x, y, stored = person["points"][joint]
                assert tuple(flat[joint]) == (x, y, _mpii_visibility(stored)), (index, rect, joint)
            else:
                assert tuple(flat[joint]) == (0, 0, 0)
        assert annotation["num_keypoints"] == len(person["points"])
        assert annotation["iscrowd"] == 0 and annotation["category_id"] == 1
        assert annotation["single_person"] == ((rect + 1) in (MPII_SINGLE[index] or []))
        assert annotation["objpos"] == [person["objpos"][0], person["objpos"][1]]
        assert annotation["scale"] == person["scale"]
        x, y, w, h = annotation["bbox"]
        assert annotation["area"] == pytest.approx(w * h, abs=0.01)
        labelled = flat[flat[:, 2] > 0, :2]
        assert np.all(labelled >= [x, y]) and np.all(labelled <= [x + w, y + h])
        if person["head"] is None:
            assert "head_box" not in annotation
        else:
            x1, y1, x2, y2 = person["head"]
            assert annotation["head_box"] == [x1 - 1, y1 - 1, x2 - x1, y2 - y1]


def test_mpii_box_by_hand():
    # Image 2's person: joints (30, 30) and (30, 20), head box [24, 4, 10, 10] -> corners (24, 4), (34, 14).
    # Tight box x 24..34, y 4..30; grown by 10 % per side: x 23..35, y 1.4..32.6.
    keypoints = np.zeros((16, 2))
    visibility = np.zeros(16, dtype=int)
    keypoints[6], keypoints[7] = (30, 30), (30, 20)
    visibility[[6, 7]] = 2
    assert mpii.person_box(keypoints, visibility, [24, 4, 10, 10]) == pytest.approx([23.0, 1.4, 12.0, 31.2])
    # Clipped to a 20 x 30 (H x W) image: y from 1.4 to 19.5 (the last pixel's edge).
    assert mpii.person_box(keypoints, visibility, [24, 4, 10, 10], image_size=(20, 30)) == pytest.approx(
        [23.0, 1.4, 6.5, 18.1])


def test_mpii_val_split_falls_back_to_the_image_index_without_a_video(mpii_mat):
    splits = mpii.convert_release(mpii.load_release(mpii_mat), val_every=3)
    # image 1 (index 0): video 4 -> train; image 2: video 10 -> train; image 3: no video, 3 % 3 == 0 -> val
    assert [im["id"] for im in splits["val"]["images"]] == [3]
    everything = mpii.convert_release(mpii.load_release(mpii_mat), val_every=0)
    assert everything["val"]["images"] == [] and len(everything["train"]["images"]) == 3


def test_mpii_coco_keypoints_follow_the_names(mpii_mat):
    release = mpii.load_release(mpii_mat)
    as_mpii = mpii.convert_release(release)
    as_coco = mpii.convert_release(release, keypoint_set="coco")
    assert as_coco["train"]["categories"] == [kp.coco_category()]
    for split in ("train", "val"):
        for a, b in zip(as_mpii[split]["annotations"], as_coco[split]["annotations"]):
            source = np.asarray(a["keypoints"]).reshape(16, 3)
            target = np.asarray(b["keypoints"]).reshape(17, 3)
            for j, name in enumerate(kp.COCO_KEYPOINTS):
                expected = source[kp.MPII_KEYPOINTS.index(name)] if name in kp.MPII_KEYPOINTS else (0, 0, 0)
                assert tuple(target[j]) == tuple(expected), name
            assert b["num_keypoints"] == int((target[:, 2] > 0).sum())
            assert b["bbox"] == a["bbox"] and b.get("head_box") == a.get("head_box")


def test_mpii_script_end_to_end_over_http_with_images(tmp_path):
    from pycocotools.coco import COCO

    root = tmp_path / "mirror"
    mirror = build_mpii_mirror(root)
    out = tmp_path / "mpii"
    with serve(root) as (url, server):
        written = mpii.prepare_mpii(out, base_url=url, files=mirror["files"], progress=False)
        assert sorted(p for p, *_ in server.log) == ["/mpii_human_pose_v1.tar.gz", "/mpii_human_pose_v1_u12_2.zip"]
        server.log.clear()
        first = {split: path.read_bytes() for split, path in written.items()}
        mpii.prepare_mpii(out, base_url=url, files=mirror["files"], progress=False)  # again: nothing to fetch
        assert server.log == []
    assert {split: path.read_bytes() for split, path in written.items()} == first
    assert sorted(written) == ["train", "val"]
    assert sorted(os.listdir(out / "train" / "images")) == sorted([MPII_NAMES[0], MPII_NAMES[2]])
    assert os.listdir(out / "val" / "images") == [MPII_NAMES[1]]  # test images are not extracted
    for split, path in written.items():
        data = json.loads(path.read_text())
        api = COCO(str(path))
        assert len(api.getAnnIds()) == len(data["annotations"])
        for image in data["images"]:
            assert (out / split / "images" / image["file_name"]).read_bytes() == mirror["jpegs"][image["file_name"]]
            assert (image["height"], image["width"]) == MPII_SIZES[image["id"] - 1]
        for annotation in data["annotations"]:
            image = api.imgs[annotation["image_id"]]
            x, y, w, h = annotation["bbox"]
            assert x >= -0.5 and y >= -0.5 and x + w <= image["width"] - 0.5 and y + h <= image["height"] - 0.5
        _check_reader(path, data)


def test_mpii_cli_annotations_only_from_a_file_url(tmp_path):
    root = tmp_path / "mirror"
    build_mpii_mirror(root)
    out = tmp_path / "mpii"
    # As a user runs it: a separate process, the script by its path.
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "mpii.py"), "--out", str(out), "--no-images",
         "--base-url", root.as_uri(), "--quiet"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "train" / "annotations.json").read_text())
    assert data["categories"][0]["keypoints"] == list(kp.MPII_KEYPOINTS) and "width" not in data["images"][0]
    assert not (out / "train" / "images").exists()


def test_coco_cli_as_a_script(coco_mirror, tmp_path):
    root, mirror = coco_mirror
    out = tmp_path / "coco"
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "coco.py"), "--out", str(out), "--base-url", root.as_uri(), "--no-verify",
         "--max-images", "1", "--quiet"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _check_coco_output(out / "val2017" / "annotations.json", mirror["source"], [139], mirror["jpegs"])


def _first_point(release):
    return release["annolist"][0]["annorect"][0]["annopoints"]["point"][0]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: _first_point(r).__setitem__("id", 16),
         r"annolist\(1\) \(015601864\.jpg\), annorect\(1\): joint id must be an integer 0\.\.15, got 16"),
        (lambda r: _first_point(r).__setitem__("x", "left"),
         r"annorect\(1\): joint 0 \(right_ankle\) has non-numeric x, y"),
        (lambda r: _first_point(r).__setitem__("is_visible", "2"), r"annorect\(1\): joint 0 has is_visible '2'"),
        (lambda r: _first_point(r).pop("y"), r"annorect\(1\): a point lacks id, x or y"),
        (lambda r: r["annolist"][0]["annorect"][0]["annopoints"]["point"].append({"id": 0, "x": 1, "y": 1}),
         r"joint 0 \(right_ankle\) is labelled twice"),
        (lambda r: r["annolist"][0]["annorect"][0].__setitem__("x2", None),
         r"head rectangle x1, y1, x2, y2 must be four numbers"),
        (lambda r: r["annolist"][2].__setitem__("image", None), r"annolist\(3\): missing image\.name"),
        (lambda r: r["img_train"].pop(), r"img_train has 4 entries but annolist has 5"),
    ],
)
def test_mpii_malformed_annotations_are_named(change, message, mpii_mat):
    release = copy.deepcopy(mpii.load_release(mpii_mat))
    change(release)
    with pytest.raises(coco.DataError, match=message):
        mpii.convert_release(release)


def test_mpii_broken_files_are_reported(tmp_path, mpii_mat):
    truncated = tmp_path / "truncated.mat"
    truncated.write_bytes(mpii_mat.read_bytes()[:300])
    with pytest.raises(coco.DataError, match="truncated.mat is not a readable MATLAB file"):
        mpii.load_release(truncated)
    other = tmp_path / "other.mat"
    scipy.io.savemat(other, {"annolist": np.zeros((1, 1))})
    with pytest.raises(coco.DataError, match="other.mat has no variable 'RELEASE'"):
        mpii.load_release(other)

    root = tmp_path / "mirror"
    mirror = build_mpii_mirror(root)
    archive = root / "mpii_human_pose_v1.tar.gz"
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 4])
    with pytest.raises(coco.DataError, match="mpii_human_pose_v1.tar.gz is corrupted.*deleted"):
        mpii.prepare_mpii(tmp_path / "out", base_url=root.as_uri(), verify=False, progress=False)
    assert not (tmp_path / "out" / "downloads" / "mpii_human_pose_v1.tar.gz").exists()
    # With the published MD5 check on, the same damage is caught before extraction.
    with pytest.raises(dl.ChecksumError, match="mpii_human_pose_v1.tar.gz: md5 expected"):
        mpii.prepare_mpii(tmp_path / "out", base_url=root.as_uri(), files=mirror["files"] | {
            "images": coco.RemoteFile("mpii_human_pose_v1.tar.gz", md5=mpii.MPII_FILES["images"].md5)},
            progress=False)


def test_mpii_rejects_bad_arguments(mpii_mat):
    release = mpii.load_release(mpii_mat)
    with pytest.raises(ValueError, match="keypoint_set"):
        mpii.convert_release(release, keypoint_set="lsp")
    with pytest.raises(ValueError, match="val_every"):
        mpii.convert_release(release, val_every=-1)
    with pytest.raises(ValueError, match="keypoint_set"):
        mpii.prepare_mpii("unused", keypoint_set="body25")


def test_matlab_to_python_on_hand_made_values():
    assert mpii.matlab_to_python(np.array([[3]], dtype=np.uint8)) == 3
    assert mpii.matlab_to_python(np.array([[1.5, 2.5]])) == [1.5, 2.5]
    assert mpii.matlab_to_python(np.array(["a.jpg"])) == "a.jpg"
    assert mpii.matlab_to_python(EMPTY) is None and mpii.matlab_to_python(np.array([], dtype="<U1")) is None
    records = _struct_array([{"x": np.array([[1]])}, {"x": EMPTY}], ["x"])
    assert mpii.matlab_to_python(records) == [{"x": 1}, {"x": None}]
    assert mpii.matlab_to_python(records[:, :1]) == {"x": 1}
    assert mpii.as_list(None) == [] and mpii.as_list({"x": 1}) == [{"x": 1}] and mpii.as_list([1, 2]) == [1, 2]
