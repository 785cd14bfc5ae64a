"""Faces for the debiasing lab (6.S191 lab 2, part 2): the training data.

Training data is a ``FaceData``: images [N, H, W, 3] uint8 RGB, some of them faces (label 1.0).
``ArrayFaceData`` holds them in memory (the offline bias benchmark, ``supervised/bias_data.py``);
``H5FaceData`` reads batches from the course's ``train_face.h5`` (about 110,000 CelebA faces and
ImageNet non-faces, 1.35 GB) without loading it whole. ``load_face_data`` finds that file like
``load_mnist`` finds MNIST. ``sample_batch`` draws the course's batches: half faces, drawn with
given probabilities (the DB-VAE's resampling), half non-faces. The faces it is evaluated on, and
the bias maths, are in ``supervised/face_eval.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from supervised.data import DATA_DIR_ENV, Absent, DataUnavailable, default_cache_dir, find_local
from supervised.files import FolderNotWritable, download_resumable, sha256_file

if TYPE_CHECKING:   # h5py is imported where a file is read: training on arrays needs NumPy alone
    import h5py

FACES_NAME = "train_face.h5"
FACES_URL = "https://www.dropbox.com/s/hlz8atheyozp1yx/train_face.h5?dl=1"  # the course's
FACES_SHA256: str | None = None  # not published: a download is checked by its HDF5 layout
MAX_IMAGES = 5_000_000  # the course's file has about 110,000; the labels are read whole
MAX_SIDE = 1024         # pixels; the course's images are 64 x 64


class FaceData:
    """Images, some of them faces. Call sequence::

        data.face_indices, data.nonface_indices     # int64 [F], [M]: which images are which
        x = data.images(indices)                    # uint8 RGB [len(indices), H, W, 3]
    """

    num_images: int
    image_shape: tuple[int, int, int]  # (H, W, 3)
    face_indices: np.ndarray           # int64 [F], increasing
    nonface_indices: np.ndarray        # int64 [M], increasing

    def _set_labels(self, labels: np.ndarray, where: str) -> None:
        if labels.ndim != 1 or not np.isin(labels, (0.0, 1.0)).all():
            raise ValueError(f"{where}: labels must be 0.0 or 1.0 (1.0 = face)")
        self.num_images = len(labels)
        self.face_indices = np.flatnonzero(labels == 1.0).astype(np.int64)
        self.nonface_indices = np.flatnonzero(labels == 0.0).astype(np.int64)

    def _check_indices(self, indices: np.ndarray) -> np.ndarray:
        idx = np.asarray(indices)
        if idx.ndim != 1 or not (idx.size == 0 or np.issubdtype(idx.dtype, np.integer)):
            raise IndexError(f"indices must be a 1-D integer array, got {idx.dtype} {idx.shape}")
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_images):
            raise IndexError(f"indices {idx.min()}..{idx.max()} outside 0..{self.num_images - 1}")
        return idx

    def images(self, indices: np.ndarray) -> np.ndarray:
        """uint8 RGB [len(indices), H, W, 3], in the order of ``indices`` (repeats allowed)."""
        raise NotImplementedError


class ArrayFaceData(FaceData):
    """In memory: ``images`` uint8 RGB [N, H, W, 3], ``labels`` float32 [N] (1.0 = face)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images: expected uint8 [N, H, W, 3], got {images.dtype} "
                             f"{list(images.shape)}")
        if len(labels) != len(images):
            raise ValueError(f"{len(labels)} labels for {len(images)} images")
        self._images, self.labels = images, np.asarray(labels, np.float32).reshape(-1)
        self.image_shape = tuple(int(s) for s in images.shape[1:])
        self._set_labels(self.labels, "ArrayFaceData")

    def images(self, indices: np.ndarray) -> np.ndarray:
        return self._images[self._check_indices(indices)]


