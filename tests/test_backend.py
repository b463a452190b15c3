"""The backend switch, device moves and the leak-proof test device."""
import os
import subprocess
import sys

import numpy
import pytest

import tinyres
from tinyres import backend
from tinyres.backend import BackendError, DeviceArray, get_array_module, leakproof


def test_numpy_is_the_default_and_tensors_follow_the_backend(backend):
    x = tinyres.tensor([1.0, 2.0])
    assert get_array_module(x.data) is backend
    assert x.device == ("cpu" if backend is numpy else "leakproof")


def test_unknown_backend_names_the_valid_ones():
    with pytest.raises(ValueError, match="numpy, cupy, cudasim, leakproof"):
        tinyres.set_backend("tpu")


def test_cupy_without_cupy_or_gpu_says_which_and_how_to_install():
    try:
        import cupy  # noqa: F401
        has_cupy = True
    except Exception:
        has_cupy = False
    if has_cupy:
        pytest.skip("CuPy is installed here; the missing-CuPy message cannot be provoked")
    with pytest.raises(BackendError, match=r"not installed.*tinyres\[cuda12\].*tinyres\[cuda13\]"):
        tinyres.set_backend("cupy")
    assert tinyres.get_backend() != "cupy"                    # nothing switched silently


def test_backend_from_environment_variable():
    code = "import tinyres; print(tinyres.get_backend())"
    env = dict(os.environ, TINYRES_BACKEND="leakproof")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "leakproof"


def test_leakproof_arrays_refuse_host_numpy_calls():
    x = leakproof.asarray(numpy.arange(6.0)).reshape(2, 3)
    assert isinstance(x, DeviceArray)
    assert isinstance(x.sum(axis=0), DeviceArray) and isinstance(x.sum(), DeviceArray)
    assert isinstance(x * 2 + 1, DeviceArray) and isinstance(leakproof.exp(x), DeviceArray)
    with pytest.raises(TypeError, match=r"host numpy\.sum\(\) called on device data"):
        numpy.sum(x)
    with pytest.raises(TypeError, match="mixes device data"):
        x + numpy.ones((2, 3))
    numpy.testing.assert_array_equal(x.get(), [[0, 1, 2], [3, 4, 5]])


def test_an_op_that_leaks_to_the_host_fails_loudly():
    class Leaky(tinyres.Function):
        def forward(self, x):
            return numpy.asarray(x) * 2    # hands back a host array for device input

    tinyres.set_backend("leakproof")
    try:
        with pytest.raises(TypeError,
                           match="returned a ndarray on 'cpu' for inputs on 'leakproof'"):
            Leaky()(tinyres.tensor([1.0]))
    finally:
        tinyres.set_backend("numpy")


def test_mixing_devices_names_both():
    a = tinyres.tensor([1.0, 2.0])
    b = a.to("leakproof")
    with pytest.raises(RuntimeError, match=r"different devices \(input 0: cpu \(2,\), input 1: "
                                           r"leakproof \(2,\)\)"):
        a + b


def test_to_moves_data_and_back():
    a = tinyres.tensor([1.0, 2.0], requires_grad=True)
    b = a.to("leakproof")
    assert b.device == "leakproof" and b.requires_grad and b.is_leaf
    assert a.to("cpu") is a
    numpy.testing.assert_array_equal(b.to("cpu").data, [1.0, 2.0])
    numpy.testing.assert_array_equal(b.numpy(), [1.0, 2.0])


def test_cudasim_must_be_chosen_before_numba_cuda_is_imported():
    pytest.importorskip("numba")
    code = ("from numba import cuda\nimport tinyres\n"
            "try:\n    tinyres.set_backend('cudasim')\nexcept tinyres.backend.BackendError as e:\n"
            "    print('refused:', e)\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert "refused: the 'cudasim' backend must be chosen before numba.cuda" in out.stdout, out


def test_cudasim_runs_the_gpu_kernels_and_leaves_the_environment_alone():
    """set_backend('cudasim') switches Numba's own setting: the process's environment (and so
    every program it starts) is the user's, unchanged."""
    pytest.importorskip("numba")
    code = ("import os, sys, numpy, tinyres\n"
            "from tinyres import dispatch\n"
            "from tinyres.functional.pooling import max_pool2d\n"
            "tinyres.set_backend('cudasim')\n"
            "x = tinyres.tensor(numpy.arange(96, dtype=numpy.float32).reshape(2, 3, 4, 4))\n"
            "y = max_pool2d(x, 2).data\n"
            "print(dispatch.kernel_for('max_pool2d_forward', x.data).__module__,\n"
            "      'numba.cuda.simulator' in sys.modules, 'NUMBA_ENABLE_CUDASIM' in os.environ,\n"
            "      numpy.array_equal(y, x.data.reshape(2, 3, 2, 2, 2, 2).max(axis=(3, 5))))\n")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["tinyres.kernels.gpu.pooling", "True", "False", "True"], out


def test_device_of_and_array_module():
    assert backend.device_of(numpy.ones(1)) == "cpu"
    assert backend.array_module("leakproof") is leakproof
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        backend.to_device(numpy.ones(1), "tpu")
