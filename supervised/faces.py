"""Faces for the debiasing lab (6.S191 lab 2, part 2): training data, test faces, PPB, bias maths.

Training data is a ``FaceData``: images [N, H, W, 3] uint8 RGB, some of them faces (label 1.0).
``ArrayFaceData`` holds them in memory (the offline bias benchmark, ``supervised/bias_data.py``);
``H5FaceData`` reads batches from the course's ``train_face.h5`` (about 110,000 CelebA faces and
ImageNet non-faces, 1.35 GB) without loading it whole. ``load_face_data`` finds that file like
``load_mnist`` finds MNIST. ``sample_batch`` draws the course's batches: half faces, drawn with
given probabilities (the DB-VAE's resampling), half non-faces.

Evaluation, as in the course and in Amini et al. (AIES 2019): the 20 test faces in four groups
(``load_test_faces``), or the Pilot Parliaments Benchmark (``load_ppb``), scanned with sliding
windows (``detect_faces``: a photo counts as a face if any window does); the accuracy per group,
its mean E[A] and its variance Var[A] over the groups (``bias_summary``).
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import tempfile
import urllib.request
from pathlib import Path
from typing import Callable, Mapping, Sequence

import h5py
import numpy as np
from PIL import Image

from supervised.data import DATA_DIR_ENV, Absent, DataUnavailable, default_cache_dir, find_local

FACES_NAME = "train_face.h5"
FACES_URL = "https://www.dropbox.com/s/hlz8atheyozp1yx/train_face.h5?dl=1"  # the course's
FACES_SHA256: str | None = None  # not published: a download is checked by its HDF5 layout
GROUPS = ("LF", "LM", "DF", "DM")
GROUP_NAMES = {"LF": "lighter female", "LM": "lighter male", "DF": "darker female",
               "DM": "darker male"}
TEST_FACES_DIR = "faces"  # under $LABRUN_DATA_DIR, or data/ of an installed mitdeeplearning
PPB_DIR, PPB_CSV = "PPB-2017", "PPB-2017-metadata.csv"


# ------------------------------------------------------------------------------ training data


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
    (N, 1) float32, 1.0 for a face (any H, W are accepted). The labels are read once; images are
    read per call, so the file is never loaded whole. Picklable (the file reopens on first use).
    ValueError naming the file and the problem if the layout is not that."""

    def __init__(self, path: str | Path):
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
    missing = [k for k in ("images", "labels") if k not in f or not isinstance(f[k], h5py.Dataset)]
    if missing:
        raise ValueError(f"missing dataset(s) {missing}; found {sorted(f.keys())}")
    images, labels = f["images"], f["labels"]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"'images' must be uint8 (N, 64, 64, 3) in BGR order, got {images.dtype} "
                         f"{images.shape}")
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


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _check_file(path: Path, sha256: str | None) -> H5FaceData:
    """The file as H5FaceData if its SHA-256 is ``sha256`` (with None: if its layout is right);
    ValueError saying why not."""
    if sha256 is not None and (found := _sha256_file(path)) != sha256:
        raise ValueError(f"SHA-256 {found} is not the expected {sha256}")
    return H5FaceData(path)


def _download(url: str, cache: Path, sha256: str | None, timeout: float,
              tried: list[str]) -> H5FaceData | None:
    """Streams ``url`` to a temporary file beside ``cache``, checks it (``_check_file``) and
    renames it to ``cache``; None (noted in ``tried``) if any step fails."""
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, prefix=f".{cache.name}.", suffix=".part")
    except OSError as err:
        tried.append(f"download {url}: cannot write to the cache folder {cache.parent}: {err}")
        return None
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(1 << 22):
                f.write(chunk)
        _check_file(Path(tmp), sha256).close()
        os.replace(tmp, cache)
        return H5FaceData(cache)
    except (OSError, ValueError) as err:  # URLError, HTTPError, timeouts, a bad file
        tried.append(f"download {url}: {getattr(err, 'reason', None) or err}; not cached")
        return None
    finally:
        Path(tmp).unlink(missing_ok=True)


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


# ---------------------------------------------------------------------------------- test faces


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 RGB resized with Pillow's bilinear filter (antialiased when shrinking: area-like)."""
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def _read_rgb(path: Path) -> np.ndarray:
    """uint8 RGB [H, W, 3] of an image file; transparency is composited over black."""
    with Image.open(path) as im:
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            rgba = np.asarray(im.convert("RGBA")).astype(np.uint16)
            return ((rgba[..., :3] * rgba[..., 3:] + 127) // 255).astype(np.uint8)
        return np.asarray(im.convert("RGB"))


def _natural_key(path: Path) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))


def _installed_faces() -> Path | None:
    import importlib.util  # the course's package, found without importing it
    try:
        spec = importlib.util.find_spec("mitdeeplearning")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (Path(folder) / "data" / TEST_FACES_DIR).is_dir():
            return Path(folder) / "data" / TEST_FACES_DIR
    return None