class H5FaceData(FaceData):
    """The course's ``train_face.h5``: ``images`` (N, 64, 64, 3) uint8 in BGR order, ``labels``
    (N, 1) float32, 1.0 for a face (any H, W up to ``MAX_SIDE``). The labels are read once; images
    are read per call, so the file is never loaded whole. Picklable (the file reopens on first
    use). ValueError naming the file and the problem if the layout is not that, or if the file
    declares more than ``MAX_IMAGES`` images (checked from the shapes before anything is read:
    a small file may declare billions of rows that read as zeros)."""

    def __init__(self, path: str | Path):
        import h5py

        self.path = Path(path)
        self._file: h5py.File | None = None
        try:
            with h5py.File(self.path, "r") as f:
                self.image_shape, labels = _check_h5_layout(f)
        except OSError as err:  # not HDF5, unreadable, missing
            if not self.path.exists():
                raise FileNotFoundError(f"{self.path}: no such file") from None
            raise ValueError(f"{self.path}: not a readable HDF5 file ({err})") from None
        except ValueError as err:
            raise ValueError(f"{self.path}: not the layout of {FACES_NAME}: {err}") from None
        self._set_labels(labels, str(self.path))

    def images(self, indices: np.ndarray) -> np.ndarray:
        idx = self._check_indices(indices)
        if idx.size == 0:
            return np.zeros((0, *self.image_shape), np.uint8)
        if self._file is None:
            import h5py

            self._file = h5py.File(self.path, "r")
        dataset = self._file["images"]
        unique, inverse = np.unique(idx, return_inverse=True)  # h5py wants increasing, unique
        lo, hi = int(unique[0]), int(unique[-1]) + 1
        if hi - lo <= 4 * len(unique):  # dense: one contiguous read beats a point selection
            block = dataset[lo:hi][unique - lo]
        else:
            block = dataset[unique]
        return np.ascontiguousarray(block[inverse][..., ::-1])  # BGR -> RGB

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> H5FaceData:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None}


def _check_h5_layout(f: h5py.File) -> tuple[tuple[int, int, int], np.ndarray]:
    """(image shape (H, W, 3), labels float32 [N]) of an open train_face.h5; ValueError saying
    what is wrong."""
    import h5py

    missing = [k for k in ("images", "labels") if k not in f or not isinstance(f[k], h5py.Dataset)]
    if missing:
        raise ValueError(f"missing dataset(s) {missing}; found {sorted(f.keys())}")
    images, labels = f["images"], f["labels"]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"'images' must be uint8 (N, 64, 64, 3) in BGR order, got {images.dtype} "
                         f"{images.shape}")
    n, height, width = images.shape[:3]
    if n > MAX_IMAGES or not (0 < height <= MAX_SIDE and 0 < width <= MAX_SIDE):
        raise ValueError(f"'images' declares shape {images.shape}: at most {MAX_IMAGES:,} images "
                         f"of sides 1 to {MAX_SIDE} are read (the course's file: 110,000 of 64 x "
                         f"64); nothing was read")
    if not np.issubdtype(labels.dtype, np.floating) or labels.shape not in (
            (len(images), 1), (len(images),)):
        raise ValueError(f"'labels' must be float32 ({len(images)}, 1) for {len(images)} images, "
                         f"got {labels.dtype} {labels.shape}")
    values = labels[()].reshape(-1).astype(np.float32)
    if not np.isin(values, (0.0, 1.0)).all():
        raise ValueError(f"'labels' must be 0.0 or 1.0, found {np.unique(values)[:5]}")
    return tuple(int(s) for s in images.shape[1:]), values


def _read_local(path: Path) -> H5FaceData:
    """train_face.h5 at ``path`` (the file or a folder holding it). Absent if not there;
    DataUnavailable if it is there and malformed (the load stops)."""
    file = path / FACES_NAME if path.is_dir() else path
    if not file.is_file():
        raise Absent(f"no {FACES_NAME} there" if path.is_dir() else "no such file or folder")
    try:
        return H5FaceData(file)
    except ValueError as err:
        raise DataUnavailable(str(err)) from None


def _check_file(path: Path, sha256: str | None) -> H5FaceData:
    """The file as H5FaceData if its SHA-256 is ``sha256`` (with None: if its layout is right);
    ValueError saying why not."""
    if sha256 is not None and (found := sha256_file(path)) != sha256:
        raise ValueError(f"SHA-256 {found} is not the expected {sha256}")
    return H5FaceData(path)


