"""Tests of tinyres.data: reading CIFAR-10, the safe download, the bundled sample, augmentation
and the reproducible DataLoader.

Tests of the real subset take the ``cifar_subset`` fixture (tests/conftest.py): found through
$TINYRES_CIFAR_SUBSET or at <repo>/../shared/data/cifar10-subset, skipped with the reason when
absent. No test touches the network: urllib.request.urlopen is replaced by fakes that play an
offline machine, a broken connection, a corrupt download and good or evil (tiny, hand-made)
archives.
"""
import hashlib
import io
import os
import pickle
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tinyres.data import (CIFAR10, CIFAR10_MEAN, CIFAR10_STD, Compose, DataLoader, DatasetError,
                          Normalize, PerPixelMeanSubtraction, RandomCrop, RandomHorizontalFlip,
                          bundled_sample, cifar_train_transform, default_data_root, to_float32)
from tinyres.data import cifar, integrity

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# The subset README's "Images per class" table.
TRAIN_PER_CLASS = [542, 571, 531, 530, 567, 527, 545, 553, 577, 539]
TEST_PER_CLASS = [105, 93, 100, 104, 92, 87, 114, 102, 110, 110]


@pytest.fixture
def subset_train(cifar_subset):
    return CIFAR10(cifar_subset, train=True, download=False)


@pytest.fixture
def subset_test(cifar_subset):
    return CIFAR10(cifar_subset, train=False, download=False)


def write_fake_cifar(folder, images_per_file=3, seed=0):
    """A tiny CIFAR-10 folder in the official format (pickle protocol 2, bytes keys)."""
    rng = numpy.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in cifar.TRAIN_FILES + cifar.TEST_FILES:
        batch = {b"batch_label": name.encode(),
                 b"labels": rng.integers(0, 10, images_per_file).tolist(),
                 b"data": rng.integers(0, 256, (images_per_file, 3072), dtype=numpy.uint8),
                 b"filenames": [b"unknown.png"] * images_per_file}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [c.encode() for c in CLASSES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


# ----------------------------------------------------------------------------------------------
# The real subset.
# ----------------------------------------------------------------------------------------------
def test_subset_counts_labels_and_classes(cifar_subset, subset_train, subset_test):
    assert len(subset_train) == 5482 and len(subset_test) == 1017
    assert subset_train.images.shape == (5482, 3, 32, 32)
    assert subset_train.images.dtype == numpy.uint8 and subset_train.labels.dtype == numpy.int64
    assert subset_train.labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]  # data_batch_1
    assert subset_train.classes == CLASSES == subset_test.classes
    assert numpy.bincount(subset_train.labels, minlength=10).tolist() == TRAIN_PER_CLASS
    assert numpy.bincount(subset_test.labels, minlength=10).tolist() == TEST_PER_CLASS
    assert str(cifar_subset) in subset_train.source and "5482 train images" in subset_train.source