def load_test_faces(folder: str | Path | None = None, size: int = 64) -> dict[str, np.ndarray]:
    """The course's test faces per group: {group: uint8 RGB [n, size, size, 3]} for GROUPS,
    read from ``folder/{LF,LM,DF,DM}/*.png`` (default ``$LABRUN_DATA_DIR/faces``, else the copy
    in an installed ``mitdeeplearning``), in natural file-name order.

    The PNGs are RGBA of varied size (59 to 644 pixels a side). Their alpha is opaque in all 20,
    so compositing over black (done, in case) equals dropping it, as the course's cv2.imread does.
    They are resized to size x size with Pillow's bilinear filter, which averages when shrinking
    (the course uses cv2.resize); the few non-square ones are stretched, as in the course.
    DataUnavailable naming the folder if it or a group is missing."""
    if folder is None:
        env = os.environ.get(DATA_DIR_ENV)
        folder = Path(env) / TEST_FACES_DIR if env else _installed_faces()
        if folder is None:
            raise DataUnavailable(f"test faces: no folder given, {DATA_DIR_ENV} is not set and "
                                  f"mitdeeplearning is not installed; set {DATA_DIR_ENV} to a "
                                  f"folder holding {TEST_FACES_DIR}/{{{','.join(GROUPS)}}}/*.png")
    root = Path(folder).expanduser()
    faces: dict[str, np.ndarray] = {}
    for group in GROUPS:
        files = sorted((root / group).glob("*.png"), key=_natural_key)
        if not files:
            raise DataUnavailable(f"test faces: no PNG files in {root / group} (expected "
                                  f"{root}/{{{','.join(GROUPS)}}}/*.png, the course's "
                                  f"mitdeeplearning/data/faces)")
        faces[group] = np.stack([_resize(_read_rgb(f), size, size) for f in files])
    return faces


# ------------------------------------------------------------------------------------------- PPB

_PPB_COLUMNS = {  # our name -> header names accepted (case-insensitive)
    "filename": ("filename", "file", "file name", "image", "img"),
    "gender": ("gender", "sex"),
    "skin": ("lighter/darker", "skin", "skin color", "skin colour", "skin tone", "lighter_darker"),
}
_PPB_POSITIONS = {"filename": 1, "gender": 2, "skin": 4}  # id, filename, gender, Fitzpatrick, L/D
_GENDER = {"female": "F", "f": "F", "male": "M", "m": "M"}
_SKIN = {"lighter": "L", "light": "L", "darker": "D", "dark": "D"}


def _ppb_rows(csv_path: Path) -> list[tuple[str, str, str]]:
    """(filename, gender, skin) of each row of the metadata (with or without a header row)."""
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        text = csv_path.read_text(encoding="latin-1")
    rows = [r for r in csv.reader(text.splitlines()) if any(c.strip() for c in r)]
    if not rows:
        raise ValueError(f"{csv_path}: empty")
    header = [c.strip().lower() for c in rows[0]]
    if any(c.endswith((".jpg", ".jpeg")) for c in header):  # no header: the published order
        columns = _PPB_POSITIONS
    else:
        columns = {}
        for key, names in _PPB_COLUMNS.items():
            hits = [i for i, c in enumerate(header) if c in names]
            if not hits:
                raise ValueError(f"{csv_path}: no {key} column (one of {list(names)}) in the "
                                 f"header {rows[0]}")
            columns[key] = hits[0]
        rows = rows[1:]
    out = []
    for line, row in enumerate(rows, start=2 if columns is not _PPB_POSITIONS else 1):
        if len(row) <= max(columns.values()):
            raise ValueError(f"{csv_path}: row {line} has {len(row)} columns: {row}")
        out.append(tuple(row[columns[k]].strip() for k in ("filename", "gender", "skin")))
    return out


