"""Convolution on the CPU: im2col, col2im, and the whole conv as Numba kernels around BLAS.

The readable NumPy twins are in tinyres/functional/conv.py; read them first. Dimensions as there:

    N  batch       C  input channels     OC  output channels     H, W  input height, width
    KH, KW  kernel        SH, SW  stride        PH, PW  zero padding on each side
    OH, OW  output height, width           K = C*KH*KW  (one column per channel and offset)
    P = OH*OW  output pixels per image

im2col / col2im below fill exactly the reference's layout, (N*OH*OW, C*KH*KW): they are faithful
twins, for whoever calls them directly.

The training path calls the twins of the whole convolution, `conv2d_forward` and
`conv2d_backward`, because the speed of a convolution is decided by memory, not by im2col's
arithmetic (it has none). For ResNet-20's first stage (N = 128, C = OC = 16, 32x32 maps) the
full cols matrix is 128*1024 x 144 floats = 75 MB, nine times the image it was copied from.
Writing it, reading it back for the matrix product, and keeping it for the backward pass costs
more time (and memory) than the product's arithmetic: (16 x 144) @ (144 x 131072) runs at a
quarter of the BLAS peak, because every column of cols is used by only 16 filters and then
thrown out of the cache. So the twins do the same math in *chunks* of B images at a time, sized
so that a chunk's columns (about CHUNK_COLUMNS of them) stay in the CPU's caches:

    for every chunk of B images:
        cols  = unfold(x[chunk])            (K, B, OH, OW)   stays in the cache
        y     = W2 @ cols                   (OC, K) @ (K, B*P) -> (OC, B*P): one BLAS GEMM
        y[chunk] = that, as (B, OC, OH, OW) (a copy inside the cache)

The chunk's columns are laid out (K, B, OH, OW), "one row per (channel, offset)" (the layout of
torch's `unfold`). To fill them, a thread copies one (image, channel) plane into a small
zero-padded buffer; each of the KH*KW rows it then writes is a set of contiguous runs of that
buffer, with no test for the padding in the loop, which the compiler turns into vector copies.

The backward recomputes each chunk's columns instead of keeping 75 MB per layer from the
forward pass (memory stays at the size of the activations, as in PyTorch), and computes

    gweight^T += cols @ gy_chunk^T          (K, B*P) @ (B*P, OC)  (the faster orientation)
    gx = for stride 1: the convolution of gy, padded by KH-1-PH, with the filters flipped and
         their in/out channels swapped ("a transposed convolution is a convolution"): one more
         unfold and GEMM, written straight into gx, instead of the scatter-add of col2im;
         for strides > 1: gcols = W2^T @ gy_chunk, then fold (col2im) into gx.

Everything here is plain arrays; GEMMs stay in BLAS (numpy.matmul). Other float types than
float32 / float64 are refused (the reference handles them). This module never imports tinyres.
"""
import numbers

import numpy
from numba import njit

from .threads import share

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
    (N, C, H, W), (KH, KW), (SH, SW), (PH, PW), (OH, OW) = geometry(
        "im2col", x.shape, kernel_size, stride, padding)
    x = _float_array("im2col", x)
    cols = numpy.empty((N * OH * OW, C * KH * KW), dtype=x.dtype)
    share(N, lambda: lambda n: _im2col_rows(x, n, KH, KW, SH, SW, PH, PW, cols))
    return cols


def col2im(cols, x_shape, kernel_size, stride=1, padding=0):
    """cols (N*OH*OW, C*KH*KW) -> (N, C, H, W), the adjoint of im2col, as the reference."""
    (N, C, H, W), (KH, KW), (SH, SW), (PH, PW), (OH, OW) = geometry(
        "col2im", x_shape, kernel_size, stride, padding)
    cols = _float_array("col2im", cols).reshape(N * OH * OW, C * KH * KW)
    x = numpy.zeros((N, C, H, W), dtype=cols.dtype)
    share(N, lambda: lambda n: _col2im_rows(cols, n, KH, KW, SH, SW, PH, PW, x))
    return x


# ----------------------------------------------------------------------------------------------
# The conv twins: chunks of images, columns laid out (K, B, OH, OW)
# ----------------------------------------------------------------------------------------------
# Columns per chunk (B = CHUNK_COLUMNS // (OH*OW) images, at least one). Small enough that a
# chunk's columns stay in a core's caches (1.2 MB for ResNet's first stage), large enough that
# each GEMM is big and the Python work per chunk is small. Tuned in docs/performance.md.
CHUNK_COLUMNS = 2048