def test_subset_images_are_the_batch_files_in_order(cifar_subset, subset_train):
    """Image k of data_batch_2 is image 1102 + k of the training set (data_batch_1 has 1102)."""
    with open(cifar_subset / "cifar-10-batches-py" / "data_batch_2", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    numpy.testing.assert_array_equal(subset_train.images[1102:1102 + 5],
                                     batch[b"data"][:5].reshape(5, 3, 32, 32))
    assert subset_train.labels[1102:1102 + 5].tolist() == batch[b"labels"][:5]


def test_root_may_be_the_batches_folder_itself(cifar_subset, subset_test):
    direct = CIFAR10(cifar_subset / "cifar-10-batches-py", train=False, download=False)
    numpy.testing.assert_array_equal(direct.labels, subset_test.labels)


# ----------------------------------------------------------------------------------------------
# Reading: any size, clear errors.
# ----------------------------------------------------------------------------------------------
def test_reads_any_number_of_images_per_file(tmp_path):
    write_fake_cifar(tmp_path / "cifar-10-batches-py", images_per_file=7)
    train = CIFAR10(tmp_path, train=True, download=False)
    test = CIFAR10(tmp_path, train=False, download=False)
    assert len(train) == 35 and len(test) == 7 and train.images.shape == (35, 3, 32, 32)


def test_missing_data_without_download_says_how_to_fix(tmp_path):
    with pytest.raises(DatasetError, match="--data DIR") as err:
        CIFAR10(tmp_path, download=False)
    assert "sample" in str(err.value) and str(tmp_path) in str(err.value)


@pytest.mark.parametrize("missing", ["data_batch_4", "batches.meta"])
def test_incomplete_folder_is_named_and_never_overwritten(tmp_path, monkeypatch, missing):
    folder = write_fake_cifar(tmp_path / "cifar-10-batches-py")
    (folder / missing).unlink()
    monkeypatch.setattr(urllib.request, "urlopen", None)      # any download attempt would fail
    with pytest.raises(DatasetError, match=f"missing {missing}"):
        CIFAR10(tmp_path, download=True)


@pytest.mark.parametrize("field, value, message", [
    (b"labels", [0, 3, 10], r"labels must lie in 0\.\.9"),
    (b"labels", [0, 1], "expected 3 integer labels"),
    (b"data", numpy.zeros((3, 100), numpy.uint8), r"uint8 of shape \(N, 3072\)"),
    (b"data", numpy.zeros((3, 3072), numpy.float32), r"uint8 of shape \(N, 3072\)"),
])
def test_malformed_batch_file_is_named_in_the_error(tmp_path, field, value, message):
    folder = write_fake_cifar(tmp_path / "cifar-10-batches-py")
    path = folder / "data_batch_3"
    batch = pickle.loads(path.read_bytes(), encoding="bytes")
    batch[field] = value
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DatasetError, match=message) as err:
        CIFAR10(tmp_path, download=False)
    assert "data_batch_3" in str(err.value)


def test_truncated_batch_file_is_an_error(tmp_path):
    folder = write_fake_cifar(tmp_path / "cifar-10-batches-py")
    path = folder / "test_batch"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DatasetError, match="test_batch"):
        CIFAR10(tmp_path, train=False, download=False)


class _RunsCode:
    """Unpickling this would call os.getcwd(): a stand-in for a file that runs code."""

    def __reduce__(self):
        return (os.getcwd, ())


def test_batch_file_that_would_run_code_is_refused(tmp_path):
    folder = write_fake_cifar(tmp_path / "cifar-10-batches-py")
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": _RunsCode()}, protocol=2))
    with pytest.raises(DatasetError, match="refusing to load"):
        CIFAR10(tmp_path, train=False, download=False)


# ----------------------------------------------------------------------------------------------
# Download, without a network: fakes for urllib.request.urlopen.
# ----------------------------------------------------------------------------------------------
class FakeResponse(io.BytesIO):
    """What urlopen returns: a readable file with headers, usable in a `with`."""

    def __init__(self, payload, fail_after=None):
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload))}
        self.fail_after = fail_after

    def read(self, size=-1):
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise ConnectionResetError("connection reset by peer (simulated)")
        return super().read(size)


def serve(monkeypatch, payload, fail_after=None):
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout=None: FakeResponse(payload, fail_after))


def make_tarball(tmp_path, add_members):
    """A .tar.gz built by ``add_members(tar)``; returns its bytes."""
    path = tmp_path / "archive.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        add_members(tar)
    return path.read_bytes()


def good_tarball(tmp_path):
    source = write_fake_cifar(tmp_path / "source" / "cifar-10-batches-py", images_per_file=4)
    return make_tarball(tmp_path, lambda tar: tar.add(source, arcname="cifar-10-batches-py"))


def assert_no_download_left(root):
    leftovers = [p.name for p in Path(root).iterdir() if "cifar-10-python" in p.name]
    assert leftovers == [], f"partial or unverified download left behind: {leftovers}"


def test_offline_download_fails_clearly(tmp_path, monkeypatch):
    def offline(url, timeout=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DatasetError, match="could not download CIFAR-10") as err:
        CIFAR10(tmp_path)
    assert "--data DIR" in str(err.value) and "root=" in str(err.value)
    assert "bundled" in str(err.value) or "sample" in str(err.value)
    assert_no_download_left(tmp_path)


def test_interrupted_download_leaves_no_partial_file(tmp_path, monkeypatch):
    serve(monkeypatch, b"x" * (3 << 20), fail_after=1 << 20)
    with pytest.raises(DatasetError, match="connection reset"):
        CIFAR10(tmp_path)
    assert_no_download_left(tmp_path)


