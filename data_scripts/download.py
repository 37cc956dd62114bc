"""Download one file over http(s):// or file://, resumably, with a checksum check.

Used by ``coco.py`` and ``mpii.py``; only the standard library and ``tqdm``.

How a download goes:

1. The bytes go to ``DEST.part``.  If ``DEST.part`` is already there (an earlier run was
   interrupted), we ask the server for the rest only, with the HTTP header
   ``Range: bytes=N-`` where N is the size of the part file.  A server that answers
   ``206 Partial Content`` sends the missing bytes and we append them; a server that
   ignores the header answers ``200 OK`` with the whole file, and we start over cleanly.
2. When every byte is there (``Content-Length`` tells how many to expect), the file's
   MD5 and/or SHA-256 are compared with the published values.  A mismatch deletes the
   file and raises :class:`ChecksumError`, naming the file and both sums.
3. Only a verified file is renamed to ``DEST``.  A file already at ``DEST`` is verified
   again (a partial copy put there by hand is caught) and then reused.

An interrupted transfer (network error, a server that closes the connection early)
keeps ``DEST.part`` and raises :class:`DownloadError`: run the same command again to resume.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

# Read and write in pieces of this many bytes (1 MiB): large enough to be fast, small
# enough that an interruption loses little.
DEFAULT_CHUNK = 1 << 20

_HEX = re.compile(r"[0-9a-fA-F]+")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes \*/(\d+)")
# What a broken connection looks like while reading a response body.
_TRANSFER_ERRORS = (http.client.HTTPException, ConnectionError, TimeoutError, OSError)


class DownloadError(RuntimeError):
    """A download failed (HTTP error, unreachable host, interrupted transfer)."""


class ChecksumError(DownloadError):
    """A downloaded file does not have the published checksum or size (it has been deleted)."""


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    chunk: int = DEFAULT_CHUNK,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part``) and verify it; return ``dest``.

    Args:
        url: ``http://``, ``https://`` or ``file://`` address.
        dest: where the file goes; missing parent folders are made.
        sha256, md5: expected hex digests (either, both or none).
        size: expected size in bytes, checked where no checksum is published.
        chunk: bytes read per step (and the unit of progress).
        progress: show a ``tqdm`` progress bar.
        timeout: seconds to wait for the server before giving up.

    Raises:
        ValueError / TypeError: bad arguments, naming the argument.
        DownloadError: the server answered with an error, could not be reached, or the
            transfer broke off (the part file is kept for the next run to resume).
        ChecksumError: the complete file has the wrong size or checksum (it is deleted).
    """
    url = _check_url(url)
    dest = Path(dest)
    _expected_digests(sha256=sha256, md5=md5)  # bad digests fail now, not after the transfer
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ValueError(f"size must be a non-negative int (bytes), got {size!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk <= 0:
        raise ValueError(f"chunk must be a positive int (bytes), got {chunk!r}")
    if dest.is_dir():
        raise ValueError(f"dest must be a file path, got the folder {dest}")

    if dest.exists():
        verify_file(dest, sha256=sha256, md5=md5, size=size)
        return dest

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    _fetch(url, part, chunk, progress, timeout)
    verify_file(part, sha256=sha256, md5=md5, size=size, name=dest)
    os.replace(part, dest)
    return dest


def verify_file(
    path: str | os.PathLike,
    sha256: str | None = None,
    md5: str | None = None,
    size: int | None = None,
    name: str | os.PathLike | None = None,
) -> Path:
    """Check a file's size and digests; on a mismatch delete it and raise :class:`ChecksumError`.

    ``name`` is the file named in the error (the final name when ``path`` is a ``.part`` file).
    """
    path = Path(path)
    expected = _expected_digests(sha256=sha256, md5=md5)
    shown = Path(name) if name is not None else path
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        path.unlink()
        raise ChecksumError(
            f"{shown}: size expected {size} bytes, got {actual_size} bytes; "
            "the file was deleted, run again to download it anew"
        )
    if expected:
        actual = file_digests(path, tuple(expected))
        for algorithm, want in expected.items():
            if actual[algorithm] != want:
                path.unlink()
                raise ChecksumError(
                    f"{shown}: {algorithm} expected {want}, got {actual[algorithm]}; "
                    "the file was deleted, run again to download it anew"
                )
    return path


def file_digests(path: str | os.PathLike, algorithms: tuple[str, ...] = ("md5", "sha256"),
                 chunk: int = DEFAULT_CHUNK) -> dict[str, str]:
    """Hex digests of a file, e.g. ``{"md5": "...", "sha256": "..."}``, read in one pass."""
    hashers = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as file:
        while block := file.read(chunk):
            for hasher in hashers.values():
                hasher.update(block)
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


# --------------------------------------------------------------------------- internals
def _check_url(url: str) -> str:
    if not isinstance(url, str):
        raise TypeError(f"url must be a string, got {type(url).__name__}")
    if not url.startswith(("http://", "https://", "file://")):
        raise ValueError(f"url must start with http://, https:// or file://, got {url!r}")
    return url


def _expected_digests(sha256: str | None, md5: str | None) -> dict[str, str]:
    expected = {}
    for algorithm, value, length in (("md5", md5, 32), ("sha256", sha256, 64)):
        if value is None:
            continue
        if not isinstance(value, str) or len(value) != length or not _HEX.fullmatch(value):
            raise ValueError(f"{algorithm} must be {length} hexadecimal digits, got {value!r}")
        expected[algorithm] = value.lower()
    return expected


def _open(url: str, start: int, timeout: float):
    """Open ``url`` asking for the bytes from ``start`` on (no Range header when 0)."""
    request = urllib.request.Request(url)
    if start > 0:
        request.add_header("Range", f"bytes={start}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416:  # Range Not Satisfiable: the caller decides (part may be complete)
            return error
        raise DownloadError(f"downloading {url} failed: HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise DownloadError(f"cannot reach {url}: {error.reason}") from None
    except _TRANSFER_ERRORS as error:
        raise DownloadError(f"cannot reach {url}: {error}") from None


def _fetch(url: str, part: Path, chunk: int, progress: bool, timeout: float) -> None:
    """Fill ``part`` with the whole content of ``url``, resuming what is already there."""
    start = part.stat().st_size if part.exists() else 0
    response = _open(url, start, timeout)
    status = getattr(response, "status", None) or 200  # file:// answers without a status
    total = None

    if start > 0 and status == 416:
        # Nothing left to send: the part file is complete if its size is the file's size.
        match = _UNSATISFIED_RANGE.fullmatch(response.headers.get("Content-Range", ""))
        response.close()
        if match and int(match.group(1)) == start:
            return
        part.unlink()  # longer than the file, or unknown: start over
        start = 0
        response = _open(url, 0, timeout)
        status = getattr(response, "status", None) or 200
    elif start > 0 and status == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != start:
            response.close()  # a range we did not ask for: start over without Range
            part.unlink()
            start = 0
            response = _open(url, 0, timeout)
            status = getattr(response, "status", None) or 200
        elif match.group(3) != "*":
            total = int(match.group(3))
    elif start > 0:
        start = 0  # the server ignored Range and sends the whole file: start over cleanly

    if status not in (200, 206):
        response.close()
        raise DownloadError(f"downloading {url} failed: HTTP {status}")
    if total is None:
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None and length.isdigit() else None

    received = start
    bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
               desc=part.name.removesuffix(".part"), disable=not progress, leave=False)
    try:
        with response, open(part, "ab" if start > 0 else "wb") as file:
            while True:
                try:
                    block = response.read(chunk)
                except _TRANSFER_ERRORS as error:
                    raise DownloadError(
                        f"downloading {url} was interrupted after {received} of "
                        f"{total if total is not None else '?'} bytes ({error.__class__.__name__}); "
                        f"the part is kept in {part}: run again to resume"
                    ) from None
                if not block:
                    break
                file.write(block)
                received += len(block)
                bar.update(len(block))
    finally:
        bar.close()
    if total is not None and received > total:
        part.unlink()
        raise DownloadError(f"downloading {url} gave {received} bytes, more than the announced {total}")
    if total is not None and received < total:
        raise DownloadError(
            f"downloading {url} stopped after {received} of {total} bytes; "
            f"the part is kept in {part}: run again to resume"
        )
