"""The published files the labs read, fetched ahead of a run (``labrun data fetch``) into the
cache the labs look in (``~/.cache/labrun``), so that a trial never downloads 1.35 GB silently.

Each file is checked before it is kept: by its SHA-256 where one is known (MNIST, irish.abc),
and by its layout (the course publishes no checksum for ``train_face.h5``: its HDF5 keys,
shapes and labels are checked). A file in ``$LABRUN_DATA_DIR`` is taken, as the loaders take it,
when its layout is right. Downloads resume where a broken one stopped
(``files.download_resumable``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from supervised import files
from supervised.data import DATA_DIR_ENV, MNIST_SHA256, MNIST_URL, NPZ_NAME, default_cache_dir


@dataclass(frozen=True)
class Dataset:
    name: str
    file: str                                   # its name in the cache and in $LABRUN_DATA_DIR
    url: str
    sha256: str | None                          # None: not published; ``check`` decides
    labs: str                                   # who reads it
    check: Callable[[Path], object]             # raises ValueError if the file is not the dataset


def _check_mnist(path: Path) -> None:
    import numpy as np

    with np.load(path, allow_pickle=False) as npz:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(npz.files)
    if missing:
        raise ValueError(f"{path}: not Keras's mnist.npz (missing {sorted(missing)})")


def _check_abc(path: Path) -> None:
    if "\nX:" not in "\n" + path.read_text(encoding="utf-8"):
        raise ValueError(f"{path}: no tune (X: header) in it")


def _check_faces(path: Path) -> None:
    from supervised.faces import H5FaceData

    H5FaceData(path).close()


def datasets() -> dict[str, Dataset]:
    from supervised.faces import FACES_NAME, FACES_SHA256, FACES_URL
    from supervised.tunes import IRISH_NAME, IRISH_SHA256, IRISH_URL

    return {d.name: d for d in (
        Dataset("mnist", NPZ_NAME, MNIST_URL, MNIST_SHA256, "mnist", _check_mnist),
        Dataset("music", IRISH_NAME, IRISH_URL, IRISH_SHA256, "music (corpus irish or auto)", _check_abc),
        Dataset("faces", FACES_NAME, FACES_URL, FACES_SHA256, "dbvae", _check_faces),
    )}


def verified(dataset: Dataset, path: Path, by_checksum: bool = True) -> bool:
    """Whether ``path`` holds the dataset: its layout, and (``by_checksum``) its SHA-256 if known."""
    if not path.is_file():
        return False
    try:
        if by_checksum and dataset.sha256 is not None and files.sha256_file(path) != dataset.sha256:
            return False
        dataset.check(path)
        return True
    except (OSError, ValueError):
        return False


def fetch(dataset: Dataset, cache_dir: str | Path | None = None, timeout: float = 60.0) -> tuple[Path, str]:
    """(where the dataset is, how it got there): in ``$LABRUN_DATA_DIR`` already, in the cache
    already, or downloaded (resuming a broken download) into the cache and checked. OSError
    (the network, a full disk) or ValueError (a file that is not the dataset) otherwise."""
    local = os.environ.get(DATA_DIR_ENV)
    if local and verified(dataset, Path(local) / dataset.file, by_checksum=False):
        return Path(local) / dataset.file, f"found in ${DATA_DIR_ENV}"
    cache = Path(cache_dir if cache_dir is not None else default_cache_dir()) / dataset.file
    if cache.is_file() and verified(dataset, cache):
        return cache, "already in the cache"
    files.download_resumable(dataset.url, cache, sha256=dataset.sha256, timeout=timeout,
                             what=dataset.file, check=dataset.check)
    return cache, "downloaded"


def how_checked(dataset: Dataset, how: str) -> str:
    """What vouched for the file ``fetch`` found or fetched (``how``: what it said)."""
    if how.startswith("found in"):
        return "its layout checked, as the labs read it"
    return ("SHA-256 verified" if dataset.sha256 is not None
            else "HDF5 layout checked (the course publishes no SHA-256)")
