"""The GPU test suite: the numba-cuda kernels against their NumPy twins, in a process of its own.

Numba chooses between a real GPU and its CUDA simulator once, when numba.cuda is first imported,
from the environment variable NUMBA_ENABLE_CUDASIM. So this folder runs only in a process started
for it, by tests/test_gpu.py:

    NUMBA_ENABLE_CUDASIM=1 TINYRES_BACKEND=cudasim python -m pytest tests/cudasim -q
    TINYRES_BACKEND=cupy python -m pytest tests/cudasim -q          (on a machine with a GPU)

In any other pytest process (the plain ``python -m pytest`` of the repository) nothing here is
collected, so that process never imports numba.cuda in simulator mode.
"""
import os
import sys

import numpy
import pytest

SIMULATOR = (os.environ.get("TINYRES_BACKEND") == "cudasim"
             and os.environ.get("NUMBA_ENABLE_CUDASIM") == "1")
ON_GPU = os.environ.get("TINYRES_BACKEND") == "cupy"

HERE = os.path.dirname(os.path.abspath(__file__))
HOW = ("the GPU suite runs in its own process, started by tests/test_gpu.py "
       "(NUMBA_ENABLE_CUDASIM=1 TINYRES_BACKEND=cudasim python -m pytest tests/cudasim)")

if not (SIMULATOR or ON_GPU):
    collect_ignore_glob = ["test_*.py"]     # not started for us: collect nothing here

if SIMULATOR:
    # The simulator runs each GPU thread as a Python thread; at every cuda.syncthreads() its
    # block manager polls them in a loop. With Python's default 5 ms thread switch interval
    # each barrier waits milliseconds for the woken threads to get the GIL; 1 ms makes the
    # batch-norm reductions (17 barriers per block) a few times faster here.
    sys.setswitchinterval(0.001)


def pytest_collection_modifyitems(config, items):
    """Files named on the command line are collected even when ignored: skip them instead (the
    test modules import the kernels only inside fixtures, so nothing touched numba.cuda)."""
    if SIMULATOR or ON_GPU:
        return
    for item in items:
        if str(item.path).startswith(HERE + os.sep):
            item.add_marker(pytest.mark.skip(reason=HOW))


@pytest.fixture(scope="session")
def xp():
    """The array module the kernels take: numpy in the simulator, cupy on a GPU."""
    if SIMULATOR:
        import numba
        assert numba.config.ENABLE_CUDASIM, "numba.cuda was imported before the simulator was on"
        return numpy
    import cupy
    return cupy


@pytest.fixture
def launches(monkeypatch):
    """Record every kernel launch as (kernel, argument types, blocks, threads), so a test can
    check that the GPU kernels really ran, with the types their PTX is compiled for in CI."""
    import numba
    from tinyres.kernels.gpu import launch

    record = []
    real_launch = launch._launch

    def recording_launch(kernel, blocks, threads, args):
        record.append((kernel, tuple(argument_type(numba, a) for a in args), blocks, threads))
        real_launch(kernel, blocks, threads, args)

    monkeypatch.setattr(launch, "_launch", recording_launch)
    return record


def argument_type(numba, value):
    """The Numba type a kernel argument is compiled for (NumPy or CuPy arrays, scalars)."""
    if hasattr(value, "shape") and hasattr(value, "dtype") and value.ndim > 0:
        layout = "C" if value.flags.c_contiguous else "A"
        return numba.types.Array(numba.from_dtype(value.dtype), value.ndim, layout)
    return numba.typeof(value)
