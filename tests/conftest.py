"""Shared fixtures: run op tests on every backend that this machine can run."""
import os
from pathlib import Path

import numpy
import pytest
from hypothesis import HealthCheck, settings

import tinyres
from tinyres import backend as backend_module

from cifar_folder import write_tiny_cifar

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


@pytest.fixture(scope="session")
def tiny_cifar(tmp_path_factory):
    """write_tiny_cifar's folder, once per test session."""
    return write_tiny_cifar(tmp_path_factory.mktemp("tiny-cifar"))
