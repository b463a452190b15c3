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
              back a plain ndarray, fails a test instead of silently breaking on a real GPU.
"""
import os

import numpy

BACKENDS = ("numpy", "cupy", "cudasim", "leakproof")
_current = None  # set lazily from TINYRES_BACKEND on first use


class BackendError(RuntimeError):
    """A backend was asked for that this machine cannot provide."""


# ----------------------------------------------------------------------------------------------
# The leak-proof test device: an ndarray subclass that behaves like a CuPy array.
# ----------------------------------------------------------------------------------------------
class DeviceArray(numpy.ndarray):
    """An array on the pretend device of the "leakproof" backend.

    Its own methods (``x.sum()``, ``x.reshape()``, ``x[...]``, arithmetic) work and keep it a
    DeviceArray. Host NumPy functions (``numpy.sum(x)``, ``numpy.pad(x)``) raise, as they do for a
    CuPy array; so does mixing it with a plain ndarray in one ufunc. ``numpy.asarray(x)`` cannot
    be refused (NumPy converts subclasses itself), but the host array it returns is caught where
    it leaves an op: `Function` checks that outputs live on their inputs' device. Use `leakproof`
    (the module `get_array_module` returns for it) or ``.get()`` to copy back to the host.
    """

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(
            f"host numpy.{func.__name__}() called on device data (a DeviceArray of the leakproof "
            f"backend); op code must use xp = get_array_module(x) and call xp.{func.__name__}()")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        host = [a for a in inputs + tuple(kwargs.get("out", ()))
                if type(a) is numpy.ndarray and a.ndim > 0]
        if host:
            raise TypeError(
                f"numpy.{ufunc.__name__} mixes device data (DeviceArray) with a host ndarray of "
                f"shape {host[0].shape}; move it with xp.asarray() first")
        inputs = tuple(_to_host_view(a) for a in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(_to_host_view(a) for a in kwargs["out"])
        result = getattr(ufunc, method)(*inputs, **kwargs)
        return _to_device_view(result)

    def __getitem__(self, index):
        return _to_device_view(super().__getitem__(_host_args(index)))

    def __setitem__(self, index, value):
        super().__setitem__(_host_args(index), _to_host_view(value))

    def get(self):
        """Copy to a host ndarray (as ``cupy.ndarray.get``)."""
        return numpy.array(self.view(numpy.ndarray))



def _to_host_view(a):
    return a.view(numpy.ndarray) if isinstance(a, DeviceArray) else a


def _to_device_view(result):
    if isinstance(result, tuple):
        return tuple(_to_device_view(r) for r in result)
    if type(result) is numpy.ndarray:
        return result.view(DeviceArray)
    if isinstance(result, numpy.generic):            # reductions give 0-d arrays, as CuPy's do
        return numpy.asarray(result).view(DeviceArray)
    return result


class _LeakproofModule:
    """The array module of the leakproof backend: numpy's functions, taking and returning
    DeviceArrays. ``leakproof.asarray(host_array)`` is the one door from host to device."""

    def __init__(self, namespace, name):
        self._namespace = namespace
        self.__name__ = name

    def __getattr__(self, attr):
        value = getattr(self._namespace, attr)
        if isinstance(value, type(numpy)):                 # a submodule: numpy.random, numpy.linalg
            return _LeakproofModule(value, f"{self.__name__}.{attr}")
        if callable(value) and not isinstance(value, (type, numpy.ufunc)):
            def on_device(*args, **kwargs):
                args = [_host_args(a) for a in args]
                kwargs = {k: _host_args(v) for k, v in kwargs.items()}
                return _to_device_view(value(*args, **kwargs))
            on_device.__name__ = attr
            return on_device
        return value                                      # dtypes, constants, ufuncs

    ndarray = DeviceArray


def _host_args(a):
    if isinstance(a, (list, tuple)):
        return type(a)(_host_args(x) for x in a)
    return _to_host_view(a)


leakproof = _LeakproofModule(numpy, "leakproof")


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
    return _require_cupy().asarray(host)


# ----------------------------------------------------------------------------------------------
# The current backend.
# ----------------------------------------------------------------------------------------------
def _require_cupy():
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
    """The simulator is chosen by an environment variable that Numba reads once, at import."""
    import sys
    if "numba.cuda" in sys.modules and not sys.modules["numba"].config.ENABLE_CUDASIM:
        raise BackendError(
            "the 'cudasim' backend must be chosen before numba.cuda is imported: numba.cuda was "
            "already imported in real-GPU mode. Set TINYRES_BACKEND=cudasim (or "
            "NUMBA_ENABLE_CUDASIM=1) before starting Python")
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    try:
        import numba
        numba.config.reload_config()          # numba may have been imported before the switch
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
        _require_cupy()
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
        return _require_cupy()
    return leakproof if device == "leakproof" else numpy