def load_ppb(folder: str | Path, size: int = 64) -> tuple[list[np.ndarray], np.ndarray]:
    """The Pilot Parliaments Benchmark: (photos, groups) in the metadata's row order.

    ``folder`` is the PPB-2017 folder (holding ``imgs/*.jpg`` and ``PPB-2017-metadata.csv``) or
    the folder above it. The CSV's columns are id, filename, gender, Fitzpatrick number,
    lighter/darker, country; headers are matched case-insensitively (a file without a header is
    read in that order). Gender and lighter/darker give each photo's group (female + lighter =
    'LF', ...). Photos are uint8 RGB [H, W, 3] at native size for ``sliding_windows``; only a photo
    whose shorter side is below ``size`` is enlarged to ``size`` (PPB's never are). ValueError or
    FileNotFoundError naming what is missing or wrong.
    """
    root = Path(folder).expanduser()
    if (root / PPB_DIR).is_dir():
        root = root / PPB_DIR
    csv_path, imgs = root / PPB_CSV, root / "imgs"
    for needed in (csv_path, imgs):
        if not needed.exists():
            raise FileNotFoundError(f"PPB: no {needed} (expected {PPB_DIR}/{PPB_CSV} and "
                                    f"{PPB_DIR}/imgs/*.jpg under {folder})")
    photos, groups, missing = [], [], []
    for name, gender, skin in _ppb_rows(csv_path):
        g, s = _GENDER.get(gender.lower()), _SKIN.get(skin.lower())
        if g is None or s is None:
            raise ValueError(f"{csv_path}: {name}: gender {gender!r} / lighter-darker {skin!r} "
                             f"not one of {sorted(_GENDER)} / {sorted(_SKIN)}")
        if not (imgs / name).is_file():
            missing.append(name)
            continue
        photo = _read_rgb(imgs / name)
        short = min(photo.shape[:2])
        if short < size:
            photo = _resize(photo, round(photo.shape[1] * size / short),
                            round(photo.shape[0] * size / short))
        photos.append(photo)
        groups.append(s + g)
    if missing:
        raise FileNotFoundError(f"PPB: {len(missing)} photo(s) of {csv_path.name} not in {imgs}: "
                                f"{missing[:5]}{' ...' if len(missing) > 5 else ''}")
    return photos, np.array(groups, dtype="<U2")


def sliding_windows(image: np.ndarray, size: int = 64, scales: Sequence[float] = (1.0, 0.75, 0.5),
                    stride_frac: float = 0.25) -> np.ndarray:
    """Square windows over ``image`` (uint8 [H, W, 3]), each resized to size x size: uint8
    [K, size, size, 3]. A window's side is scale x min(H, W) for each scale; windows start at
    0, stride, 2 stride, ... (stride = stride_frac x side, at least 1) while they fit, row by row,
    scale after scale, so K = sum over scales of
    (1 + (H - side) // stride) x (1 + (W - side) // stride)."""
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image: expected [H, W, 3], got {list(image.shape)}")
    if not scales or any(not 0 < s <= 1 for s in scales) or not 0 < stride_frac <= 1:
        raise ValueError(f"scales must be in (0, 1] and stride_frac in (0, 1], got {scales}, "
                         f"{stride_frac}")
    height, width = image.shape[:2]
    image = np.asarray(image, np.uint8)
    windows = []
    for scale in scales:
        side = max(1, round(scale * min(height, width)))
        stride = max(1, round(stride_frac * side))
        for top in range(0, height - side + 1, stride):
            for left in range(0, width - side + 1, stride):
                windows.append(_resize(image[top:top + side, left:left + side], size, size))
    return np.stack(windows)


def detect_faces(predict: Callable[[np.ndarray], np.ndarray], images: Sequence[np.ndarray],
                 threshold: float = 0.5, *, size: int = 64,
                 scales: Sequence[float] = (1.0, 0.75, 0.5),
                 stride_frac: float = 0.25) -> np.ndarray:
    """bool [len(images)]: True where ANY sliding window of the photo has a face probability
    >= ``threshold``, the course's PPB rule. ``predict`` maps windows float32 [K, size, size, 3]
    in [0, 1] to face probabilities [K] (or [K, 1])."""
    found = np.zeros(len(images), bool)
    for i, image in enumerate(images):
        windows = sliding_windows(image, size, scales, stride_frac)
        probs = np.asarray(predict(windows.astype(np.float32) / 255.0)).reshape(-1)
        if len(probs) != len(windows):
            raise ValueError(f"predict returned {len(probs)} probabilities for {len(windows)} "
                             f"windows")
        found[i] = bool((probs >= threshold).any())
    return found


# ------------------------------------------------------------------------------------ bias maths


def group_accuracy(correct_by_group: Mapping[str, np.ndarray]) -> dict[str, float]:
    """{group: share of True} of booleans per group (fractions in [0, 1]); ValueError for an
    empty group."""
    out = {}
    for group, correct in correct_by_group.items():
        correct = np.asarray(correct, bool).reshape(-1)
        if correct.size == 0:
            raise ValueError(f"group {group!r} has no results")
        out[group] = float(correct.mean())
    return out


def bias_summary(accuracy: Mapping[str, float]) -> dict[str, float]:
    """{'E[A]': mean, 'Var[A]': population variance} of group accuracies given as fractions in
    [0, 1], both in the paper's units (Table 1): percent and percent^2. ValueError if empty or a
    value is outside [0, 1] (percentages passed by mistake)."""
    values = np.array(list(accuracy.values()), np.float64)
    if values.size == 0 or (values < 0).any() or (values > 1).any():
        raise ValueError(f"expected group accuracies in [0, 1], got {dict(accuracy)}")
    percent = 100.0 * values
    return {"E[A]": float(percent.mean()), "Var[A]": float(percent.var())}
