"""Convolution on the CPU: im2col, col2im, and the whole conv as Numba kernels around BLAS.

The readable NumPy twins are in tinyres/functional/conv.py; read them first. Dimensions as there:

    N  batch       C  input channels     OC  output channels     H, W  input height, width
    KH, KW  kernel        SH, SW  stride        PH, PW  zero padding on each side
    OH, OW  output height, width           K = C*KH*KW  (one column per channel and offset)
    P = OH*OW  output pixels per image

im2col / col2im below fill exactly the reference's layout, (N*OH*OW, C*KH*KW), one Numba thread
per (image, output row) or per (image, channel) plane: they are faithful twins.

But the speed of a convolution is not decided by im2col alone. For ResNet-20's first stage
(N = 128, C = OC = 16, 32x32 maps) the full cols matrix is 128*1024 x 144 floats = 75 MB, about
ten times the image it was copied from. Writing it, then reading it back for the matrix product,
then keeping it until the backward pass costs more memory traffic (and memory) than the GEMM costs
arithmetic: the product (16 x 144) @ (144 x 131072) runs at a quarter of the BLAS peak because
every column of cols is used by only 16 filters, then thrown out of the cache.

So `conv2d_forward` and `conv2d_backward` (the twins of the whole Conv2d op) do the same math in
*chunks* of B images at a time, sized so that a chunk's columns fit in the CPU's caches:

    for every chunk of B images:
        cols  = unfold(x[chunk])            (K, B, OH, OW)   ~ 1 MB: stays in the cache
        y     = W2 @ cols                   (OC, K) @ (K, B*P) -> (OC, B*P), one BLAS GEMM
        y[chunk] = that, as (B, OC, OH, OW) (a copy inside the cache)

The chunk's columns are laid out (K, B, OH, OW), "one row per (channel, offset)", the layout
of torch's `unfold`: the copy for one (c, kh, kw) is then a run of contiguous pixels of one input
row, which the compiler turns into vector loads, and the GEMM's result is channel-major, one
short copy away from NCHW. The backward recomputes each chunk's columns instead of keeping 75 MB
per layer from the forward pass: memory stays at the size of the activations, as PyTorch's.

Everything here is plain arrays; GEMMs stay in BLAS (numpy.matmul). This module never imports
tinyres.
"""
import numbers

import numpy
from numba import njit, prange

# Bytes of columns per chunk. Small enough to stay in the 1-2 MB L2 cache of a core plus the
# shared L3, large enough that each GEMM is big (B*P >= 1024 columns) and the Python loop over
# chunks costs nothing. Tuned on a 2-core AVX-512 machine (docs/performance.md).
CHUNK_BYTES = 1 << 20


def _pair(value):
    if isinstance(value, numbers.Integral):
        return int(value), int(value)
    first, second = value
    return int(first), int(second)


def geometry(op, x_shape, kernel_size, stride, padding):
    """(N, C, H, W), (KH, KW), (SH, SW), (PH, PW), (OH, OW), raising as the reference does."""
    N, C, H, W = x_shape
    (KH, KW), (SH, SW), (PH, PW) = _pair(kernel_size), _pair(stride), _pair(padding)
    OH = (H + 2 * PH - KH) // SH + 1 if SH > 0 else 0
    OW = (W + 2 * PW - KW) // SW + 1 if SW > 0 else 0
    if SH < 1 or SW < 1 or PH < 0 or PW < 0 or OH < 1 or OW < 1:
        raise ValueError(f"{op}: kernel {KH}x{KW}, stride ({SH}, {SW}), padding ({PH}, {PW}) "
                         f"give no output positions on an input of shape {tuple(x_shape)}")
    return (N, C, H, W), (KH, KW), (SH, SW), (PH, PW), (OH, OW)


def _float_array(op, a):
    """A C-contiguous float32 / float64 array (the two types the kernels are compiled for)."""
    if a.dtype not in (numpy.float32, numpy.float64):
        raise TypeError(f"{op} (CPU kernel): expected float32 or float64 data, got {a.dtype}")
    return numpy.ascontiguousarray(a)


# ----------------------------------------------------------------------------------------------
# The faithful twins: im2col and col2im in the reference's (N*OH*OW, C*KH*KW) layout
# ----------------------------------------------------------------------------------------------
@njit(parallel=True, cache=True)
def _im2col_rows(x, KH, KW, SH, SW, PH, PW, cols):
    """x (N, C, H, W) -> cols (N*OH*OW, C*KH*KW); thread t fills the rows of output row
    (n, oh) = divmod(t, OH): its OW patches, one row of cols each."""
    N, C, H, W = x.shape
    OH = (H + 2 * PH - KH) // SH + 1
    OW = (W + 2 * PW - KW) // SW + 1
    for t in prange(N * OH):
        n, oh = t // OH, t % OH
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