def test_download_with_wrong_checksum_is_deleted(tmp_path, monkeypatch):
    serve(monkeypatch, b"this is not the CIFAR-10 archive")
    with pytest.raises(DatasetError, match="MD5") as err:
        CIFAR10(tmp_path)
    assert cifar.CIFAR10_MD5 in str(err.value)
    assert_no_download_left(tmp_path)


def test_good_download_is_verified_unpacked_and_loaded(tmp_path, monkeypatch):
    payload = good_tarball(tmp_path)
    # The real archive is 170 MB; a tiny archive in the same layout stands in for it. Its MD5
    # cannot equal the official one, so the expected checksum is swapped for the stand-in's:
    # the test checks the download-verify-unpack path, not the official digest.
    monkeypatch.setattr(cifar, "CIFAR10_MD5", hashlib.md5(payload).hexdigest())
    serve(monkeypatch, payload)
    root = tmp_path / "data"
    train = CIFAR10(root, train=True)
    assert len(train) == 20 and train.classes == CLASSES
    assert (root / "cifar-10-batches-py" / "test_batch").is_file()
    assert_no_download_left(root)
    assert [p.name for p in root.iterdir()] == ["cifar-10-batches-py"]   # no scratch folder left


def test_default_root_is_tinyres_data_or_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYRES_DATA", str(tmp_path / "cache"))
    assert default_data_root() == tmp_path / "cache"
    payload = good_tarball(tmp_path)
    monkeypatch.setattr(cifar, "CIFAR10_MD5", hashlib.md5(payload).hexdigest())   # see above
    serve(monkeypatch, payload)
    assert len(CIFAR10(train=False)) == 4
    assert (tmp_path / "cache" / "cifar-10-batches-py" / "batches.meta").is_file()
    monkeypatch.delenv("TINYRES_DATA")
    assert default_data_root() == Path.home() / ".cache" / "tinyres"


def _file_member(name, content=b"owned"):
    info = tarfile.TarInfo(name)
    info.size = len(content)
    return info, io.BytesIO(content)


def _link_member(name, target, kind):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


@pytest.mark.parametrize("member", [
    _file_member("../escaped.txt"),
    _file_member("cifar-10-batches-py/../../escaped.txt"),
    _file_member("/tmp/tinyres-absolute-escaped.txt"),
    _link_member("cifar-10-batches-py/batches.meta", "/etc/passwd", tarfile.SYMTYPE),
    _link_member("cifar-10-batches-py/batches.meta", "/etc/passwd", tarfile.LNKTYPE),
], ids=["dotdot", "nested-dotdot", "absolute", "symlink", "hardlink"])
def test_evil_archive_is_refused(tmp_path, monkeypatch, member):
    info, content = member
    payload = make_tarball(tmp_path, lambda tar: tar.addfile(info, content))
    monkeypatch.setattr(cifar, "CIFAR10_MD5", hashlib.md5(payload).hexdigest())   # see above
    serve(monkeypatch, payload)
    root = tmp_path / "deep" / "data"
    with pytest.raises(DatasetError, match="refusing to unpack"):
        CIFAR10(root)
    assert not (tmp_path / "deep" / "escaped.txt").exists()
    assert not (tmp_path / "escaped.txt").exists()
    assert not Path("/tmp/tinyres-absolute-escaped.txt").exists()
    assert list(root.iterdir()) == []          # no archive, no scratch folder, no data


# ----------------------------------------------------------------------------------------------
# The bundled sample.
# ----------------------------------------------------------------------------------------------
def test_bundled_sample_loads_and_is_verified():
    train, test = bundled_sample(train=True), CIFAR10(train=False, sample=True)
    assert (len(train), len(test)) == (5482, 1017)
    assert train.images.dtype == numpy.uint8 and train.images.shape == (5482, 3, 32, 32)
    assert train.labels.dtype == numpy.int64 and train.classes == CLASSES
    assert train.labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert train.source.startswith("bundled sample (5482 train images")


def test_bundled_sample_is_the_subset(subset_train, subset_test):
    train, test = bundled_sample(True), bundled_sample(False)
    numpy.testing.assert_array_equal(train.images, subset_train.images)
    numpy.testing.assert_array_equal(train.labels, subset_train.labels)
    numpy.testing.assert_array_equal(test.images, subset_test.images)
    numpy.testing.assert_array_equal(test.labels, subset_test.labels)