@njit(nogil=True, cache=True)
def _unfold(x, n0, KH, KW, SH, SW, PH, PW, cols):
    """cols[(c, kh, kw), b, oh, ow] = x_padded[n0 + b, c, oh*SH + kh, ow*SW + kw]:
    x (N, C, H, W) -> cols (C*KH*KW, B, OH, OW) for the B images from n0.
    Plane by plane: a zero-padded copy of plane (n0 + b, c) first, then its KH*KW shifted
    windows, each row of which is a contiguous run of the padded copy (for stride 1)."""
    N, C, H, W = x.shape
    K, B, OH, OW = cols.shape
    padded = numpy.zeros((H + 2 * PH, W + 2 * PW), dtype=x.dtype)   # its border stays zero
    for b in range(B):
        for c in range(C):
            padded[PH:PH + H, PW:PW + W] = x[n0 + b, c]
            for kh in range(KH):
                for kw in range(KW):
                    k = (c * KH + kh) * KW + kw
                    for oh in range(OH):
                        source, target = padded[oh * SH + kh], cols[k, b, oh]
                        if SW == 1:
                            for ow in range(OW):
                                target[ow] = source[kw + ow]
                        else:
                            for ow in range(OW):
                                target[ow] = source[ow * SW + kw]


@njit(nogil=True, cache=True)
def _fold(gcols, n0, KH, KW, SH, SW, PH, PW, gx):
    """The adjoint of _unfold (col2im): gx[n0 + b] = the sum of every column entry copied from
    it. gcols (C*KH*KW, B, OH, OW) -> gx (N, C, H, W), images n0 .. n0+B overwritten.
    Plane by plane, into a zero-padded buffer, offsets in the reference's order (kh, then kw);
    then the buffer's inside is copied to gx."""
    N, C, H, W = gx.shape
    K, B, OH, OW = gcols.shape
    padded = numpy.empty((H + 2 * PH, W + 2 * PW), dtype=gx.dtype)
    for b in range(B):
        for c in range(C):
            padded[:, :] = 0.0
            for kh in range(KH):
                for kw in range(KW):
                    k = (c * KH + kh) * KW + kw
                    for oh in range(OH):
                        source, target = gcols[k, b, oh], padded[oh * SH + kh]
                        if SW == 1:
                            for ow in range(OW):
                                target[kw + ow] += source[ow]
                        else:
                            for ow in range(OW):
                                target[ow * SW + kw] += source[ow]
            gx[n0 + b, c] = padded[PH:PH + H, PW:PW + W]


@njit(nogil=True, cache=True)
def _channel_major_to_nchw(src, n0, dst):
    """src (M, B, P) -> dst[n0 : n0+B] (N, M, P)."""
    M, B, P = src.shape
    for b in range(B):
        for m in range(M):
            dst[n0 + b, m, :] = src[m, b, :]


@njit(nogil=True, cache=True)
def _nchw_to_channel_major(src, n0, dst):
    """src[n0 : n0+B] (N, M, P) -> dst (M, B, P)."""
    M, B, P = dst.shape
    for b in range(B):
        for m in range(M):
            dst[m, b, :] = src[n0 + b, m, :]


