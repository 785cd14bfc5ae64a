"""MNIST from wherever it can be had: a given path, LABRUN_DATA_DIR, a cached download, the web.

``load_mnist`` tries, in order: its ``path`` argument; the folder named by the ``LABRUN_DATA_DIR``
environment variable; ``mnist.npz`` in the cache folder (``~/.cache/labrun``); the download of
Keras's ``mnist.npz``, checked against its SHA-256 and written to the cache atomically. A source
that is absent is noted and the next one tried; a file that is there but malformed stops the load
with an error naming it. With no source left, ``DataUnavailable`` lists what was tried and why.

``find_local`` and ``fetch_verified`` are those steps for any published file; the music lab's
corpus (``supervised/tunes.py``) is loaded with them too.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np

from supervised import files

MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
DATA_DIR_ENV = "LABRUN_DATA_DIR"
NPZ_NAME = "mnist.npz"
IDX_NAMES = {  # Keras's npz keys -> the published IDX files' names (each optionally .gz)
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
HOW_TO_FIX = (f"set {DATA_DIR_ENV} to a folder holding {NPZ_NAME} (Keras's layout) or the four "
              f"MNIST IDX files ({', '.join(IDX_NAMES.values())}, optionally .gz), or set the "
              f"config's data_path")

Split = tuple[np.ndarray, np.ndarray]  # images [N, 28, 28] uint8, labels [N] uint8
Mnist = tuple[Split, Split]             # (train, test)
T = TypeVar("T")


class DataUnavailable(RuntimeError):
    """The data could not be had: the message names every source tried, why each failed, and
    how to fix it."""


class Absent(Exception):
    """A source with nothing there (not an error of the data): the load tries the next one."""


# ------------------------------------------------------------------------------ pure functions


_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(data: bytes) -> np.ndarray:
    """The array in an IDX file's bytes (magic 0x00 0x00 TYPE NDIM, NDIM big-endian uint32
    sizes, then the values); ValueError if the bytes are not a well-formed IDX file."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"not an IDX file: magic number 0x{data[:4].hex()} is not 0x0000TTNN "
                         f"with a known type TT")
    ndim, header = data[3], 4 + 4 * data[3]
    if len(data) < header:
        raise ValueError(f"IDX header cut short: {len(data)} bytes for {ndim} dimensions")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = math.prod(shape) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"IDX data of shape {list(shape)} needs {expected} bytes, found "
                         f"{len(data) - header}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def check_mnist(arrays: dict[str, np.ndarray]) -> Mnist:
    """((x_train, y_train), (x_test, y_test)) from the four arrays, checked: images [N, 28, 28]
    uint8, labels [N] in 0..9 (returned as uint8); ValueError saying what is wrong."""
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
            raise ValueError(f"x_{split}: expected uint8 images [N, 28, 28], got {x.dtype} "
                             f"{list(x.shape)}")
        if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"y_{split}: expected {len(x)} integer labels, got {y.dtype} "
                             f"{list(y.shape)}")
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise ValueError(f"y_{split}: labels must be 0..9, found {y.min()}..{y.max()}")
    return tuple((arrays[f"x_{s}"], arrays[f"y_{s}"].astype(np.uint8)) for s in ("train", "test"))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------ readers


def _read_npz(source: Path | str, data: bytes | None = None) -> Mnist:
    """Keras's mnist.npz (from ``data`` if given, else the file); DataUnavailable if malformed."""
    try:
        with np.load(io.BytesIO(data) if data is not None else source, allow_pickle=False) as npz:
            missing = [k for k in IDX_NAMES if k not in npz.files]
            if missing:
                raise ValueError(f"missing arrays {missing}; found {npz.files}")
            return check_mnist({k: npz[k] for k in IDX_NAMES})
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataUnavailable(f"{source}: not a usable MNIST npz file: {err}") from None


def _read_idx_file(path: Path) -> np.ndarray:
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            return read_idx(f.read())
    except (ValueError, OSError, EOFError) as err:
        raise DataUnavailable(f"{path}: not a usable IDX file: {err}") from None


