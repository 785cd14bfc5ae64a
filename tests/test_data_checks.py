"""The debiasing lab's data is checked before it is read or used: shapes declared by
train_face.h5, image sides the DB-VAE can take, PPB file names that stay in their folder,
sliding windows per photo. Nothing is downloaded."""

from __future__ import annotations

import time

import h5py
import numpy as np
import pytest
from PIL import Image

from supervised import faces
from supervised.data import DataUnavailable
from supervised.dbvae_base import check_image_shape
from supervised.face_eval import MAX_WINDOWS, load_ppb, sliding_windows
from supervised.faces import FACES_NAME, H5FaceData, load_face_data


def declared_h5(path, n, side=64):
    """A train_face.h5 that declares ``n`` images of side x side but stores none of them
    (chunked datasets read as zeros): a few kilobytes on disk."""
    with h5py.File(path, "w") as f:
        f.create_dataset("images", shape=(n, side, side, 3), dtype=np.uint8,
                         chunks=(1, min(side, 64), min(side, 64), 3))
        f.create_dataset("labels", shape=(n, 1), dtype=np.float32,
                         chunks=(min(n, 1024), 1))
    return path


# ----------------------------------------------------------------------------- train_face.h5


def test_a_small_file_declaring_2e9_labels_is_refused_before_reading(tmp_path):
    path = declared_h5(tmp_path / FACES_NAME, 2_000_000_000)
    assert path.stat().st_size < 100_000   # the file is small; reading its labels would be 8 GB
    start = time.monotonic()
    with pytest.raises(ValueError, match=r"declares shape \(2000000000, 64, 64, 3\).*nothing "
                                         r"was read"):
        H5FaceData(path)
    assert time.monotonic() - start < 5
    with pytest.raises(DataUnavailable, match="declares shape"):   # a local file stops the load
        load_face_data(path)


def test_images_with_oversized_sides_are_refused_and_the_caps_are_inclusive(tmp_path):
    with pytest.raises(ValueError, match=f"sides 1 to {faces.MAX_SIDE}"):
        H5FaceData(declared_h5(tmp_path / "wide.h5", 2, side=faces.MAX_SIDE + 1))
    assert H5FaceData(declared_h5(tmp_path / "edge.h5", 2, side=faces.MAX_SIDE)).num_images == 2


def test_the_image_cap_is_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(faces, "MAX_IMAGES", 1000)
    assert H5FaceData(declared_h5(tmp_path / "ok.h5", 1000)).num_images == 1000
    with pytest.raises(ValueError, match="at most 1,000 images"):
        H5FaceData(declared_h5(tmp_path / "over.h5", 1001))


# ------------------------------------------------------------------------------- DB-VAE sizes


@pytest.mark.parametrize("shape", [(64, 64, 3), (16, 16, 3), (128, 128, 3)])
def test_square_sides_that_are_multiples_of_16_are_taken(shape):
    check_image_shape(shape)


@pytest.mark.parametrize("shape", [(60, 60, 3), (64, 48, 3), (8, 8, 3), (0, 0, 3), (64, 64, 1)])
def test_other_image_shapes_are_refused_up_front_for_the_dbvae(shape):
    with pytest.raises(ValueError, match="multiple of 16"):
        check_image_shape(shape, "train_face.h5")


def test_the_dbvae_lab_refuses_a_file_of_60x60_images_before_anything_else(tmp_path):
    from supervised.config import DbvaeConfig
    from supervised.dbvae_base import load_data

    path = tmp_path / FACES_NAME
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.zeros((4, 60, 60, 3), np.uint8))
        f.create_dataset("labels", data=np.array([[1], [0], [1], [0]], np.float32))
    cfg = DbvaeConfig(dataset="faces", data_path=str(path),
                      eval_faces_dir=str(tmp_path / "no-such-folder"))
    with pytest.raises(ValueError, match=f"{FACES_NAME}: the DB-VAE lab needs .* got 60 x 60 x 3"):
        load_data(cfg, seed=0)   # not the missing test faces: the shape is checked first


# ------------------------------------------------------------------------------------- PPB


def write_ppb(root, names):
    imgs = root / "PPB-2017" / "imgs"
    imgs.mkdir(parents=True)
    Image.new("RGB", (80, 64), (200, 40, 40)).save(imgs / "a.jpg")
    rows = [f"{i},{name},Female,2,lighter,Iceland" for i, name in enumerate(names)]
    (root / "PPB-2017" / "PPB-2017-metadata.csv").write_text(
        "\n".join(["Id,Filename,Gender,Numeric,Skin,Country", *rows]))
    return imgs


@pytest.mark.parametrize("bad", ["../secret.jpg", "../../PPB-2017/imgs/../x.jpg", "/etc/hostname",
                                 "sub/../../a.jpg", "link.jpg"])
def test_ppb_file_names_must_stay_inside_imgs(tmp_path, bad):
    imgs = write_ppb(tmp_path, ["a.jpg", bad])
    Image.new("RGB", (80, 64)).save(tmp_path / "PPB-2017" / "secret.jpg")
    outside = tmp_path / "elsewhere.jpg"
    Image.new("RGB", (80, 64)).save(outside)
    (imgs / "link.jpg").symlink_to(outside)
    with pytest.raises(ValueError, match=f"file name {bad!r} does not stay inside"):
        load_ppb(tmp_path)


def test_ppb_names_inside_imgs_still_load(tmp_path):
    imgs = write_ppb(tmp_path, ["a.jpg", "./a.jpg", "sub/b.jpg"])
    (imgs / "sub").mkdir()
    Image.new("RGB", (80, 64)).save(imgs / "sub" / "b.jpg")
    photos, groups = load_ppb(tmp_path)
    assert len(photos) == 3 and list(groups) == ["LF"] * 3


# ---------------------------------------------------------------------------- sliding windows


def test_windows_per_photo_are_capped_before_any_is_cut():
    long_photo = np.zeros((64, 40_000, 3), np.uint8)   # 2,497 + 6,660 + 24,985 windows
    start = time.monotonic()
    with pytest.raises(ValueError, match=r"64 x 40000 photo gives 34,142 sliding windows.*over "
                                         r"the 1,024 allowed"):
        sliding_windows(long_photo)
    assert time.monotonic() - start < 1
    with pytest.raises(ValueError, match="over the"):
        sliding_windows(np.zeros((400, 400, 3), np.uint8), stride_frac=0.001)   # a tiny stride


@pytest.mark.parametrize("shape", [(90, 120), (64, 80), (300, 200), (64, 64)])
def test_the_cap_counts_exactly_the_windows_cut(shape):
    photo = np.zeros((*shape, 3), np.uint8)
    count = len(sliding_windows(photo))
    assert count <= MAX_WINDOWS
    assert len(sliding_windows(photo, max_windows=count)) == count
    with pytest.raises(ValueError, match=f"gives {count} sliding windows"):
        sliding_windows(photo, max_windows=count - 1)