@settings(max_examples=25, deadline=None)
@given(arrays(numpy.uint8, st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 9),
                                     st.integers(1, 9))))
def test_row_differences_round_trip(images):
    differences = cifar.row_differences(images)
    numpy.testing.assert_array_equal(differences[..., 0], images[..., 0])
    numpy.testing.assert_array_equal(cifar.undo_row_differences(differences), images)


def test_corrupt_bundled_sample_is_refused(tmp_path, monkeypatch):
    with numpy.load(cifar.SAMPLE_PATH) as npz:
        arrays = dict(npz)
    arrays["test_rowdiff"][7, 1, 2, 3] ^= 1          # one bit of one pixel
    corrupt = tmp_path / "corrupt.npz"
    numpy.savez_compressed(corrupt, **arrays)
    monkeypatch.setattr(cifar, "SAMPLE_PATH", corrupt)
    assert len(bundled_sample(train=True)) == 5482    # the train part is untouched
    with pytest.raises(DatasetError, match="corrupt"):
        bundled_sample(train=False)


def test_sample_and_root_together_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="not both"):
        CIFAR10(tmp_path, sample=True)


# ----------------------------------------------------------------------------------------------
# Transforms.
# ----------------------------------------------------------------------------------------------
def random_batch(rng, n, low=1):
    """float32 (n, 3, 32, 32) with values in [low/255, 1]: nonzero, so zero padding shows."""
    return to_float32(rng.integers(low, 256, (n, 3, 32, 32), dtype=numpy.uint8))


def test_to_float32_scales_to_unit_range():
    images = numpy.array([0, 51, 255], dtype=numpy.uint8).reshape(1, 3, 1, 1)
    out = to_float32(images)
    assert out.dtype == numpy.float32 and out.ravel().tolist() == pytest.approx([0, 0.2, 1])
    with pytest.raises(TypeError, match="uint8"):
        to_float32(out)


def test_normalize_is_per_channel():
    images = random_batch(numpy.random.default_rng(0), 2)
    out = Normalize(CIFAR10_MEAN, CIFAR10_STD)(images)
    for c in range(3):
        expected = (images[:, c] - numpy.float32(CIFAR10_MEAN[c])) / numpy.float32(CIFAR10_STD[c])
        numpy.testing.assert_allclose(out[:, c], expected, rtol=1e-6)
    assert out.dtype == numpy.float32
    with pytest.raises(ValueError, match="3 channel means, the batch has 1 channels"):
        Normalize()(images[:, :1])
    with pytest.raises(TypeError, match=r"float32 NumPy batch of shape \(N, C, H, W\)"):
        Normalize()(images[0])


def test_per_pixel_mean_subtraction_centres_every_pixel():
    data = bundled_sample(train=False)
    subtract = PerPixelMeanSubtraction.from_dataset(data)
    assert subtract.mean_image.shape == (3, 32, 32)
    centred = subtract(to_float32(data.images))
    assert numpy.abs(centred.mean(axis=0)).max() < 1e-5            # each pixel's mean is 0
    assert centred.dtype == numpy.float32


def shifted_with_zero_border(image, dy, dx):
    """The image moved down by dy and right by dx (negative: up/left), zeros where it uncovers."""
    out = numpy.zeros_like(image)
    height, width = image.shape[-2:]
    out[:, max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)] = \
        image[:, max(-dy, 0):height - max(dy, 0), max(-dx, 0):width - max(dx, 0)]
    return out


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 6), padding=st.integers(0, 5), seed=st.integers(0, 2**32 - 1))
def test_random_crop_is_a_shifted_window_with_zero_border(n, padding, seed):
    rng = numpy.random.default_rng(seed)
    images = random_batch(rng, n)
    crop = RandomCrop(32, padding=padding)
    offsets = crop.sample(n, numpy.random.default_rng(seed), images.shape)
    out = crop(images, numpy.random.default_rng(seed))
    assert out.shape == images.shape and out.dtype == numpy.float32
    assert ((offsets >= 0) & (offsets <= 2 * padding)).all()
    for i, (row, column) in enumerate(offsets):
        # Cropping at (row, column) of the padded image = shifting by (padding - row, ...).
        expected = shifted_with_zero_border(images[i], padding - row, padding - column)
        numpy.testing.assert_array_equal(out[i], expected)


