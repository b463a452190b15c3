"""Shared fixtures: run op tests on every backend that this machine can run."""
import os
import pickle
from pathlib import Path

import numpy
import pytest
from hypothesis import HealthCheck, settings

import tinyres
from tinyres import backend as backend_module
from tinyres.data import bundled_sample

# The `backend` fixture is deliberately shared by all examples of a hypothesis test (it only
# selects where arrays live), and gradient checks have no meaningful deadline.
settings.register_profile("tinyres", deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.load_profile("tinyres")

SUBSET = Path(os.environ.get("TINYRES_CIFAR_SUBSET",
                             Path(__file__).resolve().parents[1].parent / "shared" / "data"
                             / "cifar10-subset"))


@pytest.fixture(params=["numpy", "leakproof"])
def backend(request):
    """Run the test on NumPy and on the leak-proof device (arrays that refuse host numpy calls,
    standing in for CuPy); yields the backend's array module."""
    previous = tinyres.get_backend()
    tinyres.set_backend(request.param)
    yield backend_module.array_module()
    tinyres.set_backend(previous)


@pytest.fixture
def rng():
    return numpy.random.default_rng(0)


@pytest.fixture
def cifar_subset():
    """The real CIFAR-10 subset from ../shared/data (skip where it is absent)."""
    if not (SUBSET / "cifar-10-batches-py").is_dir():
        pytest.skip(f"CIFAR-10 subset not found at {SUBSET} (set TINYRES_CIFAR_SUBSET)")
    return SUBSET


def write_tiny_cifar(root, train_per_batch=16, test=32):
    """A CIFAR-10 folder in the official format made of bundled-sample images (80 training
    images in 5 batch files, 32 test images), so a whole `tinyres train` run takes a second."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train, test_set = bundled_sample(True), bundled_sample(False)

    def dump(name, images, labels):
        batch = {b"data": images.reshape(len(images), -1), b"labels": [int(v) for v in labels]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)

    for i in range(5):
        part = slice(i * train_per_batch, (i + 1) * train_per_batch)
        dump(f"data_batch_{i + 1}", train.images[part], train.labels[part])
    dump("test_batch", test_set.images[:test], test_set.labels[:test])
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in train.classes]}, f, protocol=2)
    return str(root)


@pytest.fixture(scope="session")
def tiny_cifar(tmp_path_factory):
    """write_tiny_cifar's folder, once per test session."""
    return write_tiny_cifar(tmp_path_factory.mktemp("tiny-cifar"))
