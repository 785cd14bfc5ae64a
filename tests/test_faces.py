"""The debiasing lab's data: train_face.h5 reading and finding, batches, test faces, PPB, the
sliding-window rule, the bias maths, and the offline bias benchmark. Nothing is downloaded."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
from PIL import Image

from supervised import bias_data
from supervised.bias_data import GROUPS as BIAS_GROUPS
from supervised.bias_data import make_bias_benchmark
from supervised.data import DATA_DIR_ENV, DataUnavailable
from supervised.face_eval import (
    GROUPS,
    bias_summary,
    detect_faces,
    group_accuracy,
    load_ppb,
    load_test_faces,
    sliding_windows,
)
from supervised.faces import FACES_NAME, ArrayFaceData, H5FaceData, load_face_data, sample_batch

OFFLINE_URL = "http://127.0.0.1:9/"  # the discard port: refused at once


def write_h5(path, n=12, seed=0, **overrides):
    """A train_face.h5 in the course's layout; returns (RGB images, labels [N])."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    labels = (np.arange(n) % 3 != 0).astype(np.float32)
    arrays = {"images": rgb[..., ::-1], "labels": labels[:, None]} | overrides
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            if value is not None:
                f.create_dataset(key, data=value)
    return rgb, labels


# ----------------------------------------------------------------------------- train_face.h5


def test_h5_reads_rgb_in_the_requested_order(tmp_path):
    rgb, labels = write_h5(tmp_path / FACES_NAME)
    data = H5FaceData(tmp_path / FACES_NAME)
    assert data.num_images == 12 and data.image_shape == (64, 64, 3)
    np.testing.assert_array_equal(data.face_indices, np.flatnonzero(labels == 1))
    np.testing.assert_array_equal(data.nonface_indices, [0, 3, 6, 9])
    assert data.face_indices.dtype == np.int64
    order = np.array([7, 2, 2, 11, 0, 7])  # unsorted, repeated
    got = data.images(order)
    assert got.dtype == np.uint8 and got.shape == (6, 64, 64, 3)
    np.testing.assert_array_equal(got, rgb[order])  # BGR on disk -> RGB
    np.testing.assert_array_equal(data.images(np.array([0, 11])), rgb[[0, 11]])  # sparse read
    assert data.images(np.array([], np.int64)).shape == (0, 64, 64, 3)
    with pytest.raises(IndexError):
        data.images(np.array([12]))
    clone = pickle.loads(pickle.dumps(data))  # after a read: the open file is not pickled
    np.testing.assert_array_equal(clone.images(order), rgb[order])
    data.close()


