"""tinyres.save / tinyres.load: state dicts and nested checkpoints in .npz files, written
atomically (a failed save never damages the file already at the path)."""
import math
import os

import numpy
import pytest

import tinyres
from tinyres import nn, optim, serialization
from tinyres.backend import DeviceArray


def small_model():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))


def test_a_state_dict_round_trips_as_a_plain_npz(tmp_path):
    model = small_model()
    path = tmp_path / "weights.npz"
    tinyres.save(model.state_dict(), path)
    loaded = tinyres.load(path)
    assert list(loaded) == list(model.state_dict())
    for name, value in model.state_dict().items():
        numpy.testing.assert_array_equal(loaded[name], value)
        assert loaded[name].dtype == value.dtype
    with numpy.load(path) as plain:                    # readable without tinyres
        assert list(plain.files) == list(model.state_dict())

    other = small_model()
    other.load_state_dict(numpy.load(path))
    x = tinyres.tensor(numpy.random.default_rng(0).standard_normal((2, 3, 5, 5)), dtype="float32")
    model.eval(), other.eval()
    numpy.testing.assert_array_equal(model(x).numpy(), other(x).numpy())


def test_a_nested_checkpoint_round_trips_with_its_types(tmp_path):
    model = small_model()
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(tinyres.tensor(numpy.ones((2, 3, 4, 4)), dtype="float32")).sum().backward()
    optimizer.step()
    tinyres.manual_seed(4)
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),            # int keys, lists of dicts, floats
        "epoch": 12, "best_acc": 0.9125, "loss": math.inf, "note": "after warm-up",
        "resumed": False, "parent": None, "betas": (0.9, 0.999), "milestones": [100, 150],
        "rng": tinyres.nn.init.get_rng_state(),         # 128-bit integers in a dict
        "scalar": numpy.float32(2.5),
    }
    path = tmp_path / "checkpoint.npz"
    tinyres.save(checkpoint, path)
    loaded = tinyres.load(path)

    assert list(loaded) == list(checkpoint)
    assert loaded["epoch"] == 12 and loaded["best_acc"] == 0.9125 and loaded["loss"] == math.inf
    assert loaded["note"] == "after warm-up" and loaded["resumed"] is False
    assert loaded["parent"] is None and loaded["betas"] == (0.9, 0.999)
    assert loaded["milestones"] == [100, 150] and loaded["rng"] == checkpoint["rng"]
    assert loaded["scalar"] == numpy.float32(2.5) and loaded["scalar"].dtype == numpy.float32
    assert list(loaded["optimizer"]["state"]) == list(checkpoint["optimizer"]["state"])
    assert all(isinstance(k, int) for k in loaded["optimizer"]["state"])
    for name, value in checkpoint["model"].items():
        numpy.testing.assert_array_equal(loaded["model"][name], value)

    resumed = optim.SGD(small_model().parameters(), lr=0.5, momentum=0.9)
    resumed.load_state_dict(loaded["optimizer"])        # what a resumed run does
    assert resumed.param_groups[0]["lr"] == 0.1
    with numpy.load(path) as plain:                       # arrays are visible by path
        assert "model/0.weight" in plain.files and serialization.TREE_KEY in plain.files


def test_device_arrays_and_tensors_are_saved_as_host_arrays_without_moving(tmp_path):
    model = small_model().to("leakproof")
    tensor = tinyres.tensor(numpy.arange(6.0).reshape(2, 3))
    tinyres.save({"model": model.state_dict(), "weight": model[0].weight, "t": tensor},
                 tmp_path / "c.npz")
    assert isinstance(model[0].weight.data, DeviceArray)  # save moved nothing
    loaded = tinyres.load(tmp_path / "c.npz")
    assert type(loaded["weight"]) is numpy.ndarray
    numpy.testing.assert_array_equal(loaded["weight"], model[0].weight.numpy())
    numpy.testing.assert_array_equal(loaded["t"], tensor.numpy())
    tinyres.save({"w": model[0].weight}, tmp_path / "flat.npz")       # flat: no JSON needed
    assert list(numpy.load(tmp_path / "flat.npz").files) == ["w"]


def test_save_writes_exactly_at_the_path(tmp_path):
    tinyres.save({"a": numpy.zeros(2)}, tmp_path / "ckpt.bin")
    assert os.listdir(tmp_path) == ["ckpt.bin"]
    numpy.testing.assert_array_equal(tinyres.load(tmp_path / "ckpt.bin")["a"], numpy.zeros(2))


def test_a_failed_save_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.npz"
    tinyres.save({"epoch": 1, "w": numpy.ones(3)}, path)
    before = path.read_bytes()

    def crash_midway(file, arrays):
        file.write(b"PK\x03\x04 half a zip archive")
        raise OSError("disk full")

    monkeypatch.setattr(serialization, "_write_npz", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        tinyres.save({"epoch": 2, "w": numpy.zeros(3)}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["checkpoint.npz"]     # no temporary file left behind
    assert tinyres.load(path)["epoch"] == 1

    with pytest.raises(OSError):
        tinyres.save({"w": numpy.zeros(3)}, tmp_path / "new.npz")
    assert not (tmp_path / "new.npz").exists()


@pytest.mark.parametrize("obj, error, message", [
    ({"f": lambda: 0}, TypeError, "cannot store a function"),
    ({1.5: numpy.zeros(1)}, TypeError, "dict keys must be str or int"),
    ({"a/b": numpy.zeros(1), "a": {"b": numpy.ones(1)}}, ValueError, "both be stored as 'a/b'"),
    ({"x": numpy.array([{}, 1], dtype=object)}, TypeError, "object arrays"),
])
def test_unsavable_objects_are_refused_before_writing(tmp_path, obj, error, message):
    with pytest.raises(error, match=message):
        tinyres.save(obj, tmp_path / "x.npz")
    assert os.listdir(tmp_path) == []


def test_load_refuses_pickled_objects_without_numpys_advice(tmp_path):
    numpy.savez(tmp_path / "pickled.npz", x=numpy.array([{}, 1], dtype=object))
    with pytest.raises(serialization.CheckpointError, match="pickled Python objects") as error:
        tinyres.load(tmp_path / "pickled.npz")
    assert "allow_pickle" not in str(error.value) and "pickled.npz" in str(error.value)


def _truncated(path):
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])


def _one_flipped_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF                   # inside the first array's bytes
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, message", [
    (_truncated, "truncated or damaged"),
    (_one_flipped_byte, "truncated or damaged"),
    (lambda path: path.write_bytes(os.urandom(4096)), "not an .npz archive"),
    (lambda path: path.write_bytes(b""), "the file is empty"),
    (lambda path: numpy.save(open(path, "wb"), numpy.zeros(3)), "not an .npz archive"),
])
def test_a_damaged_file_is_named_in_one_line(tmp_path, damage, message):
    path = tmp_path / "checkpoint.npz"
    tinyres.save({"epoch": 1, "w": numpy.arange(5000.0)}, path)
    damage(path)
    with pytest.raises(serialization.CheckpointError) as error:
        tinyres.load(path)
    text = str(error.value)
    assert text.startswith(f"{path} is not a tinyres checkpoint: ") and message in text
    assert "\n" not in text and "allow_pickle" not in text


def test_a_missing_file_or_a_directory_is_named(tmp_path):
    with pytest.raises(serialization.CheckpointError, match="no such file"):
        tinyres.load(tmp_path / "absent.npz")
    with pytest.raises(serialization.CheckpointError, match="is a directory"):
        tinyres.load(tmp_path)