def _chunks(N, P):
    """(first image, images) of each chunk: CHUNK_COLUMNS // P images (at least 1) at a time."""
    B = max(1, min(N, CHUNK_COLUMNS // P))
    return [(n0, min(B, N - n0)) for n0 in range(0, N, B)]


def _scratch(dtype):
    """A thread's scratch buffers: buffer(name, shape) is the same array each time it is asked
    for with the same shape (a new one when the shape changes: the last, smaller chunk)."""
    buffers = {}

    def buffer(name, shape):
        if name not in buffers or buffers[name].shape != shape:
            buffers[name] = numpy.empty(shape, dtype=dtype)
        return buffers[name]
    return buffer


def _weight_matrix(weight, dtype):
    """(OC, C, KH, KW) -> a C-contiguous (OC, C*KH*KW) matrix of `dtype`."""
    return numpy.ascontiguousarray(weight, dtype=dtype).reshape(weight.shape[0], -1)


def _product_into_nchw(w2, cols, n0, out):
    """out[n0 : n0+B] = w2 @ cols, laid out NCHW: w2 (M, K), cols (K, B, ...) -> out (N, M, ...)."""
    M, K = w2.shape
    B = cols.shape[1]
    out3 = out.reshape(out.shape[0], M, -1)                    # (N, M, P)
    if B == 1:                                                 # (M, P) is already NCHW
        numpy.matmul(w2, cols.reshape(K, -1), out=out3[n0])
    else:
        product = w2 @ cols.reshape(K, -1)                     # (M, B*P)
        _channel_major_to_nchw(product.reshape(M, B, -1), n0, out3)


def conv2d_forward(x, weight, stride, padding):
    """y = conv(x, weight): x (N, C, H, W), weight (OC, C, KH, KW) -> y (N, OC, OH, OW),
    C-contiguous, no bias (the Function adds it). One chunk of images per part."""
    OC, C, KH, KW = weight.shape
    (N, _, H, W), _, (SH, SW), (PH, PW), (OH, OW) = geometry(
        "conv2d", x.shape, (KH, KW), stride, padding)
    x = _float_array("conv2d", x)
    w2 = _weight_matrix(weight, x.dtype)                       # (OC, K)
    y = numpy.empty((N, OC, OH, OW), dtype=x.dtype)
    chunks = _chunks(N, OH * OW)

    def make_worker():
        buffer = _scratch(x.dtype)

        def convolve(i):
            n0, B = chunks[i]
            cols = buffer("cols", (C * KH * KW, B, OH, OW))
            _unfold(x, n0, KH, KW, SH, SW, PH, PW, cols)
            _product_into_nchw(w2, cols, n0, y)                # (OC, K) @ (K, B*P)
        return convolve

    share(len(chunks), make_worker)
    return y


def conv2d_backward(gy, x, weight, stride, padding, input_grad=True):
    """gy (N, OC, OH, OW), x and weight as in the forward -> (gx or None, gweight).
    One chunk of images per part; the parts' weight gradients are added in chunk order, so the
    result does not depend on which thread did which chunk."""
    OC, C, KH, KW = weight.shape
    (N, _, H, W), _, (SH, SW), (PH, PW), (OH, OW) = geometry(
        "conv2d", x.shape, (KH, KW), stride, padding)
    gy = _float_array("conv2d", gy)
    x = numpy.ascontiguousarray(x, dtype=gy.dtype)
    K, P = C * KH * KW, OH * OW
    gx = numpy.empty((N, C, H, W), dtype=gy.dtype) if input_grad else None
    # stride 1: gx is a convolution of gy with the flipped, transposed filters (see the top)
    as_convolution = SH == SW == 1 and PH <= KH - 1 and PW <= KW - 1
    flipped = _weight_matrix(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3), gy.dtype)
    w2 = _weight_matrix(weight, gy.dtype)                      # (OC, K)
    gy3 = gy.reshape(N, OC, P)
    chunks = _chunks(N, P)
    gweight_parts = numpy.empty((len(chunks), K, OC), dtype=gy.dtype)

    def make_worker():
        buffer = _scratch(gy.dtype)

        def differentiate(i):
            n0, B = chunks[i]
            cols = buffer("cols", (K, B, OH, OW))
            _unfold(x, n0, KH, KW, SH, SW, PH, PW, cols)       # recomputed, not kept
            if B == 1:
                gy_chunk = gy3[n0]                             # (OC, P) is channel-major
            else:
                gy_chunk = buffer("gy", (OC, B, P))
                _nchw_to_channel_major(gy3, n0, gy_chunk)
            gy_chunk = gy_chunk.reshape(OC, B * P)
            numpy.matmul(cols.reshape(K, B * P), gy_chunk.T, out=gweight_parts[i])  # (K, OC)
            if not input_grad:
                return
            if as_convolution:
                gy_cols = buffer("gy_cols", (OC * KH * KW, B, H, W))
                _unfold(gy, n0, KH, KW, 1, 1, KH - 1 - PH, KW - 1 - PW, gy_cols)
                _product_into_nchw(flipped, gy_cols, n0, gx)   # (C, OC*KH*KW) @ (.., B*H*W)
            else:
                gcols = (w2.T @ gy_chunk).reshape(K, B, OH, OW)
                _fold(gcols, n0, KH, KW, SH, SW, PH, PW, gx)
        return differentiate

    share(len(chunks), make_worker)
    gweight = gweight_parts.sum(axis=0).T                      # (OC, K), chunk order
    return gx, numpy.ascontiguousarray(gweight).reshape(weight.shape)