@pytest.mark.parametrize("overrides, message", [
    ({"labels": None}, "missing dataset(s) ['labels']"),
    ({"images": np.zeros((12, 64, 64, 3), np.float32)}, "'images' must be uint8"),
    ({"images": np.zeros((12, 64, 64), np.uint8)}, "'images' must be uint8"),
    ({"labels": np.zeros((12, 2), np.float32)}, "'labels' must be float32 (12, 1)"),
    ({"labels": np.zeros((11, 1), np.float32)}, "'labels' must be float32 (12, 1)"),
    ({"labels": np.full((12, 1), 0.5, np.float32)}, "must be 0.0 or 1.0"),
])
def test_h5_wrong_layouts_name_the_file_and_the_problem(tmp_path, overrides, message):
    path = tmp_path / "bad.h5"
    write_h5(path, **overrides)
    with pytest.raises(ValueError) as err:
        H5FaceData(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_h5_not_hdf5_is_a_clear_error(tmp_path):
    path = tmp_path / FACES_NAME
    path.write_text("not an HDF5 file")
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        H5FaceData(path)


def test_load_face_data_source_order(tmp_path, monkeypatch):
    given, env, cache = tmp_path / "given", tmp_path / "env", tmp_path / "cache"
    for folder, seed in ((given, 1), (env, 2), (cache, 3)):
        folder.mkdir()
        write_h5(folder / FACES_NAME, seed=seed)
    monkeypatch.setenv(DATA_DIR_ENV, str(env))
    kw = {"cache_dir": cache, "url": OFFLINE_URL, "timeout": 5}
    assert load_face_data(given, **kw).path == given / FACES_NAME          # a folder
    assert load_face_data(given / FACES_NAME, **kw).path == given / FACES_NAME  # the file
    assert load_face_data(None, **kw).path == env / FACES_NAME
    assert load_face_data(tmp_path / "nowhere", **kw).path == env / FACES_NAME
    monkeypatch.delenv(DATA_DIR_ENV)
    assert load_face_data(None, **kw).path == cache / FACES_NAME


def test_load_face_data_malformed_local_file_stops_the_load(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    write_h5(tmp_path / FACES_NAME, labels=None)
    (tmp_path / "cache").mkdir()
    write_h5(tmp_path / "cache" / FACES_NAME)
    with pytest.raises(DataUnavailable, match=r"bad|missing dataset") as err:
        load_face_data(tmp_path, cache_dir=tmp_path / "cache", url=OFFLINE_URL)
    assert str(tmp_path / FACES_NAME) in str(err.value)


def test_load_face_data_offline_lists_what_was_tried(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    cache = tmp_path / "cache"
    with pytest.raises(DataUnavailable) as err:
        load_face_data(None, cache_dir=cache, url=OFFLINE_URL, timeout=5)
    text = str(err.value)
    lines = ["data_path: not set", f"{DATA_DIR_ENV}: not set",
             f"cache {cache / FACES_NAME}: no such file", f"download {OFFLINE_URL}"]
    positions = [text.find(line) for line in lines]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), text
    assert not (cache / FACES_NAME).exists()


def test_download_is_checked_by_layout_then_cached(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    published, cache = tmp_path / "published.h5", tmp_path / "cache"
    rgb, _ = write_h5(published)
    data = load_face_data(None, cache_dir=cache, url=published.as_uri())  # file:// : no network
    assert data.path == cache / FACES_NAME and (cache / FACES_NAME).is_file()
    np.testing.assert_array_equal(data.images(np.array([3, 1])), rgb[[3, 1]])
    assert list(cache.iterdir()) == [cache / FACES_NAME]  # no temporary file left


def test_download_with_a_bad_layout_or_checksum_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    bad, good, cache = tmp_path / "bad.h5", tmp_path / "good.h5", tmp_path / "cache"
    write_h5(bad, labels=None)
    write_h5(good)
    with pytest.raises(DataUnavailable, match="missing dataset.*not cached"):
        load_face_data(None, cache_dir=cache, url=bad.as_uri())
    with pytest.raises(DataUnavailable, match="SHA-256 .* is not the expected 00"):
        load_face_data(None, cache_dir=cache, url=good.as_uri(), sha256="00" * 32)
    assert not cache.exists() or list(cache.iterdir()) == []


# --------------------------------------------------------------------------------- batches


@pytest.fixture
def small_data():
    """10 images whose pixels are their index; faces are 1, 4, 5, 8."""
    labels = np.zeros(10, np.float32)
    labels[[1, 4, 5, 8]] = 1.0
    images = np.broadcast_to(np.arange(10, dtype=np.uint8)[:, None, None, None], (10, 4, 4, 3))
    return ArrayFaceData(images.copy(), labels)


def test_sample_batch_is_half_faces_then_non_faces(small_data):
    x, y = sample_batch(small_data, 33, np.random.default_rng(0))
    assert x.dtype == np.float32 and x.shape == (33, 4, 4, 3) and y.dtype == np.float32
    np.testing.assert_array_equal(y, [1.0] * 16 + [0.0] * 17)
    index = np.rint(x[:, 0, 0, 0] * 255).astype(int)
    assert set(index[:16]) <= {1, 4, 5, 8} and set(index[16:]) <= {0, 2, 3, 6, 7, 9}
    assert 0.0 <= x.min() and x.max() <= 10 / 255 + 1e-6


def test_sample_batch_honours_face_probs(small_data):
    rng = np.random.default_rng(1)
    x, _ = sample_batch(small_data, 64, rng, face_probs=np.array([0.0, 1.0, 0.0, 0.0]))
    assert (np.rint(x[:32, 0, 0, 0] * 255) == 4).all()  # only the second face
    p = np.array([0.7, 0.1, 0.1, 0.1])
    x, _ = sample_batch(small_data, 4000, rng, face_probs=p)
    counts = np.bincount(np.rint(x[:2000, 0, 0, 0] * 255).astype(int), minlength=10)[[1, 4, 5, 8]]
    assert np.abs(counts / 2000 - p).max() < 0.04, counts  # ~0.01 standard error
    x, _ = sample_batch(small_data, 4000, rng)  # uniform
    counts = np.bincount(np.rint(x[:2000, 0, 0, 0] * 255).astype(int), minlength=10)[[1, 4, 5, 8]]
    assert np.abs(counts / 2000 - 0.25).max() < 0.04, counts


@pytest.mark.parametrize("probs", [np.full(3, 1 / 3), np.array([0.5, 0.5, 0.5, -0.5]),
                                   np.array([0.3, 0.3, 0.3, 0.3]), np.array([np.nan, 0, 0, 1])])
def test_sample_batch_rejects_bad_face_probs(small_data, probs):
    with pytest.raises(ValueError, match="face_probs"):
        sample_batch(small_data, 8, np.random.default_rng(0), face_probs=probs)


def test_array_face_data_checks_its_inputs():
    with pytest.raises(ValueError, match="uint8"):
        ArrayFaceData(np.zeros((2, 4, 4, 3), np.float32), np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="0.0 or 1.0"):
        ArrayFaceData(np.zeros((2, 4, 4, 3), np.uint8), np.array([0.0, 2.0], np.float32))


# ------------------------------------------------------------------------------ test faces


def test_load_test_faces_reads_the_courses_20_faces():
    faces = load_test_faces()  # $LABRUN_DATA_DIR/faces (tests/conftest.py)
    assert list(faces) == list(GROUPS)
    for group, images in faces.items():
        assert images.dtype == np.uint8 and images.shape == (5, 64, 64, 3), group
        assert 40 < images.mean() < 220 and images.std() > 20, group  # photos, not blanks
    small = load_test_faces(size=32)
    assert small["DM"].shape == (5, 32, 32, 3)


def test_load_test_faces_missing_folder_is_data_unavailable(tmp_path, monkeypatch):
    with pytest.raises(DataUnavailable, match="no PNG files"):
        load_test_faces(tmp_path)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setattr("supervised.face_eval._installed_faces", lambda: None)
    with pytest.raises(DataUnavailable, match=DATA_DIR_ENV):
        load_test_faces()


# ------------------------------------------------------------------------------------- PPB

PPB_ROWS = [("1", "a.jpg", "Female", "2", "lighter", "Iceland", (250, 40, 40), (90, 120)),
            ("2", "b.jpg", "male", "6", "Darker", "Senegal", (40, 250, 40), (64, 80)),
            ("3", "c.jpg", "FEMALE", "5", "darker", "Rwanda", (40, 40, 250), (100, 100)),
            ("4", "d.jpg", "Male", "1", "lighter", "Finland", (250, 250, 40), (40, 50))]


def write_ppb(root, header="Id,Filename,Gender,Numeric,Skin,Country", rows=PPB_ROWS):
    imgs = root / "PPB-2017" / "imgs"
    imgs.mkdir(parents=True)
    for _, name, *_, colour, (h, w) in rows:
        Image.new("RGB", (w, h), colour).save(imgs / name, quality=95)
    lines = ([header] if header else []) + [",".join(r[:6]) for r in rows]
    (root / "PPB-2017" / "PPB-2017-metadata.csv").write_text("\r".join(lines))  # old Mac ends


def test_load_ppb_maps_gender_and_skin_to_groups(tmp_path):
    write_ppb(tmp_path)
    for folder in (tmp_path, tmp_path / "PPB-2017"):
        photos, groups = load_ppb(folder)
        assert list(groups) == ["LF", "DM", "DF", "LM"]
        assert [p.shape for p in photos[:3]] == [(90, 120, 3), (64, 80, 3), (100, 100, 3)]
        assert photos[3].shape == (64, 80, 3)  # shorter side 40 < 64: enlarged
        for photo, row in zip(photos, PPB_ROWS):
            assert photo.dtype == np.uint8
            assert np.abs(photo.reshape(-1, 3).mean(0) - row[6]).max() < 8  # RGB, not BGR


def test_load_ppb_without_a_header_uses_the_published_column_order(tmp_path):
    write_ppb(tmp_path, header=None)
    assert list(load_ppb(tmp_path)[1]) == ["LF", "DM", "DF", "LM"]


def test_load_ppb_errors_name_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="PPB-2017-metadata.csv"):
        load_ppb(tmp_path)
    write_ppb(tmp_path / "a", header="Id,Filename,Sex,Numeric,Tone,Country")
    with pytest.raises(ValueError, match="no skin column"):
        load_ppb(tmp_path / "a")
    write_ppb(tmp_path / "b")
    (tmp_path / "b" / "PPB-2017" / "imgs" / "c.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 photo\(s\).*c\.jpg"):
        load_ppb(tmp_path / "b")
    write_ppb(tmp_path / "c", rows=[PPB_ROWS[0][:2] + ("unknown",) + PPB_ROWS[0][3:]])
    with pytest.raises(ValueError, match="gender 'unknown'"):
        load_ppb(tmp_path / "c")


# ------------------------------------------------------------------------- sliding windows


def test_sliding_windows_count_shape_and_content():
    image = np.zeros((100, 80, 3), np.uint8)
    image[:50] = 200  # top half light
    windows = sliding_windows(image, size=16, scales=(1.0, 0.5), stride_frac=0.25)
    # scale 1: side 80, stride 20: 2 x 1 windows; scale 0.5: side 40, stride 10: 7 x 5 windows
    assert windows.shape == (2 + 35, 16, 16, 3) and windows.dtype == np.uint8
    np.testing.assert_array_equal(windows[2], 200)   # scale 0.5, top-left: all light
    np.testing.assert_array_equal(windows[-1], 0)    # scale 0.5, bottom-right: all dark
    # the defaults add scale 0.75: side 60, stride 15: 3 x 2 windows
    assert sliding_windows(image).shape == (2 + 6 + 35, 64, 64, 3)


def test_detect_faces_counts_a_photo_if_any_window_is_a_face():
    def bright_windows_are_faces(windows):  # [K, 64, 64, 3] in [0, 1] -> [K]
        assert windows.dtype == np.float32 and windows.max() <= 1.0
        return (windows.mean(axis=(1, 2, 3)) > 0.9).astype(np.float32)

    dark = np.zeros((128, 128, 3), np.uint8)
    corner = dark.copy()
    corner[:64, :64] = 255  # only the small windows in that corner are bright
    found = detect_faces(bright_windows_are_faces, [dark, corner, dark])
    np.testing.assert_array_equal(found, [False, True, False])
    half = lambda w: np.full(len(w), 0.5)
    assert detect_faces(half, [dark])[0] and not detect_faces(half, [dark], threshold=0.6)[0]


# ------------------------------------------------------------------------------ bias maths


def test_group_accuracy_and_bias_summary_by_hand():
    acc = group_accuracy({"LF": np.array([1, 1, 1, 1], bool), "LM": np.array([1, 1, 1, 0], bool),
                          "DF": np.array([True, False]), "DM": np.array([0, 0, 0, 1], bool)})
    assert acc == {"LF": 1.0, "LM": 0.75, "DF": 0.5, "DM": 0.25}
    # mean (100 + 75 + 50 + 25) / 4 = 62.5; deviations 37.5, 12.5: (2 * 1406.25 + 2 * 156.25) / 4
    assert bias_summary(acc) == pytest.approx({"E[A]": 62.5, "Var[A]": 781.25})
    assert bias_summary({"a": 0.9, "b": 0.9}) == pytest.approx({"E[A]": 90.0, "Var[A]": 0.0})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bias_summary({"LF": 95.0, "DM": 80.0})  # percent by mistake
    with pytest.raises(ValueError, match="no results"):
        group_accuracy({"LF": np.array([], bool)})


# -------------------------------------------------------------------------- bias benchmark


@pytest.fixture(scope="module")
def bench():
    return make_bias_benchmark(num_train=2000, num_test_per_group=40, minority_share=0.03, seed=3)


def border_mean(images):
    """Mean brightness of each image's outer 2-pixel frame: [N]."""
    frame = np.ones(images.shape[1:3], bool)
    frame[2:-2, 2:-2] = False
    return images[:, frame].astype(float).mean(axis=(1, 2))


def test_benchmark_sizes_and_groups(bench):
    train = bench.train
    assert train.num_images == 2000 and train.image_shape == (32, 32, 3)
    assert len(train.face_indices) == 1000 and len(train.nonface_indices) == 1000
    assert bench.groups == BIAS_GROUPS and set(bench.group_names) == set(BIAS_GROUPS)
    is_face = np.zeros(2000, bool)
    is_face[train.face_indices] = True
    np.testing.assert_array_equal(bench.train_groups != "", is_face)
    counts = {g: int((bench.train_groups == g).sum()) for g in BIAS_GROUPS}
    assert counts == {"NT": 485, "NK": 485, "IT": 15, "IK": 15}  # 3 % of 1000 inverted
    assert bench.minority_share == pytest.approx(0.03)
    assert 0.4 < np.isin(train.face_indices, np.arange(1000)).mean() < 0.6  # shuffled
    assert {g: v.shape for g, v in bench.test.items()} == {g: (40, 32, 32, 3) for g in BIAS_GROUPS}
    assert bench.test_negatives.shape == (40, 32, 32, 3) and bench.test_negatives.dtype == np.uint8


def test_benchmark_is_deterministic_given_the_seed(bench):
    again = make_bias_benchmark(num_train=2000, num_test_per_group=40, minority_share=0.03,
                                seed=3)
    every = np.arange(2000)
    np.testing.assert_array_equal(again.train.images(every), bench.train.images(every))
    np.testing.assert_array_equal(again.train_groups, bench.train_groups)
    for g in BIAS_GROUPS:
        np.testing.assert_array_equal(again.test[g], bench.test[g])
    np.testing.assert_array_equal(again.test_negatives, bench.test_negatives)
    other = make_bias_benchmark(num_train=2000, num_test_per_group=40, minority_share=0.03,
                                seed=4)
    assert not np.array_equal(other.test["NT"], bench.test["NT"])


def test_benchmark_groups_have_the_attributes_they_claim(bench):
    # inverted: light background (channels drawn from [0.65, 1] x 255 = 166..255)
    for g in BIAS_GROUPS:
        frame = border_mean(bench.test[g])
        assert ((frame > 150) if g[0] == "I" else (frame < 100)).all(), g
    faces = bench.train.images(bench.train.face_indices)
    groups = bench.train_groups[bench.train.face_indices]
    assert (border_mean(faces[np.isin(groups, ("IT", "IK"))]) > 150).all()
    assert (border_mean(faces[np.isin(groups, ("NT", "NK"))]) < 100).all()
    # thick: more of the image is stroke-coloured (closer to the stroke than to the background)
    def stroke_share(images):
        grey = images.astype(float).mean(-1)
        return (np.abs(grey - border_mean(images)[:, None, None]) > 60).mean()
    assert stroke_share(bench.test["NK"]) > 1.4 * stroke_share(bench.test["NT"])
    assert stroke_share(bench.test["IK"]) > 1.4 * stroke_share(bench.test["IT"])


def test_benchmark_negatives_are_not_separable_by_polarity(bench):
    negatives = bench.train.images(bench.train.nonface_indices)
    light = border_mean(negatives) > 150
    # half the scrambles (a quarter of the negatives) inverted, plus light photo crops
    assert 0.25 < light.mean() < 0.6 and (~light).mean() > 0.4
    assert (border_mean(bench.test_negatives) > 150).sum() >= 10  # half the scrambles inverted


def test_dilation_and_scrambling_by_hand():
    dot = np.zeros((1, 5, 5), np.float32)
    dot[0, 2, 2] = 1.0
    expected = np.zeros((5, 5), np.float32)
    expected[1:4, 1:4] = 1.0
    np.testing.assert_array_equal(bias_data.dilate3(dot)[0], expected)
    masks = np.arange(2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8)
    mixed = bias_data.scramble(masks, np.random.default_rng(0), tiles=4)
    def tiles(m):  # the 2 x 2 tiles of an 8 x 8 image, as a sorted list
        return sorted(m[i:i + 2, j:j + 2].tobytes() for i in range(0, 8, 2) for j in range(0, 8, 2))
    for before, after in zip(masks, mixed):
        assert tiles(before) == tiles(after) and not np.array_equal(before, after)
    r = bias_data.resize_matrix(28, 32)
    np.testing.assert_allclose(r.sum(axis=1), 1.0)
    np.testing.assert_allclose(r @ np.full(28, 0.3), 0.3)