def test_random_crop_offsets_cover_all_81_shifts():
    offsets = RandomCrop(32, 4).sample(5000, numpy.random.default_rng(0), (3, 32, 32))
    counts = numpy.zeros((9, 9), int)
    numpy.add.at(counts, (offsets[:, 0], offsets[:, 1]), 1)
    assert counts.min() > 20                    # expected 5000 / 81 ≈ 62 each


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 8), p=st.sampled_from([0.0, 0.5, 1.0]), seed=st.integers(0, 2**32 - 1))
def test_flip_mirrors_exactly_the_chosen_images(n, p, seed):
    images = random_batch(numpy.random.default_rng(seed), n)
    flip = RandomHorizontalFlip(p)
    chosen = flip.sample(n, numpy.random.default_rng(seed))
    out = flip(images, numpy.random.default_rng(seed))
    assert chosen.all() if p == 1 else (not chosen.any() if p == 0 else True)
    numpy.testing.assert_array_equal(out[chosen], images[chosen][:, :, :, ::-1])
    numpy.testing.assert_array_equal(out[~chosen], images[~chosen])


def test_compose_is_reproducible_with_the_same_generator():
    images = random_batch(numpy.random.default_rng(1), 16)
    transform = cifar_train_transform()
    first = transform(images, numpy.random.default_rng(5))
    again = transform(images, numpy.random.default_rng(5))
    other = transform(images, numpy.random.default_rng(6))
    numpy.testing.assert_array_equal(first, again)
    assert not numpy.array_equal(first, other)
    assert isinstance(transform, Compose) and first.dtype == numpy.float32


