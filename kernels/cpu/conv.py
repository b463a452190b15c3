"""Convolution on the CPU: im2col, col2im, and the whole conv as Numba kernels around BLAS.

The readable NumPy twins are in tinyres/functional/conv.py; read them first. Dimensions as there:

    N  batch       C  input channels     OC  output channels     H, W  input height, width
    KH, KW  kernel        SH, SW  stride        PH, PW  zero padding on each side
    OH, OW  output height, width           K = C*KH*KW  (one column per channel and offset)
    P = OH*OW  output pixels per image

im2col / col2im below fill exactly the reference's layout, (N*OH*OW, C*KH*KW): they are faithful
twins, for whoever calls them directly.

The training path calls the twins of the whole convolution, `conv2d_forward` and
`conv2d_backward`, which check the arguments as the reference does and take one of two routes
to the same numbers:

    float32, 3x3 filters, stride 1,             conv_winograd.py   Winograd's F(4x4, 3x3), or
    even output sizes                                              F(2x2, 3x3) where the output
                                                                   is not in 4x4 tiles or the
                                                                   layer is wider than 128
    every other convolution, and every          conv_gemm.py       im2col + GEMM by chunks
    float64 one

float64 is the type of gradient checks, whose finite differences divide the forward's rounding by
a step of about 1e-5: Winograd's transforms round some ten times more than im2col's dot
products, so float64 keeps im2col's exactness (as cuDNN and PyTorch take a direct route for
double). Both routes take one signature, forward(x, weight, geometry) and
backward(gy, x, weight, geometry, input_grad), the geometry window_geometry's, and run in chunks
of images whose working set stays in a core's caches, the chunks shared among the threads
(layout.run_chunks), with layout copies from layout.py. Matrix products stay in BLAS
(numpy.matmul). The kernels take float32 and float64 data (DTYPES): tinyres.dispatch sends any
other type to the reference, and a direct call with another is refused. This module never
imports tinyres.
"""
import numpy
from numba import njit

from ..geometry import window_geometry
from . import conv_gemm, conv_winograd
from .layout import kernel_array
from .threads import share

DTYPES = (numpy.float32, numpy.float64)


def _float_array(op, a):
    """a, checked to be of one of DTYPES (the types the kernels are compiled for)."""
    if a.dtype not in DTYPES:
        raise TypeError(f"{op} (CPU kernel): expected float32 or float64 data, got {a.dtype}")
    return a


# ----------------------------------------------------------------------------------------------
# The faithful twins: im2col and col2im in the reference's (N*OH*OW, C*KH*KW) layout
# ----------------------------------------------------------------------------------------------
@njit(nogil=True, cache=True)
def _im2col_rows(x, n, KH, KW, SH, SW, PH, PW, cols):
    """The rows of image n: x (N, C, H, W) -> cols (N*OH*OW, C*KH*KW), one row per output
    pixel (n, oh, ow), its columns ordered (c, kh, kw)."""
    N, C, H, W = x.shape
    OH = (H + 2 * PH - KH) // SH + 1
    OW = (W + 2 * PW - KW) // SW + 1
    for oh in range(OH):
        for ow in range(OW):
            row = (n * OH + oh) * OW + ow
            for c in range(C):
                for kh in range(KH):
                    h = oh * SH - PH + kh
                    for kw in range(KW):
                        w = ow * SW - PW + kw
                        col = (c * KH + kh) * KW + kw
                        if 0 <= h < H and 0 <= w < W:
                            cols[row, col] = x[n, c, h, w]
                        else:
                            cols[row, col] = 0.0              # the zero padding


@njit(nogil=True, cache=True)
def _col2im_rows(cols, n, KH, KW, SH, SW, PH, PW, x):
    """Image n of the adjoint: x[n] (C, H, W), zero on entry, += every entry of its rows of
    cols, offset by offset in the reference's order (kh, then kw), so the sums are bit for bit
    the reference's."""
    N, C, H, W = x.shape
    OH = (H + 2 * PH - KH) // SH + 1
    OW = (W + 2 * PW - KW) // SW + 1
    for c in range(C):
        for kh in range(KH):
            for kw in range(KW):
                col = (c * KH + kh) * KW + kw
                for oh in range(OH):
                    h = oh * SH - PH + kh
                    if h < 0 or h >= H:
                        continue
                    for ow in range(OW):
                        w = ow * SW - PW + kw
                        if 0 <= w < W:
                            x[n, c, h, w] += cols[(n * OH + oh) * OW + ow, col]


def im2col(x, kernel_size, stride=1, padding=0):
    """x (N, C, H, W) -> cols (N*OH*OW, C*KH*KW), as the reference; one image per part."""
    N, C, H, W = x.shape
    (KH, KW), (SH, SW), (PH, PW), (OH, OW) = window_geometry(
        "im2col", x.shape, kernel_size, stride, padding)
    x = numpy.ascontiguousarray(_float_array("im2col", x))
    cols = numpy.empty((N * OH * OW, C * KH * KW), dtype=x.dtype)
    share(N, lambda: lambda n: _im2col_rows(x, n, KH, KW, SH, SW, PH, PW, cols))
    return cols


def col2im(cols, x_shape, kernel_size, stride=1, padding=0):
    """cols (N*OH*OW, C*KH*KW) -> (N, C, H, W), the adjoint of im2col, as the reference."""
    N, C, H, W = x_shape
    (KH, KW), (SH, SW), (PH, PW), (OH, OW) = window_geometry(
        "col2im", x_shape, kernel_size, stride, padding)
    cols = numpy.ascontiguousarray(_float_array("col2im", cols)).reshape(N * OH * OW, C * KH * KW)
    x = numpy.zeros((N, C, H, W), dtype=cols.dtype)
    share(N, lambda: lambda n: _col2im_rows(cols, n, KH, KW, SH, SW, PH, PW, x))
    return x


# ----------------------------------------------------------------------------------------------
# The conv twins: check as the reference does, then one of the two routes
# ----------------------------------------------------------------------------------------------
def route(geometry, dtype):
    """The module that convolves data of `dtype` with this geometry: conv_winograd for the
    float32 convolutions it covers, conv_gemm for every other (float64 among them)."""
    if dtype == numpy.float32 and conv_winograd.applies(geometry):
        return conv_winograd
    return conv_gemm


def conv2d_forward(x, weight, stride, padding):
    """y = conv(x, weight): x (N, C, H, W), weight (OC, C, KH, KW) -> y (N, OC, OH, OW) with
    channels-last memory (layout.py), no bias (the Function adds it)."""
    geometry = window_geometry("conv2d", x.shape, weight.shape[2:], stride, padding)
    x = kernel_array(_float_array("conv2d", x))
    return route(geometry, x.dtype).forward(x, weight, geometry)


def conv2d_backward(gy, x, weight, stride, padding, input_grad=True):
    """gy (N, OC, OH, OW), x and weight as in the forward, each of either memory layout ->
    (gx (channels-last memory) or None, gweight)."""
    geometry = window_geometry("conv2d", x.shape, weight.shape[2:], stride, padding)
    gy = kernel_array(_float_array("conv2d", gy))
    x = kernel_array(x.astype(gy.dtype, copy=False))
    return route(geometry, gy.dtype).backward(gy, x, weight, geometry, input_grad)