@njit(parallel=True, cache=True)
def _col2im_rows(cols, KH, KW, SH, SW, PH, PW, x):
    """cols (N*OH*OW, C*KH*KW) -> x (N, C, H, W), which must be zero on entry. Thread t owns the
    plane (n, c) = divmod(t, C), so no two threads add into the same pixel; within the plane the
    offsets are added in the reference's order (kh, then kw), so the sums are bit for bit its."""
    N, C, H, W = x.shape
    OH = (H + 2 * PH - KH) // SH + 1
    OW = (W + 2 * PW - KW) // SW + 1
    for t in prange(N * C):
        n, c = t // C, t % C
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
    """x (N, C, H, W) -> cols (N*OH*OW, C*KH*KW), as the reference."""
    (N, C, H, W), (KH, KW), (SH, SW), (PH, PW), (OH, OW) = geometry(
        "im2col", x.shape, kernel_size, stride, padding)
    x = _float_array("im2col", x)
    cols = numpy.empty((N * OH * OW, C * KH * KW), dtype=x.dtype)
    _im2col_rows(x, KH, KW, SH, SW, PH, PW, cols)
    return cols


def col2im(cols, x_shape, kernel_size, stride=1, padding=0):
    """cols (N*OH*OW, C*KH*KW) -> (N, C, H, W), the adjoint of im2col, as the reference."""
    (N, C, H, W), (KH, KW), (SH, SW), (PH, PW), (OH, OW) = geometry(
        "col2im", x_shape, kernel_size, stride, padding)
    cols = _float_array("col2im", cols).reshape(N * OH * OW, C * KH * KW)
    x = numpy.zeros((N, C, H, W), dtype=cols.dtype)
    _col2im_rows(cols, KH, KW, SH, SW, PH, PW, x)
    return x


# ----------------------------------------------------------------------------------------------
# The conv twins: chunks of images, columns laid out (K, B, OH, OW)
# ----------------------------------------------------------------------------------------------
@njit(cache=True)
def _valid_columns(kw, SW, PW, OW, W):
    """The output columns ow whose input column ow*SW - PW + kw lies inside the image:
    lo <= ow < hi (the rest read the zero padding)."""
    lo = 0
    while lo < OW and lo * SW - PW + kw < 0:
        lo += 1
    hi = OW
    while hi > lo and (hi - 1) * SW - PW + kw >= W:
        hi -= 1
    return lo, hi


@njit(parallel=True, cache=True)
def _unfold(x, n0, KH, KW, SH, SW, PH, PW, cols):
    """cols[(c, kh, kw), b, oh, ow] = x_padded[n0 + b, c, oh*SH + kh, ow*SW + kw]:
    x (N, C, H, W) -> cols (C*KH*KW, B, OH, OW) for the B images from n0.
    Thread t copies the KH*KW shifted copies of the plane (b, c) = divmod(t, C)."""
    N, C, H, W = x.shape
    K, B, OH, OW = cols.shape
    for t in prange(B * C):
        b, c = t // C, t % C
        for kh in range(KH):
            for kw in range(KW):
                k = (c * KH + kh) * KW + kw
                lo, hi = _valid_columns(kw, SW, PW, OW, W)
                for oh in range(OH):
                    h = oh * SH - PH + kh
                    if h < 0 or h >= H:                       # a row of padding
                        cols[k, b, oh, :] = 0.0
                        continue
                    cols[k, b, oh, :lo] = 0.0
                    for ow in range(lo, hi):                  # stride 1: a contiguous run
                        cols[k, b, oh, ow] = x[n0 + b, c, h, ow * SW - PW + kw]
                    cols[k, b, oh, hi:] = 0.0


@njit(parallel=True, cache=True)
def _fold(gcols, n0, KH, KW, SH, SW, PH, PW, gx):
    """The adjoint of _unfold: gx[n0 + b] = the sum of every column entry copied from it.
    gcols (C*KH*KW, B, OH, OW) -> gx (N, C, H, W), images n0 .. n0+B overwritten.
    Thread t owns the plane (b, c), so there are no races; offsets are added in (kh, kw)
    order, as the reference col2im adds them."""
    N, C, H, W = gx.shape
    K, B, OH, OW = gcols.shape
    for t in prange(B * C):
        b, c = t // C, t % C
        gx[n0 + b, c, :, :] = 0.0
        for kh in range(KH):
            for kw in range(KW):
                k = (c * KH + kh) * KW + kw
                lo, hi = _valid_columns(kw, SW, PW, OW, W)
                for oh in range(OH):
                    h = oh * SH - PH + kh
                    if h < 0 or h >= H:
                        continue
                    for ow in range(lo, hi):
                        gx[n0 + b, c, h, ow * SW - PW + kw] += gcols[k, b, oh, ow]


