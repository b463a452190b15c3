"""Max pooling on the CPU: the images shared among the threads (threads.py), plane by plane.

The readable NumPy twins are in tinyres/functional/pooling.py; names as there (N, C, H, W, KH, KW,
SH, SW, PH, PW, OH, OW).

Forward. For each output (oh, ow) the thread scans its window's KH*KW offsets in the reference's
order (kh, then kw), skipping positions in the padding (they are -inf and can never win), and
keeps the largest value and its flat index h*W + w in the (H, W) plane: the `argmax` that the
backward needs. As in the reference, the running best is replaced only when a value is strictly
greater (ties go to the first in scan order), or when it is NaN (NaNs propagate: the last NaN
of a window wins, as in the reference); a window that holds only -inf points at its first real
pixel.

Backward. Each output sends its whole gradient to the input at its argmax; where windows overlap
several outputs may pick one pixel, and their gradients add. The reference does that scatter-add
with ``numpy.add.at``; here each plane's outputs are added one by one, in the same (oh, ow) order,
by the one thread that has the image, so the sums are the reference's bit for bit and no two
threads touch one pixel.

The NumPy version walks the window offsets over whole arrays (KH*KW passes, each with a
comparison, two `where`s and new arrays); here every input is read once per window it is in.
The kernels take float32 and float64 data (DTYPES); tinyres.dispatch sends any other type to
the reference. This module never imports tinyres.
"""
import numpy
from numba import njit

from ..geometry import window_geometry
from .threads import share

DTYPES = (numpy.float32, numpy.float64)


@njit(nogil=True, cache=True)
def _forward(x, KH, KW, SH, SW, PH, PW, y, argmax, n):
    """Image n: x (N, C, H, W) -> y (N, C, OH, OW), argmax (N, C, OH, OW) int64 (h*W + w)."""
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for c in range(C):
        for oh in range(OH):
            top = oh * SH - PH
            for ow in range(OW):
                left = ow * SW - PW
                best = -numpy.inf
                best_index = max(top, 0) * W + max(left, 0)  # the window's first real pixel
                for kh in range(KH):
                    h = top + kh
                    if h < 0 or h >= H:
                        continue
                    for kw in range(KW):
                        w = left + kw
                        if w < 0 or w >= W:
                            continue
                        v = x[n, c, h, w]
                        if v > best or numpy.isnan(v):       # strictly greater: first max wins
                            best = v
                            best_index = h * W + w
                y[n, c, oh, ow] = best
                argmax[n, c, oh, ow] = best_index


@njit(nogil=True, cache=True)
def _backward(gy, argmax, gx, n):
    """Image n: gy, argmax (N, C, OH, OW) -> gx (N, C, H*W), zero on entry:
    gx[n, c, argmax] += gy, output by output in (oh, ow) order."""
    N, C, OH, OW = gy.shape
    for c in range(C):
        for oh in range(OH):
            for ow in range(OW):
                gx[n, c, argmax[n, c, oh, ow]] += gy[n, c, oh, ow]


def max_pool2d_forward(x, kernel_size, stride, padding):
    """x (N, C, H, W) -> y (N, C, OH, OW) of x's dtype, argmax (N, C, OH, OW) int64."""
    (KH, KW), (SH, SW), (PH, PW), (OH, OW) = window_geometry("max_pool2d", x.shape, kernel_size,
                                                             stride, padding)
    N, C, H, W = x.shape
    x = numpy.ascontiguousarray(x)
    y = numpy.empty((N, C, OH, OW), dtype=x.dtype)
    argmax = numpy.empty((N, C, OH, OW), dtype=numpy.int64)
    share(N, lambda: lambda n: _forward(x, KH, KW, SH, SW, PH, PW, y, argmax, n))
    return y, argmax


def max_pool2d_backward(gy, argmax, x_shape):
    """gy, argmax (N, C, OH, OW) -> gx (N, C, H, W): each gy added at its argmax."""
    N, C, H, W = x_shape
    gy = numpy.ascontiguousarray(gy)
    gx = numpy.zeros((N, C, H * W), dtype=gy.dtype)
    argmax = numpy.ascontiguousarray(argmax, dtype=numpy.int64)
    share(N, lambda: lambda n: _backward(gy, argmax, gx, n))
    return gx.reshape(N, C, H, W)