def test_padding_is_zero_in_raw_space():
    """Crop before Normalize: a padded pixel is raw black, i.e. (0 - mean) / std afterwards."""
    images = numpy.ones((1, 3, 32, 32), numpy.float32)
    crop = RandomCrop(32, 4)
    out = Normalize()(crop.apply(images, numpy.array([[0, 0]])))     # shifted by (+4, +4)
    expected_border = -numpy.array(CIFAR10_MEAN, numpy.float32) / numpy.array(CIFAR10_STD,
                                                                              numpy.float32)
    numpy.testing.assert_allclose(out[0, :, 0, 0], expected_border, rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# DataLoader.
# ----------------------------------------------------------------------------------------------
def tiny_dataset(n=10):
    """Image k is filled with the value k, label k % 10: each batch shows which images it holds."""
    images = numpy.broadcast_to(numpy.arange(n, dtype=numpy.uint8)[:, None, None, None],
                                (n, 3, 32, 32)).copy()
    return SimpleNamespace(images=images, labels=numpy.arange(n) % 10)


@pytest.mark.parametrize("drop_last, batches, last_size", [(False, 4, 1), (True, 3, 3)])
def test_loader_len_and_drop_last(drop_last, batches, last_size):
    loader = DataLoader(tiny_dataset(10), batch_size=3, drop_last=drop_last)
    sizes = [len(labels) for _, labels in loader]
    assert len(loader) == batches == len(sizes) and sizes[-1] == last_size


def test_loader_on_the_subset_matches_the_reference_recipe(subset_train):
    loader = DataLoader(subset_train, 128, shuffle=True, drop_last=True, seed=0,
                        transform=cifar_train_transform())
    assert len(loader) == 42                   # "42 steps per epoch on the 5,482 training images"
    images, labels = next(iter(loader))
    assert images.shape == (128, 3, 32, 32) and images.dtype == numpy.float32
    assert labels.shape == (128,) and labels.dtype == numpy.int64


def test_loader_without_shuffle_keeps_order_and_scales():
    data = tiny_dataset(10)
    images, labels = next(iter(DataLoader(data, 4)))
    assert labels.tolist() == [0, 1, 2, 3]
    numpy.testing.assert_array_equal(images, to_float32(data.images[:4]))


def epoch_labels(loader):
    return numpy.concatenate([labels for _, labels in loader])


def test_shuffle_is_a_permutation_reproducible_and_new_each_epoch():
    data = SimpleNamespace(images=numpy.zeros((100, 3, 32, 32), numpy.uint8),
                           labels=numpy.arange(100))
    loader = DataLoader(data, 16, shuffle=True, seed=3)
    epoch0, epoch1 = epoch_labels(loader), epoch_labels(loader)
    assert sorted(epoch0) == list(range(100)) and sorted(epoch1) == list(range(100))
    assert not numpy.array_equal(epoch0, epoch1) and loader.epoch == 2
    twin = DataLoader(data, 16, shuffle=True, seed=3)
    numpy.testing.assert_array_equal(epoch_labels(twin), epoch0)
    twin.set_epoch(1)
    numpy.testing.assert_array_equal(epoch_labels(twin), epoch1)
    other_seed = DataLoader(data, 16, shuffle=True, seed=4)
    assert not numpy.array_equal(epoch_labels(other_seed), epoch0)


def test_augmentation_is_reproducible_and_differs_across_epochs():
    data = bundled_sample(train=False)
    make = lambda: DataLoader(data, 64, seed=1, transform=cifar_train_transform())   # noqa: E731
    loader, twin = make(), make()
    first_epoch = [images for images, _ in loader]
    second_epoch = [images for images, _ in loader]
    for a, b in zip(first_epoch, [images for images, _ in twin]):
        numpy.testing.assert_array_equal(a, b)
    assert not numpy.array_equal(first_epoch[0], second_epoch[0])


def test_resume_mid_epoch_gives_exactly_the_same_batches():
    data = bundled_sample(train=False)
    make = lambda: DataLoader(data, 48, shuffle=True, drop_last=True, seed=7,   # noqa: E731
                              transform=cifar_train_transform())
    loader = make()
    batches = iter(loader)
    for _ in range(4):
        next(batches)
    saved = loader.state_dict()
    assert (saved["epoch"], saved["batches_done"]) == (0, 4)
    rest_of_run = [b for b in batches] + [b for b in loader]          # rest of epoch 0, epoch 1
    resumed = make()
    resumed.load_state_dict({k: numpy.asarray(v) for k, v in saved.items()})   # as from savez
    rest_of_resumed = [b for b in resumed] + [b for b in resumed]
    assert len(rest_of_run) == len(rest_of_resumed) == len(loader) - 4 + len(loader)
    for (images, labels), (images2, labels2) in zip(rest_of_run, rest_of_resumed):
        numpy.testing.assert_array_equal(images, images2)
        numpy.testing.assert_array_equal(labels, labels2)


def test_state_after_the_last_batch_points_at_the_next_epoch():
    loader = DataLoader(tiny_dataset(10), 5)
    for _ in loader:
        state = loader.state_dict()
    assert (state["epoch"], state["batches_done"]) == (1, 0)


def test_load_state_with_other_batch_size_is_refused():
    state = DataLoader(tiny_dataset(10), 5).state_dict()
    with pytest.raises(ValueError, match="batch_size=5, this loader has batch_size=2"):
        DataLoader(tiny_dataset(10), 2).load_state_dict(state)


def test_loader_rejects_bad_arguments():
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        DataLoader(tiny_dataset(), 0)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        DataLoader(tiny_dataset(), 2, seed=-1)


# ----------------------------------------------------------------------------------------------
# Integrity: every file checked against a SHA256SUMS manifest or the official MD5s, once.
# ----------------------------------------------------------------------------------------------
@pytest.fixture
def fresh_digest_cache(tmp_path, monkeypatch):
    """The digest cache in a folder of this test's own, and nothing remembered in memory."""
    monkeypatch.setenv("TINYRES_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(integrity, "_remembered", {})
    return tmp_path / "cache" / "digests.json"


def write_manifest(folder, root):
    """A SHA256SUMS in `root` listing every file of `folder` (paths relative to `root`)."""
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(root)}"
             for p in sorted(folder.iterdir())]
    (root / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def flip_bytes(path, count, seed=0):
    data = numpy.frombuffer(path.read_bytes(), dtype=numpy.uint8).copy()
    where = numpy.random.default_rng(seed).choice(len(data) - 2000, count, replace=False) + 2000
    data[where] ^= 0x5A                              # pixels, past the pickle's header
    path.write_bytes(data.tobytes())


def test_the_real_subset_is_verified_by_its_manifest(cifar_subset, fresh_digest_cache):
    train = CIFAR10(cifar_subset, train=True, download=False)
    assert train.unverified == []
    assert str((cifar_subset / "cifar-10-batches-py" / "data_batch_1").resolve()) in \
        fresh_digest_cache.read_text()                # (the cache keys files by their real path)


def test_bit_flips_in_a_listed_file_are_refused_naming_it(cifar_subset, tmp_path,
                                                          fresh_digest_cache):
    """The issue's case: 10,000 flipped bytes in data_batch_1 of a copy of the subset."""
    copy = tmp_path / "subset"
    shutil.copytree(cifar_subset, copy)
    for path in copy.rglob("*"):
        path.chmod(0o644 if path.is_file() else 0o755)
    flip_bytes(copy / "cifar-10-batches-py" / "data_batch_1", 10_000)
    with pytest.raises(DatasetError) as error:
        CIFAR10(copy, train=True, download=False)
    message = str(error.value)
    assert f"{copy / 'cifar-10-batches-py' / 'data_batch_1'} is damaged" in message
    assert str(copy / "SHA256SUMS") in message and "Get a good copy" in message
    assert len(CIFAR10(copy, train=False, download=False)) == 1017     # test_batch is intact


def test_a_full_size_file_with_an_official_name_and_another_md5_is_damaged(tmp_path,
                                                                           fresh_digest_cache):
    folder = write_fake_cifar(tmp_path / "cifar-10-batches-py", images_per_file=3)
    rng = numpy.random.default_rng(1)
    batch = {b"labels": rng.integers(0, 10, 10_000).tolist(),
             b"data": rng.integers(0, 256, (10_000, 3072), dtype=numpy.uint8)}
    (folder / "data_batch_3").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DatasetError, match="official data_batch_3 but its MD5 is") as error:
        CIFAR10(tmp_path, train=True, download=False)
    assert integrity.OFFICIAL_MD5["data_batch_3"] in str(error.value)
    assert "SHA256SUMS" in str(error.value)           # how to vouch for a file of one's own


