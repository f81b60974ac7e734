"""Downloads from the canonical URLs into a cache directory, with checksum verification.

The cache is ``$ADVLENS_DATA_DIR`` or ``~/.cache/advlens/data``. Nothing is downloaded unless
asked (``download=True`` or ``--download``); offline, the error says where to put the files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .base import DataError


@dataclass(frozen=True)
class RemoteFile:
    filename: str
    md5: str
    urls: tuple[str, ...]


MNIST_MIRRORS = ("https://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/")
FASHION_MIRROR = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)

SOURCES: dict[str, list[RemoteFile]] = {
    "mnist": [
        RemoteFile("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873", MNIST_MIRRORS),
        RemoteFile("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432", MNIST_MIRRORS),
        RemoteFile("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3", MNIST_MIRRORS),
        RemoteFile("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c", MNIST_MIRRORS),
    ],
    "fashion_mnist": [
        RemoteFile("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d", FASHION_MIRROR),
        RemoteFile("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe", FASHION_MIRROR),
        RemoteFile("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79", FASHION_MIRROR),
        RemoteFile("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310", FASHION_MIRROR),
    ],
    "cifar10": [
        RemoteFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", ("https://www.cs.toronto.edu/~kriz/",))
    ],
}


def cache_dir() -> Path:
    return Path(os.environ.get("ADVLENS_DATA_DIR") or Path.home() / ".cache" / "advlens" / "data")


def dataset_cache_dir(name: str) -> Path:
    return cache_dir() / name


def md5_of(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fetch_one(remote: RemoteFile, dest: Path, timeout: float) -> None:
    errors = []
    for base in remote.urls:
        url = base + remote.filename
        fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                shutil.copyfileobj(resp, out)
            got = md5_of(Path(tmp))
            if got != remote.md5:
                errors.append(f"{url}: checksum {got} != {remote.md5}")
                continue
            os.replace(tmp, dest)
            return
        except OSError as exc:
            errors.append(f"{url}: {exc}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise DataError(f"could not download {remote.filename}: " + "; ".join(errors))


def ensure_downloaded(name: str, download: bool, timeout: float = 30.0) -> Path:
    """The cache folder holding ``name``'s canonical files, downloading them if allowed."""
    folder = dataset_cache_dir(name)
    files = SOURCES[name]
    missing = [f for f in files if not (folder / f.filename).is_file()]
    if not missing:
        return folder
    if not download:
        raise DataError(missing_message(name, folder))
    folder.mkdir(parents=True, exist_ok=True)
    for remote in missing:
        _fetch_one(remote, folder / remote.filename, timeout)
    return folder


def missing_message(name: str, folder: Path) -> str:
    files = ", ".join(f.filename for f in SOURCES[name])
    urls = SOURCES[name][0].urls[0]
    return (
        f"{name} is not available offline. Put {files} in {folder} (or in a folder you pass with "
        f"--data-root / the 'local folder' box), or allow the download from {urls} "
        f"(--download)."
    )
