"""The debiasing lab's evaluation: test faces, the Pilot Parliaments Benchmark, the bias maths.

As in the course and in Amini et al. (AIES 2019): the 20 test faces in four groups
(``load_test_faces``), or the Pilot Parliaments Benchmark (``load_ppb``), scanned with sliding
windows (``detect_faces``: a photo counts as a face if any window does); the accuracy per group,
its mean E[A] and its variance Var[A] over the groups (``bias_summary``). The training data is
in ``supervised/faces.py``.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from supervised.data import DATA_DIR_ENV, DataUnavailable

GROUPS = ("LF", "LM", "DF", "DM")
GROUP_NAMES = {"LF": "lighter female", "LM": "lighter male", "DF": "darker female",
               "DM": "darker male"}
TEST_FACES_DIR = "faces"  # under $LABRUN_DATA_DIR, or data/ of an installed mitdeeplearning
PPB_DIR, PPB_CSV = "PPB-2017", "PPB-2017-metadata.csv"


# ---------------------------------------------------------------------------------- test faces


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 RGB resized with Pillow's bilinear filter (antialiased when shrinking: area-like)."""
    from PIL import Image  # imported where images are read: training on arrays needs NumPy alone

    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR))


def _read_rgb(path: Path) -> np.ndarray:
    """uint8 RGB [H, W, 3] of an image file; transparency is composited over black."""
    from PIL import Image

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
    'LF', ...); a file name that leads out of ``imgs`` (absolute, ``..``, a link) is refused.
    Photos are uint8 RGB [H, W, 3] at native size for ``sliding_windows``; only a photo
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
    inside = imgs.resolve()
    for name, gender, skin in _ppb_rows(csv_path):
        if not name or Path(name).is_absolute() or not (inside / name).resolve().is_relative_to(inside):
            raise ValueError(f"{csv_path}: file name {name!r} does not stay inside {imgs}")
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


MAX_WINDOWS = 1024  # per photo; a PPB portrait gives about 40 with the default scales


def sliding_windows(image: np.ndarray, size: int = 64, scales: Sequence[float] = (1.0, 0.75, 0.5),
                    stride_frac: float = 0.25, max_windows: int = MAX_WINDOWS) -> np.ndarray:
    """Square windows over ``image`` (uint8 [H, W, 3]), each resized to size x size: uint8
    [K, size, size, 3]. A window's side is scale x min(H, W) for each scale; windows start at
    0, stride, 2 stride, ... (stride = stride_frac x side, at least 1) while they fit, row by row,
    scale after scale, so K = sum over scales of
    (1 + (H - side) // stride) x (1 + (W - side) // stride). ValueError, before any window is
    cut, if K is over ``max_windows`` (a very long photo, a tiny stride)."""
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image: expected [H, W, 3], got {list(image.shape)}")
    if not scales or any(not 0 < s <= 1 for s in scales) or not 0 < stride_frac <= 1:
        raise ValueError(f"scales must be in (0, 1] and stride_frac in (0, 1], got {scales}, "
                         f"{stride_frac}")
    height, width = image.shape[:2]
    image = np.asarray(image, np.uint8)
    grid = [(side, max(1, round(stride_frac * side)))
            for side in (max(1, round(scale * min(height, width))) for scale in scales)]
    count = sum((1 + (height - side) // stride) * (1 + (width - side) // stride)
                for side, stride in grid)
    if count > max_windows:
        raise ValueError(f"a {height} x {width} photo gives {count:,} sliding windows with scales "
                         f"{tuple(scales)} and stride {stride_frac}, over the {max_windows:,} allowed")
    windows = []
    for side, stride in grid:
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