def test_a_users_own_subset_loads_and_says_it_was_not_verified(tmp_path, fresh_digest_cache):
    write_fake_cifar(tmp_path / "cifar-10-batches-py")
    train = CIFAR10(tmp_path, train=True, download=False)
    assert len(train) == 15 and sorted(train.unverified) == sorted(
        ("batches.meta",) + cifar.TRAIN_FILES)


def test_a_users_own_manifest_vouches_for_their_files(tmp_path, fresh_digest_cache):
    folder = write_fake_cifar(tmp_path / "cifar-10-batches-py")
    write_manifest(folder, tmp_path)
    assert CIFAR10(tmp_path, train=False, download=False).unverified == []
    flip_bytes(folder / "test_batch", 1, seed=3)
    with pytest.raises(DatasetError, match="test_batch is damaged: its SHA-256 is"):
        CIFAR10(tmp_path, train=False, download=False)


def test_files_are_hashed_once_until_they_change(tmp_path, fresh_digest_cache, monkeypatch):
    folder = write_fake_cifar(tmp_path / "cifar-10-batches-py")
    hashed = []
    real_md5 = hashlib.md5
    monkeypatch.setattr(integrity.hashlib, "md5", lambda *a: hashed.append(1) or real_md5(*a))
    CIFAR10(tmp_path, train=False, download=False)
    assert len(hashed) == 2                                  # batches.meta and test_batch
    monkeypatch.setattr(integrity, "_remembered", {})         # a new process: the file cache
    CIFAR10(tmp_path, train=False, download=False)
    assert len(hashed) == 2
    stat = (folder / "test_batch").stat()
    os.utime(folder / "test_batch", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    CIFAR10(tmp_path, train=False, download=False)
    assert len(hashed) == 3                                  # changed: hashed again


def test_the_bundled_sample_is_checked_against_its_sha256sums(tmp_path, monkeypatch,
                                                              fresh_digest_cache):
    manifest = (cifar.SAMPLE_PATH.parent / "SHA256SUMS").read_text().split()
    assert manifest == [hashlib.sha256(cifar.SAMPLE_PATH.read_bytes()).hexdigest(),
                        cifar.SAMPLE_PATH.name]
    copy = tmp_path / "sample" / cifar.SAMPLE_PATH.name
    copy.parent.mkdir()
    shutil.copy(cifar.SAMPLE_PATH, copy)
    (copy.parent / "SHA256SUMS").write_text(f"{'0' * 64}  {copy.name}\n")
    monkeypatch.setattr(cifar, "SAMPLE_PATH", copy)
    with pytest.raises(DatasetError, match="bundled CIFAR-10 sample .* is damaged"):
        bundled_sample(train=True)


def test_a_failed_download_leaves_no_new_folder(tmp_path, monkeypatch):
    def offline(url, timeout=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DatasetError, match="could not download"):
        CIFAR10(tmp_path / "new" / "cifar")
    assert not (tmp_path / "new" / "cifar").exists()


# ----------------------------------------------------------------------------------------------
# Issue 29: damage is always said, the cache's trade is bounded, legitimate pickles load.
# ----------------------------------------------------------------------------------------------
def test_a_damaged_cache_is_reported_never_swapped_for_the_sample(tmp_path, monkeypatch,
                                                                  fresh_digest_cache):
    """29.6: the cache holds CIFAR-10 with a damaged batch: an error naming it, for both splits
    alike (no training on the sample while testing on the cache)."""
    from tinyres.train import TrainConfig, load_cifar
    from tinyres.train.data import RunData
    folder = write_fake_cifar(tmp_path / "cache" / "cifar-10-batches-py")
    (folder / "data_batch_2").write_bytes((folder / "data_batch_2").read_bytes()[:100])
    with pytest.raises(DatasetError, match="data_batch_2"):
        load_cifar(None, train=True)
    assert len(load_cifar(None, train=False)) == 3              # the cache's own test batch
    with pytest.raises(DatasetError, match="data_batch_2"):
        RunData.load(TrainConfig(data=None, batch_size=2))


def test_without_a_cache_the_sample_is_used_and_said_in_one_line(tmp_path, fresh_digest_cache):
    """29.6: the fallback is said, and both splits are the sample's."""
    from tinyres.train import TrainConfig
    from tinyres.train.data import RunData
    data = RunData.load(TrainConfig(data=None, batch_size=2, limit_train=4))
    assert data.source == "sample" and data.test_set.name == data.train_set.name
    assert len(data.notes) == 1 and "no CIFAR-10 in the cache" in data.notes[0]
    assert "bundled sample" in data.notes[0] and "\n" not in data.notes[0]


def test_verify_hashes_again_what_the_cache_would_trust(tmp_path, fresh_digest_cache):
    """29.9: bit rot that keeps the size and mtime is caught by verify=True, and by the weekly
    recheck without it."""
    path = tmp_path / "file"
    path.write_bytes(b"a" * 100)
    first = dict(integrity.file_digests(path, tmp_path / "cache"))
    stat = path.stat()
    path.write_bytes(b"b" * 100)                               # rot: same size, same mtime
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert integrity.file_digests(path, tmp_path / "cache")["sha256"] == first["sha256"]
    assert integrity.file_digests(path, tmp_path / "cache", verify=True)["sha256"] != \
        first["sha256"]
    path.write_bytes(b"c" * 100)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    integrity._remembered[str(path.resolve())]["hashed_at"] -= integrity.RECHECK_AFTER + 1
    assert integrity.file_digests(path, tmp_path / "cache")["sha256"] == \
        hashlib.sha256(b"c" * 100).hexdigest()


def test_verify_reaches_the_data_set_and_finds_a_damaged_file(tmp_path, fresh_digest_cache):
    folder = write_fake_cifar(tmp_path / "cifar-10-batches-py")
    batch = pickle.loads((folder / "test_batch").read_bytes(), encoding="bytes")
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=4))   # the pixels raw
    write_manifest(folder, tmp_path)
    CIFAR10(tmp_path, train=False, download=False)
    stat = (folder / "test_batch").stat()
    rotten = bytearray((folder / "test_batch").read_bytes())
    rotten[len(rotten) // 2] ^= 0x01                          # one bit of one pixel
    (folder / "test_batch").write_bytes(bytes(rotten))
    os.utime(folder / "test_batch", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    CIFAR10(tmp_path, train=False, download=False)              # the cache trusts size + mtime
    with pytest.raises(DatasetError, match="test_batch is damaged"):
        CIFAR10(tmp_path, train=False, download=False, verify=True)


def test_a_protocol_5_pickle_of_numpy_arrays_loads(tmp_path):
    """29.19: legitimate NumPy data written with pickle's protocol 5 (in-band buffers)."""
    folder = write_fake_cifar(tmp_path / "cifar-10-batches-py")
    batch = pickle.loads((folder / "test_batch").read_bytes(), encoding="bytes")
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=5))
    test = CIFAR10(tmp_path, train=False, download=False)
    assert (test.images.reshape(3, -1) == batch[b"data"]).all()
