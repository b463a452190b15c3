"""Floor 3: making tensors, with PyTorch's names — zeros, ones, full, arange, randn, rand,
randint, and their ``_like`` forms.

    tinyres.zeros(2, 3)                  # or zeros((2, 3)): float32, as torch's default dtype
    tinyres.randn(4, 3, dtype=tinyres.float64, requires_grad=True)
    tinyres.zeros_like(x)                # x's shape, dtype and device

Each makes a leaf on the current backend's device (or `device=`). Random numbers come from the
one global generator (tinyres/rng.py; ``tinyres.manual_seed`` repeats them), drawn on the host.
"""
import numpy

from tinyres.rng import generator
from tinyres.tensor import Tensor


def _shape(size):
    """zeros(2, 3) and zeros((2, 3)) both mean the shape (2, 3)."""
    return tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else size


def _leaf(host, dtype, device, requires_grad):
    return Tensor(host, requires_grad=requires_grad, dtype=dtype or numpy.float32, device=device)


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return _leaf(numpy.zeros(_shape(size)), dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _leaf(numpy.ones(_shape(size)), dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    """`fill_value` everywhere; the dtype follows it as in PyTorch (int64 for an int, bool for
    a bool, float32 for a float)."""
    values = numpy.full(tuple(size), fill_value)
    dtype = dtype or (values.dtype if values.dtype.kind in "iub" else numpy.float32)
    return Tensor(values, requires_grad=requires_grad, dtype=dtype, device=device)


def randn(*size, dtype=None, device=None, requires_grad=False):
    """Standard normal numbers, N(0, 1)."""
    return _leaf(generator().standard_normal(_shape(size)), dtype, device, requires_grad)


def rand(*size, dtype=None, device=None, requires_grad=False):
    """Uniform numbers in [0, 1)."""
    return _leaf(generator().random(_shape(size)), dtype, device, requires_grad)


def randint(low, high=None, size=None, dtype=None, device=None, requires_grad=False):
    """Whole numbers drawn uniformly from [low, high), as ``torch.randint(low, high, size)`` or
    ``torch.randint(high, size)``; int64."""
    if size is None:                               # randint(high, size)
        low, high, size = 0, low, high
    values = generator().integers(low, high, tuple(size))
    return Tensor(values, requires_grad=requires_grad, dtype=dtype or numpy.int64, device=device)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """start, start + step, ... below end, as ``torch.arange``: int64 for whole-number arguments,
    float32 when one is a float."""
    if end is None:
        start, end = 0, start
    values = numpy.arange(start, end, step)
    dtype = dtype or (numpy.int64 if values.dtype.kind in "iu" else numpy.float32)
    return Tensor(values, requires_grad=requires_grad, dtype=dtype, device=device)


def _like(make):
    def like(input, dtype=None, device=None, requires_grad=False):
        return make(*input.shape, dtype=dtype or input.dtype, device=device or input.device,
                    requires_grad=requires_grad)
    like.__doc__ = f"``{make.__name__}`` with the shape, dtype and device of `input`."
    return like


zeros_like, ones_like, randn_like, rand_like = map(_like, (zeros, ones, randn, rand))


def full_like(input, fill_value, dtype=None, device=None, requires_grad=False):
    return full(input.shape, fill_value, dtype=dtype or input.dtype,
                device=device or input.device, requires_grad=requires_grad)


def from_numpy(array):
    """A tensor holding a host NumPy array, its dtype kept (float64 stays float64)."""
    return Tensor(array, dtype=array.dtype)


# PyTorch's dtype names, for dtype= arguments and .to(...)
float16, float32, float64 = numpy.float16, numpy.float32, numpy.float64
half, float, double = float16, float32, float64
int32, int64, long, bool = numpy.int32, numpy.int64, numpy.int64, numpy.bool_
