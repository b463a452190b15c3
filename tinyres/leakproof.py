"""Floor 1, beside backend.py: the leak-proof test device, an ndarray subclass that behaves like a
CuPy array.

The "leakproof" backend exists for tests. Op code must get its array module from the data
(``xp = get_array_module(x)``) and never call host NumPy on tensor data, or it breaks on a GPU.
On a machine without one, this device catches such a call: its arrays refuse host NumPy
functions and mixing with host arrays, as CuPy's do, while their own methods and the `leakproof`
module (NumPy's functions, taking and returning DeviceArrays) work.
"""
import numpy


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