def _download(url: str, cache: Path, sha256: str | None, timeout: float,
              tried: list[str]) -> H5FaceData | None:
    """``url`` streamed to ``cache`` (``files.download_resumable``), if its SHA-256 is ``sha256`` (None: not
    checked) and its layout is right; None (noted in ``tried``) if any step fails."""
    try:
        download_resumable(url, cache, sha256=sha256, timeout=timeout, what=FACES_NAME,
                           check=lambda tmp: H5FaceData(tmp).close())   # 1.35 GB: resumes
        return H5FaceData(cache)
    except FolderNotWritable as err:
        tried.append(f"download {url}: cannot write to the cache folder {cache.parent}: "
                     f"{err.__cause__}")
    except (OSError, ValueError) as err:  # URLError, HTTPError, timeouts, a bad file
        tried.append(f"download {url}: {getattr(err, 'reason', None) or err}; not cached")
    return None


def load_face_data(path: str | Path | None = None, *, cache_dir: str | Path | None = None,
                   url: str = FACES_URL, sha256: str | None = FACES_SHA256,
                   timeout: float = 60.0) -> H5FaceData:
    """The course's training faces, ``train_face.h5``, as H5FaceData.

    Sources in order: ``path`` (the file, or a folder holding it); ``$LABRUN_DATA_DIR``; the
    cache ``cache_dir/train_face.h5`` (default ``~/.cache/labrun``); the download from ``url``
    (urllib, ``timeout`` seconds per read), streamed to the cache. The course publishes no
    SHA-256 for the file, so with ``sha256=None`` (the default) the cached or downloaded file is
    accepted if its HDF5 layout is right (keys, shapes, dtypes, 0/1 labels), not by checksum;
    pass ``sha256`` to check that too. A local file that is there but malformed stops the load
    with DataUnavailable naming it; with no source left, DataUnavailable lists what was tried.
    """
    tried: list[str] = []
    found = find_local(path, _read_local, tried)
    if found is not None:
        return found
    cache = Path(cache_dir if cache_dir is not None else default_cache_dir()) / FACES_NAME
    if cache.is_file():
        try:
            return _check_file(cache, sha256)
        except ValueError as err:
            tried.append(f"cache {cache}: {err}")
    else:
        tried.append(f"cache {cache}: no such file")
    downloaded = _download(url, cache, sha256, timeout, tried)
    if downloaded is not None:
        return downloaded
    raise DataUnavailable(
        f"{FACES_NAME} is not available. Tried, in order:\n  - " + "\n  - ".join(tried)
        + f"\nTo fix: set {DATA_DIR_ENV} to a folder holding {FACES_NAME} (the course's file, "
          f"from {FACES_URL}), set the config's data_path, or use the offline bias benchmark.")


def sample_batch(data: FaceData, batch_size: int, rng: np.random.Generator,
                 face_probs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A training batch like the course's ``get_batch(n, p_pos=...)``: (images float32
    [B, H, W, 3] in [0, 1], labels float32 [B]). The first B // 2 are faces, drawn with
    replacement with ``face_probs`` [F] over ``data.face_indices`` (uniform if None); the rest
    are non-faces drawn uniformly with replacement. ``face_probs`` must be finite, non-negative
    and sum to 1 (within 1e-4; renormalised); ValueError otherwise."""
    faces, nonfaces = data.face_indices, data.nonface_indices
    num_faces = batch_size // 2
    if batch_size < 2 or len(faces) == 0 or len(nonfaces) == 0:
        raise ValueError(f"a batch needs batch_size >= 2 (got {batch_size}) and data with faces "
                         f"({len(faces)}) and non-faces ({len(nonfaces)})")
    if face_probs is None:
        chosen = faces[rng.integers(0, len(faces), num_faces)]
    else:
        p = np.asarray(face_probs, np.float64)
        if p.shape != faces.shape:
            raise ValueError(f"face_probs: expected shape ({len(faces)},), got {p.shape}")
        if not np.isfinite(p).all() or (p < 0).any() or abs(p.sum() - 1.0) > 1e-4:
            raise ValueError(f"face_probs must be finite, non-negative and sum to 1 (sum "
                             f"{p.sum():.6g}, min {p.min():.3g})")
        chosen = faces[rng.choice(len(faces), size=num_faces, replace=True, p=p / p.sum())]
    others = nonfaces[rng.integers(0, len(nonfaces), batch_size - num_faces)]
    x = data.images(np.concatenate([chosen, others])).astype(np.float32) / 255.0
    y = (np.arange(batch_size) < num_faces).astype(np.float32)                          # [B]
    return x, y
