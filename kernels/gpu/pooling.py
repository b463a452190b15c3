"""Max pooling on the GPU: forward one thread per output, backward one thread per output too.

The readable NumPy twins are in tinyres/functional/pooling.py; names as there (N, C, H, W, KH, KW,
SH, SW, PH, PW, OH, OW).

Forward. Thread i owns output (n, c, oh, ow). Its window starts at row top = oh*SH - PH and
column left = ow*SW - PW (negative inside the padding); the thread scans the KH*KW offsets,
skipping positions in the padding (they are -inf, so they could never win), and keeps the
largest value and its flat index h*W + w in the (H, W) plane: the `argmax` the backward needs.
As in the reference, the running best is replaced only when a value is *strictly* greater (ties
go to the first in scan order: kh, then kw), or when it is NaN (NaNs propagate).

Backward. The gradient of output (n, c, oh, ow) goes, whole, to the input at argmax[n, c, oh, ow].
Two ways to write it:

    gather   one thread per input pixel, summing gy over the windows that chose it. Deterministic,
             but the thread must know which windows cover its pixel, i.e. the kernel size,
             stride and padding, and `max_pool2d_backward(gy, argmax, x_shape)` is given only
             argmax (without the geometry a thread would have to scan every output of its
             plane: OH*OW reads per pixel).
    scatter  one thread per output, adding its gy at its argmax with an atomic add.

We scatter. An atomic add makes "read, add, write back" one indivisible step, so two threads
that picked the same pixel cannot lose each other's update. Collisions only happen where windows
overlap (stride < kernel; in ResNet's 3x3 stride-2 pool at most 4 windows share a pixel), so the
atomics rarely wait. The price: where several windows chose one pixel, the order of their float
additions depends on thread scheduling, so that pixel's gradient can differ in its last bit from
run to run (and from the reference, which adds in index order). Every other pixel is exact.
"""
import math

from numba import cuda, float32, int64

from ..geometry import window_geometry
from .launch import DTYPES, array_module, check_float, launch_per_element  # noqa: F401 (declared)


@cuda.jit
def max_pool_forward_kernel(x, y, argmax, KH, KW, SH, SW, PH, PW):
    """x (N, C, H, W) -> y, argmax (N, C, OH, OW); thread i computes the i-th output."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    OH, OW = y.shape[2], y.shape[3]
    i = cuda.grid(1)
    if i >= y.size:
        return
    # i = ((n*C + c)*OH + oh)*OW + ow
    ow = i % OW
    oh = (i // OW) % OH
    c = (i // (OW * OH)) % C
    n = i // (OW * OH * C)
    top = oh * SH - PH                          # the window's first row (may be in the padding)
    left = ow * SW - PW                         # and its first column
    best = float32(-math.inf)
    # start at the window's first real pixel (as the reference does, for a window of all -inf)
    best_index = max(top, 0) * W + max(left, 0)
    for kh in range(KH):
        h = top + kh
        if h < 0 or h >= H:
            continue                            # padding row: -inf never wins
        for kw in range(KW):
            w = left + kw
            if w < 0 or w >= W:
                continue
            value = x[n, c, h, w]
            if value > best or value != value:  # strictly greater (first max wins), or NaN
                best = value
                best_index = h * W + w
    y[n, c, oh, ow] = best
    argmax[n, c, oh, ow] = best_index


@cuda.jit
def max_pool_backward_kernel(gy, argmax, gx):
    """gy, argmax (N*C, OH*OW), gx (N*C, H*W) zeroed; thread i sends gy of the i-th output to
    the pixel its window chose. Each row of these 2-D views is one (n, c) plane."""
    OHOW = gy.shape[1]
    i = cuda.grid(1)
    if i >= gy.size:
        return
    plane, j = i // OHOW, i % OHOW
    # += that other threads may be doing on the same pixel at the same time: must be atomic
    cuda.atomic.add(gx, (plane, argmax[plane, j]), gy[plane, j])


# The exact argument types of each kernel for float32 data (checked by the simulator tests and
# compiled to PTX in CI).
FLOAT32_SIGNATURES = {
    max_pool_forward_kernel: (float32[:, :, :, ::1], float32[:, :, :, ::1],
                              int64[:, :, :, ::1]) + (int64,) * 6,
    max_pool_backward_kernel: (float32[:, ::1], int64[:, ::1], float32[:, ::1]),
}


# ----------------------------------------------------------------------------------------------
# Host functions: same names, signatures and results as tinyres.functional.pooling's twins
# ----------------------------------------------------------------------------------------------
def max_pool2d_forward(x, kernel_size, stride, padding):
    """x (N, C, H, W) -> y (N, C, OH, OW), argmax (N, C, OH, OW) int64 (index h*W + w)."""
    xp = array_module(x)
    check_float("max_pool2d_forward", x)
    (KH, KW), (SH, SW), (PH, PW), (OH, OW) = window_geometry("max_pool2d", x.shape, kernel_size,
                                                             stride, padding)
    N, C = x.shape[0], x.shape[1]
    x = xp.ascontiguousarray(x)
    y = xp.empty((N, C, OH, OW), dtype=x.dtype)
    argmax = xp.empty((N, C, OH, OW), dtype=xp.int64)
    launch_per_element(max_pool_forward_kernel, y.size, x, y, argmax, KH, KW, SH, SW, PH, PW)
    return y, argmax


def max_pool2d_backward(gy, argmax, x_shape):
    """gy, argmax (N, C, OH, OW) -> gx (N, C, H, W): each gy added at its window's argmax."""
    xp = array_module(gy)
    check_float("max_pool2d_backward", gy)
    N, C, H, W = (int(s) for s in x_shape)
    if gy.shape != argmax.shape or gy.shape[:2] != (N, C):
        raise ValueError(f"max_pool2d_backward: gy {tuple(gy.shape)} and argmax "
                         f"{tuple(argmax.shape)} must have one shape (N, C, OH, OW) with "
                         f"(N, C) = {(N, C)} of x_shape {(N, C, H, W)}")
    planes, outputs = N * C, gy.shape[2] * gy.shape[3]
    gy = xp.ascontiguousarray(gy).reshape(planes, outputs)                     # (N*C, OH*OW)
    argmax = xp.ascontiguousarray(argmax, dtype=xp.int64).reshape(planes, outputs)
    gx = xp.zeros((planes, H * W), dtype=gy.dtype)           # atomics add onto zeros
    launch_per_element(max_pool_backward_kernel, gy.size, gy, argmax, gx)
    return gx.reshape(N, C, H, W)
