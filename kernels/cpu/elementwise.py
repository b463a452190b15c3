"""The ReLU on the CPU: one pass over memory, the array cut into pieces shared among the threads.

The readable twins are in tinyres/functional/activation.py:

    relu_forward(x)        y = max(x, 0)                  (NaN stays NaN, as numpy.maximum)
    relu_backward(gy, y)   gx = gy * (y > 0)              (the mask multiplies: NaN * 0 is NaN)

NumPy already does each in one pass, but on one core; here the flat array is cut into pieces of
about PIECE numbers and the pieces are shared among the threads (threads.py). An elementwise op
does not care about the order of the numbers in memory, only that its arrays share one: C order,
or the channels-last memory of the fast path's activations (layout.py), which the output keeps.
Arrays that are neither, or not alike, go to NumPy itself. The kernels take float32 and float64
data (DTYPES); tinyres.dispatch sends any other type to the reference. This module never imports
tinyres.
"""
import numpy
from numba import njit

from .threads import share

DTYPES = (numpy.float32, numpy.float64)

PIECE = 1 << 18            # numbers per part: 1 MB of float32, enough to hide the hand-over


# `zero` is a one-element array of the data's type: a literal 0.0 would be a float64, and mixing
# it in would turn the loops into float64 arithmetic (slower, and no longer the reference's).
# The loops run over slices from index 0: Numba then knows no index is negative, and the
# compiler makes vector instructions of them (indexing from `first` it would not).
@njit(nogil=True, cache=True)
def _relu(x, y, zero, first, last):
    z, source, target = zero[0], x[first:last], y[first:last]
    for i in range(last - first):
        v = source[i]
        target[i] = z if v < z else v


@njit(nogil=True, cache=True)
def _relu_grad(gy, y, gx, zero, first, last):
    z, g, out, mask = zero[0], gy[first:last], gx[first:last], y[first:last]
    for i in range(last - first):
        out[i] = g[i] if mask[i] > z else g[i] * z           # g * 0 keeps NaN * 0 = NaN


def _flat(*arrays):
    """The arrays as flat vectors of their memory, all in one order (C, or channels last), or
    None when they cannot be (without a copy)."""
    if all(a.flags.c_contiguous for a in arrays):
        return [a.reshape(-1) for a in arrays]
    if all(a.ndim == 4 and a.transpose(0, 2, 3, 1).flags.c_contiguous for a in arrays):
        return [a.transpose(0, 2, 3, 1).reshape(-1) for a in arrays]
    return None


def _pieces(size):
    bounds = list(range(0, size, PIECE)) + [size]
    return list(zip(bounds[:-1], bounds[1:]))


def relu_forward(x):
    """y = max(x, 0), of x's shape and dtype."""
    flat = _flat(x)
    if flat is None:
        return numpy.maximum(x, 0)
    y = numpy.empty_like(x)                                  # x's memory order
    pieces, (x1, y1), zero = _pieces(x.size), _flat(x, y), numpy.zeros(1, x.dtype)
    share(len(pieces), lambda: lambda i: _relu(x1, y1, zero, *pieces[i]))
    return y


def relu_backward(gy, y):
    """gx = gy where y > 0, else 0 (gy * (y > 0)), in y's memory order: the gradient takes the
    layout of the activations (gy may come in another, e.g. from a broadcast in pooling)."""
    if gy.dtype != y.dtype:
        return gy * (y > 0)
    gx = numpy.empty_like(y)
    flat = _flat(gy, y, gx)
    if flat is None:
        return numpy.multiply(gy, y > 0, out=gx)
    pieces, (gy1, y1, gx1) = _pieces(gy.size), flat
    zero = numpy.zeros(1, gy.dtype)
    share(len(pieces), lambda: lambda i: _relu_grad(gy1, y1, gx1, zero, *pieces[i]))
    return gx