@njit(parallel=True, cache=True)
def _channel_major_to_nchw(src, n0, dst):
    """src (OC, B, P) -> dst[n0 : n0+B] (N, OC, P)."""
    OC, B, P = src.shape
    for t in prange(B * OC):
        b, o = t // OC, t % OC
        dst[n0 + b, o, :] = src[o, b, :]


@njit(parallel=True, cache=True)
def _nchw_to_channel_major(src, n0, dst):
    """src[n0 : n0+B] (N, OC, P) -> dst (OC, B, P)."""
    OC, B, P = dst.shape
    for t in prange(B * OC):
        b, o = t // OC, t % OC
        dst[o, b, :] = src[n0 + b, o, :]


def _chunk(N, K, P, itemsize):
    """Images per chunk: as many as fit CHUNK_BYTES of columns (at least 1, at most N)."""
    return max(1, min(N, CHUNK_BYTES // max(1, K * P * itemsize)))


def conv2d_forward(x, weight, stride, padding):
    """y = conv(x, weight): x (N, C, H, W), weight (OC, C, KH, KW) -> y (N, OC, OH, OW),
    C-contiguous, no bias (the Function adds it)."""
    OC, C, KH, KW = weight.shape
    (N, _, H, W), _, (SH, SW), (PH, PW), (OH, OW) = geometry(
        "conv2d", x.shape, (KH, KW), stride, padding)
    x = _float_array("conv2d", x)
    K, P = C * KH * KW, OH * OW
    w2 = numpy.ascontiguousarray(weight, dtype=x.dtype).reshape(OC, K)
    y = numpy.empty((N, OC, P), dtype=x.dtype)
    B = _chunk(N, K, P, x.itemsize)
    for n0 in range(0, N, B):
        b = min(B, N - n0)
        if n0 == 0 or b != B:                                  # the last chunk may be smaller
            cols = numpy.empty((K, b, OH, OW), dtype=x.dtype)
            out = numpy.empty((OC, b * P), dtype=x.dtype)
        _unfold(x, n0, KH, KW, SH, SW, PH, PW, cols)           # (K, b, OH, OW)
        if b == 1:                                             # (OC, P) is already NCHW
            numpy.matmul(w2, cols.reshape(K, P), out=y[n0])
        else:
            numpy.matmul(w2, cols.reshape(K, b * P), out=out)  # (OC, b*P)
            _channel_major_to_nchw(out.reshape(OC, b, P), n0, y)
    return y.reshape(N, OC, OH, OW)


def conv2d_backward(gy, x, weight, stride, padding, input_grad=True):
    """gy (N, OC, OH, OW), x and weight as in the forward -> (gx or None, gweight)."""
    OC, C, KH, KW = weight.shape
    (N, _, H, W), _, (SH, SW), (PH, PW), (OH, OW) = geometry(
        "conv2d", x.shape, (KH, KW), stride, padding)
    gy = _float_array("conv2d", gy).reshape(N, OC, OH * OW)
    x = numpy.ascontiguousarray(x, dtype=gy.dtype)
    K, P = C * KH * KW, OH * OW
    w2 = numpy.ascontiguousarray(weight, dtype=gy.dtype).reshape(OC, K)
    gw = numpy.zeros((OC, K), dtype=gy.dtype)
    gx = numpy.empty((N, C, H, W), dtype=gy.dtype) if input_grad else None
    B = _chunk(N, K, P, gy.itemsize)
    for n0 in range(0, N, B):
        b = min(B, N - n0)
        if n0 == 0 or b != B:                                  # the last chunk may be smaller
            cols = numpy.empty((K, b, OH, OW), dtype=gy.dtype)
            gcols = numpy.empty((K, b, OH, OW), dtype=gy.dtype)
            gy_cm = numpy.empty((OC, b, P), dtype=gy.dtype)
        _unfold(x, n0, KH, KW, SH, SW, PH, PW, cols)           # recomputed, not kept
        if b == 1:
            g2 = gy[n0]                                        # (OC, P) is already channel-major
        else:
            _nchw_to_channel_major(gy, n0, gy_cm)              # (OC, b, P)
            g2 = gy_cm.reshape(OC, b * P)
        gw += g2 @ cols.reshape(K, b * P).T                    # (OC, K)
        if input_grad:
            numpy.matmul(w2.T, g2, out=gcols.reshape(K, b * P))
            _fold(gcols, n0, KH, KW, SH, SW, PH, PW, gx)
    return gx, gw.reshape(weight.shape)