def _read_path(path: Path) -> Mnist:
    """MNIST at ``path``: an npz file, or a folder with mnist.npz or the four IDX files."""
    if path.is_file():
        return _read_npz(path)
    if not path.is_dir():
        raise Absent("no such file or folder")
    if (path / NPZ_NAME).is_file():
        return _read_npz(path / NPZ_NAME)
    found: dict[str, Path] = {}
    for key, name in IDX_NAMES.items():
        for candidate in (path / name, path / f"{name}.gz"):
            if candidate.is_file():
                found[key] = candidate
                break
    if not found:
        raise Absent(f"no {NPZ_NAME} and no MNIST IDX files in the folder")
    if len(found) < len(IDX_NAMES):
        missing = [IDX_NAMES[k] for k in IDX_NAMES if k not in found]
        raise Absent(f"no {NPZ_NAME}, and of the IDX files {', '.join(missing)} (or .gz) missing")
    arrays = {key: _read_idx_file(file) for key, file in found.items()}
    try:
        return check_mnist(arrays)
    except ValueError as err:
        raise DataUnavailable(f"{path}: the IDX files do not make MNIST: {err}") from None


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "labrun"


def find_local(path: str | Path | None, read: Callable[[Path], T], tried: list[str]) -> T | None:
    """``read`` of the first local source that has the data: ``path`` (a config's data_path),
    then ``$LABRUN_DATA_DIR``. A source that is unset, or whose ``read`` raises Absent, is noted
    in ``tried``; None if neither has it."""
    env_dir = os.environ.get(DATA_DIR_ENV) or None
    for label, given in (("data_path", path), (DATA_DIR_ENV, env_dir)):
        if not given:
            tried.append(f"{label}: not set")
            continue
        try:
            return read(Path(given).expanduser())
        except Absent as why:
            tried.append(f"{label} {given}: {why}")
    return None


def fetch_verified(name: str, url: str, sha256: str, tried: list[str], *,
                   cache_dir: Path | str | None = None, timeout: float = 60.0,
                   download: bool = True) -> tuple[str, bytes] | None:
    """(source, bytes) of the published file ``name``: ``cache_dir/name`` (default
    ``~/.cache/labrun``) if its SHA-256 is ``sha256``, else (with ``download``) the download from
    ``url`` if its SHA-256 is ``sha256`` (streamed by ``files.download_resumable``), then cached if the
    cache can be written. Each source that fails is noted in ``tried``; None if neither has it."""
    cache = Path(cache_dir if cache_dir is not None else default_cache_dir()) / name
    if cache.is_file():
        data = cache.read_bytes()
        if sha256_hex(data) == sha256:
            return str(cache), data
        tried.append(f"cache {cache}: SHA-256 {sha256_hex(data)} is not the expected {sha256}")
    else:
        tried.append(f"cache {cache}: no such file")
    if not download:
        return None
    try:
        with tempfile.TemporaryDirectory() as folder:
            data = files.download_resumable(url, Path(folder) / name, sha256=sha256,
                                            timeout=timeout, what=name).read_bytes()
    except files.ChecksumMismatch as err:
        tried.append(f"download {url}: {err}; refused, not cached")
        return None
    except (OSError, ValueError) as err:  # URLError, HTTPError and timeouts are OSErrors
        tried.append(f"download {url}: {getattr(err, 'reason', None) or err}")
        return None
    try:
        files.atomic_write(cache, data)
    except OSError:  # a read-only home or a full disk: the data is good, only the cache is lost
        pass
    return url, data


def load_mnist(path: str | Path | None = None, *, cache_dir: Path | None = None,
               url: str = MNIST_URL, sha256: str = MNIST_SHA256, timeout: float = 60.0) -> Mnist:
    """((x_train, y_train), (x_test, y_test)): images [N, 28, 28] uint8, labels [N] uint8.

    Sources in order: ``path``, ``$LABRUN_DATA_DIR``, ``cache_dir/mnist.npz`` (default
    ``~/.cache/labrun``) if its SHA-256 is ``sha256``, the download from ``url`` (urllib,
    ``timeout`` seconds) if its SHA-256 is ``sha256``, then cached. DataUnavailable if none has
    it, or if a file that is there is malformed (the message names the file).
    """
    tried: list[str] = []
    mnist = find_local(path, _read_path, tried)
    if mnist is not None:
        return mnist
    fetched = fetch_verified(NPZ_NAME, url, sha256, tried, cache_dir=cache_dir, timeout=timeout)
    if fetched is not None:
        return _read_npz(*fetched)
    raise DataUnavailable("MNIST is not available. Tried, in order:\n  - " + "\n  - ".join(tried)
                          + f"\nTo fix: {HOW_TO_FIX}.")
