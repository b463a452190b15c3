"""Floor 1: where arrays live.

tinyres computes on NumPy arrays (the CPU) or CuPy arrays (an NVIDIA GPU). Op code never names
either library: it asks the data which module it belongs to,

    xp = get_array_module(x)      # numpy, or cupy, or the leak-proof test module
    y = xp.maximum(x, 0)

so one op serves every backend. The *current* backend only decides where new tensors are made.

Backends:
  "numpy"     the CPU; the default.
  "cupy"      an NVIDIA GPU through CuPy (install the extra `tinyres[cuda12]` or `tinyres[cuda13]`).
  "cudasim"   NumPy arrays, but ops that have a hand-written GPU kernel run *that kernel* through
              Numba's CUDA simulator: the GPU code path executed on a machine without a GPU.
  "leakproof" test-only: arrays are `DeviceArray`, a distinct ndarray subclass that refuses host
              NumPy calls, as CuPy arrays do. An op that calls `numpy.xxx` on tensor data, or hands
              back a plain ndarray, fails a test instead of silently breaking on a real GPU (the
              machinery is in leakproof.py).
"""
import os

import numpy

from tinyres.leakproof import DeviceArray, leakproof

BACKENDS = ("numpy", "cupy", "cudasim", "leakproof")
_current = None  # set lazily from TINYRES_BACKEND on first use


class BackendError(RuntimeError):
    """A backend was asked for that this machine cannot provide."""


# ----------------------------------------------------------------------------------------------
# Which module does an array belong to?
# ----------------------------------------------------------------------------------------------
def _cupy_or_none():
    try:
        import cupy
        return cupy
    except Exception:                                     # not installed, or broken CUDA libs
        return None


def get_array_module(*arrays):
    """The array module (numpy, cupy, or leakproof) of the given arrays / Tensors."""
    for a in arrays:
        a = getattr(a, "data", a) if not isinstance(a, numpy.ndarray) else a
        if isinstance(a, DeviceArray):
            return leakproof
        if type(a).__module__.startswith("cupy"):
            import cupy
            return cupy
    return numpy


def device_of(array):
    """'cpu', 'cuda' or 'leakproof': where an array's memory is."""
    if isinstance(array, DeviceArray):
        return "leakproof"
    if type(array).__module__.startswith("cupy"):
        return "cuda"
    return "cpu"


def to_device(array, device):
    """Copy an array to 'cpu', 'cuda' or 'leakproof' (no copy when it is already there)."""
    if device not in ("cpu", "cuda", "leakproof"):
        raise ValueError(f"unknown device {device!r}; expected 'cpu', 'cuda' or 'leakproof'")
    source = device_of(array)
    if source == device:
        return array
    host = array.get() if source != "cpu" else array
    if device == "cpu":
        return host
    if device == "leakproof":
        return numpy.array(host).view(DeviceArray)
    return require_cupy().asarray(host)


# ----------------------------------------------------------------------------------------------
# The current backend.
# ----------------------------------------------------------------------------------------------
def require_cupy():
    """The cupy module, where CuPy imports and sees a GPU; else a BackendError saying what is
    missing and what to install. Public: the benchmark asks it which paths this machine runs."""
    cupy = _cupy_or_none()
    if cupy is None:
        raise BackendError(
            "the 'cupy' backend needs CuPy, which is not installed (or failed to import). "
            "Install the extra matching your CUDA driver: pip install 'tinyres[cuda12]' or "
            "'tinyres[cuda13]'. Without a GPU, the 'cudasim' backend runs the GPU kernels in "
            "Numba's CUDA simulator.")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:
        raise BackendError(f"CuPy is installed but no GPU is visible ({err}); the 'cupy' backend "
                           "needs an NVIDIA GPU and driver") from None
    if count == 0:
        raise BackendError("CuPy is installed but no GPU is visible; the 'cupy' backend needs an "
                           "NVIDIA GPU and driver")
    return cupy


def _enable_cuda_simulator():
    """numba.cuda picks the simulator or a real GPU once, when it is imported, from Numba's
    setting ENABLE_CUDASIM (read from NUMBA_ENABLE_CUDASIM when Numba starts). The setting is
    made in Numba's config, not in the environment: the process's environment (and that of any
    program it starts) stays the user's."""
    import sys
    if "numba.cuda" in sys.modules and not sys.modules["numba"].config.ENABLE_CUDASIM:
        raise BackendError(
            "the 'cudasim' backend must be chosen before numba.cuda is imported: numba.cuda was "
            "already imported in real-GPU mode. Set TINYRES_BACKEND=cudasim (or "
            "NUMBA_ENABLE_CUDASIM=1) before starting Python")
    try:
        import numba
        # Numba's config keeps a value set here through its reloads while no NUMBA_* variable
        # changes; numba.cuda reads it once, at its import just below.
        numba.config.ENABLE_CUDASIM = 1
        from numba import cuda  # noqa: F401
    except ImportError:
        raise BackendError("the 'cudasim' backend needs numba and numba-cuda: "
                           "pip install 'tinyres[dev]'") from None


def set_backend(name):
    """Choose where new tensors are made: 'numpy', 'cupy', 'cudasim' or 'leakproof'."""
    global _current
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    if name == "cupy":
        require_cupy()
    if name == "cudasim":
        _enable_cuda_simulator()
    _current = name


def get_backend():
    """The current backend's name (from set_backend, else TINYRES_BACKEND, else 'numpy')."""
    if _current is None:
        set_backend(os.environ.get("TINYRES_BACKEND", "numpy") or "numpy")
    return _current


def default_device():
    """The device new tensors are made on under the current backend."""
    return {"numpy": "cpu", "cudasim": "cpu", "cupy": "cuda", "leakproof": "leakproof"}[
        get_backend()]


def array_module(device=None):
    """The array module for a device (default: the current backend's)."""
    device = device or default_device()
    if device == "cuda":
        return require_cupy()
    return leakproof if device == "leakproof" else numpy
