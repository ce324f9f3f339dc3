"""Downloading MedMNIST files into a cache folder, verified by checksum.

Files are fetched once into ``$MEDLABEL_CACHE/medmnist`` (default
``~/.cache/medlabel/medmnist``), streamed to a temporary file with a progress bar, checked
against the published MD5 and only then renamed into place: an interrupted or corrupted
download never looks like a finished one.

Example:
    >>> import hashlib, tempfile, pathlib
    >>> src = pathlib.Path(tempfile.mkdtemp()) / "toy.npz"
    >>> _ = src.write_bytes(b"npz bytes")
    >>> md5 = hashlib.md5(b"npz bytes").hexdigest()
    >>> out = fetch(src.as_uri(), pathlib.Path(tempfile.mkdtemp()) / "toy.npz", md5=md5)
    >>> out.read_bytes()
    b'npz bytes'
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from medlabel.data.catalog import MEDMNIST, medmnist_url
from medlabel.errors import MedlabelError
from medlabel.io.atomic import atomic_output

__all__ = ["DownloadError", "cache_dir", "download_medmnist", "fetch", "md5sum"]

log = logging.getLogger(__name__)


class DownloadError(MedlabelError):
    """A download failed or its checksum did not match."""


def cache_dir() -> Path:
    """``$MEDLABEL_CACHE`` or ``~/.cache/medlabel``."""
    env = os.environ.get("MEDLABEL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "medlabel"


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    """MD5 of a file, streamed."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, target: Path, *, md5: str | None, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``target`` atomically, verifying ``md5`` when given.

    Raises:
        DownloadError: network failure or checksum mismatch (nothing is left at ``target``).
    """
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with (
            urllib.request.urlopen(url, timeout=timeout) as response,
            atomic_output(target) as tmp,
            tmp.open("wb") as fh,
        ):
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=target.name, disable=None
            ) as bar:
                while block := response.read(1 << 20):
                    fh.write(block)
                    digest.update(block)
                    bar.update(len(block))
            fh.flush()
            if md5 is not None and digest.hexdigest() != md5.lower():
                raise DownloadError(
                    url, f"checksum mismatch: got MD5 {digest.hexdigest()}, expected {md5}"
                )
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DownloadError(url, f"download failed ({exc})") from exc
    if md5 is None:
        log.warning("%s: no published checksum to verify against", target.name)
    return target


def download_medmnist(
    flag: str,
    size: int = 28,
    *,
    root: Path | None = None,
    md5: str | None = None,
    url: str | None = None,
) -> Path:
    """Path of the MedMNIST file ``flag`` at ``size``, downloading it if not cached.

    A cached file is re-verified against the checksum; a mismatch downloads it again.

    Args:
        flag: e.g. ``pneumoniamnist``.
        size: 28 (MedMNIST v2) or 64/128/224 (MedMNIST+).
        root: cache folder (default ``cache_dir() / "medmnist"``).
        md5: expected checksum; default: the published one for 28 px files.
        url: download address (default: the official one).

    Raises:
        DownloadError: unknown flag, failed download or checksum mismatch.
    """
    if flag not in MEDMNIST:
        raise DownloadError(None, f"unknown MedMNIST flag {flag!r}; known: {', '.join(MEDMNIST)}")
    expected = md5 or (MEDMNIST[flag].md5_28 if size == 28 else None)
    folder = root or cache_dir() / "medmnist"
    target = folder / (f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz")
    if target.is_file() and (expected is None or md5sum(target) == expected):
        return target
    try:
        source = url or medmnist_url(flag, size)
    except (KeyError, ValueError) as exc:
        raise DownloadError(None, str(exc)) from exc
    return fetch(source, target, md5=expected)
