"""Convolution on the CPU: im2col, col2im, and the whole conv as Numba kernels around BLAS.

The readable NumPy twins are in tinyres/functional/conv.py; read them first. Dimensions as there:

    N  batch       C  input channels     OC  output channels     H, W  input height, width
    KH, KW  kernel        SH, SW  stride        PH, PW  zero padding on each side
    OH, OW  output height, width           K = C*KH*KW  (one column per channel and offset)
    P = OH*OW  output pixels per image

im2col / col2im below fill exactly the reference's layout, (N*OH*OW, C*KH*KW): they are faithful
twins, for whoever calls them directly.

The training path calls the twins of the whole convolution, `conv2d_forward` and
`conv2d_backward`, because the speed of a convolution is decided by memory more than by
arithmetic. For ResNet-20's first stage (N = 128, C = OC = 16, 32x32 maps) the full cols matrix
is 128*1024 x 144 floats = 75 MB, nine times the image it was copied from. Writing it, reading it
back for the matrix product and keeping it for the backward pass costs more time (and memory)
than the product itself. So the twins do the same math in *chunks* of B images, sized so that a
chunk's rows (about CHUNK_ROWS of them) stay in a core's caches, and the chunks are shared among
the threads (threads.py):

    for every chunk of B images:
        padded = x[chunk] as (B, H+2PH, W+2PW, C), zero border    channels last
        rows   = its patches, (B*OH*OW, KH*KW*C)                  stays in the cache
        y_rows = rows @ W2^T                  (B*P, K) @ (K, OC): one BLAS GEMM
        y[chunk] = y_rows as (B, OC, OH, OW)

It is the reference's computation (one row per patch, times the filters), with two changes of
layout that decide the speed:

  * The chunk is first copied channels-last. Then the KW*C numbers a patch needs from one input
    row are contiguous, and each row of `rows` is KH contiguous runs: vector copies, no test for
    the padding (the zero border is in the buffer).
  * So a row's columns are ordered (kh, kw, c), not (c, kh, kw); the filters are reordered the
    same way, W2 = weight.transpose(0, 2, 3, 1).reshape(OC, K) (a few KB).

Orientation matters to BLAS: with OC as small as 16, (B*P, K) @ (K, OC) runs at almost twice the
speed of the same product written (OC, K) @ (K, B*P) on the machine of docs/performance.md.

The backward recomputes each chunk's rows instead of keeping 75 MB per layer from the forward pass
(memory stays at the size of the activations, as PyTorch's), and per chunk:

    gy_rows  = gy[chunk] as (B*P, OC)
    gweight += gy_rows^T @ rows            (OC, K), added over the chunks in order
    grows    = gy_rows @ W2                (B*P, K), the gradient of each patch
    gx[chunk] = fold(grows): each patch's gradient added back where the patch came from

3x3 filters at stride 1 whose output splits into 2x2 tiles (all but two of a CIFAR ResNet's
convs) take another route to the same numbers: Winograd's F(2x2, 3x3) (winograd.py, at the end
of this file), 16 small GEMMs over transformed 4x4 tiles that do 4/9 of im2col's multiplications.
The chunks, the threads and the layout copies are the same; the patches become tile transforms.

Everything here is plain arrays; GEMMs stay in BLAS (numpy.matmul). The kernels take float32 and
float64 data (DTYPES): tinyres.dispatch sends any other type to the reference, and a direct
call with another is refused. This module never imports tinyres.
"""
import numpy
from numba import njit

from ..geometry import window_geometry
from . import winograd
from .threads import share


DTYPES = (numpy.float32, numpy.float64)


def _float_array(op, a):
    """A C-contiguous array of one of DTYPES (the types the kernels are compiled for)."""
    if a.dtype not in DTYPES:
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
    N, C, H, W = x.shape
    (KH, KW), (SH, SW), (PH, PW), (OH, OW) = window_geometry(
        "im2col", x.shape, kernel_size, stride, padding)
    x = _float_array("im2col", x)
    cols = numpy.empty((N * OH * OW, C * KH * KW), dtype=x.dtype)
    share(N, lambda: lambda n: _im2col_rows(x, n, KH, KW, SH, SW, PH, PW, cols))
    return cols


def col2im(cols, x_shape, kernel_size, stride=1, padding=0):
    """cols (N*OH*OW, C*KH*KW) -> (N, C, H, W), the adjoint of im2col, as the reference."""
    N, C, H, W = x_shape
    (KH, KW), (SH, SW), (PH, PW), (OH, OW) = window_geometry(
        "col2im", x_shape, kernel_size, stride, padding)
    cols = _float_array("col2im", cols).reshape(N * OH * OW, C * KH * KW)
    x = numpy.zeros((N, C, H, W), dtype=cols.dtype)
    share(N, lambda: lambda n: _col2im_rows(cols, n, KH, KW, SH, SW, PH, PW, x))
    return x


# ----------------------------------------------------------------------------------------------
# The conv twins: chunks of images, channels last, one row per patch
# ----------------------------------------------------------------------------------------------
# Rows (patches) per chunk: B = CHUNK_ROWS // (OH*OW) images, at least one. Small enough that a
# chunk's rows stay in a core's caches (590 KB for ResNet's first stage), large enough that each
# GEMM is big and the Python work per chunk is small (docs/performance.md).
CHUNK_ROWS = 1024


# The copies below that change the layout (NCHW <-> channels last) walk 1-D views (a row, or a
# strided column) with indices from 0: Numba then knows no index is negative, and the compiler
# turns the loops into vector instructions (twice as fast as indexing the 4-D arrays directly).
@njit(nogil=True, cache=True)
def _to_padded_channels_last(x, n0, PH, PW, padded):
    """padded[b, PH + h, PW + w, c] = x[n0 + b, c, h, w]: x (N, C, H, W) -> padded
    (B, H+2PH, W+2PW, C). The border is left as it is (zero: the buffer was made with zeros)."""
    N, C, H, W = x.shape
    for b in range(padded.shape[0]):
        for h in range(H):
            inside = padded[b, PH + h, PW:PW + W]                  # (W, C)
            for c in range(C):
                source, target = x[n0 + b, c, h], inside[:, c]
                for w in range(W):
                    target[w] = source[w]


@njit(nogil=True, cache=True)
def _patches(padded, KH, KW, SH, SW, rows):
    """rows[(b, oh, ow), (kh, kw, c)] = padded[b, oh*SH + kh, ow*SW + kw, c]:
    padded (B, Hp, Wp, C) -> rows (B*OH*OW, KH*KW*C). Row by row, each the KH runs of KW*C
    contiguous numbers of its window (1-D slices, so the copies become vector instructions)."""
    B, Hp, Wp, C = padded.shape
    OH, OW = (Hp - KH) // SH + 1, (Wp - KW) // SW + 1
    run = KW * C
    for b in range(B):
        for oh in range(OH):
            for kh in range(KH):
                line = padded[b, oh * SH + kh].reshape(Wp * C)     # one padded input row
                for ow in range(OW):
                    source = line[ow * SW * C: ow * SW * C + run]
                    target = rows[(b * OH + oh) * OW + ow, kh * run: kh * run + run]
                    for i in range(run):
                        target[i] = source[i]


@njit(nogil=True, cache=True)
def _fold_patches(grows, KH, KW, SH, SW, padded):
    """The adjoint of _patches: padded (B, Hp, Wp, C) = 0, then every patch's gradient added
    back where the patch was copied from (overlapping windows add)."""
    B, Hp, Wp, C = padded.shape
    OH, OW = (Hp - KH) // SH + 1, (Wp - KW) // SW + 1
    run = KW * C
    padded[...] = 0.0
    for b in range(B):
        for oh in range(OH):
            for kh in range(KH):
                line = padded[b, oh * SH + kh].reshape(Wp * C)
                for ow in range(OW):
                    target = line[ow * SW * C: ow * SW * C + run]
                    source = grows[(b * OH + oh) * OW + ow, kh * run: kh * run + run]
                    for i in range(run):
                        target[i] += source[i]


@njit(nogil=True, cache=True)
def _padded_channels_last_to_nchw(padded, n0, PH, PW, gx):
    """gx[n0 + b, c, h, w] = padded[b, PH + h, PW + w, c] (the inside, back to NCHW)."""
    N, C, H, W = gx.shape
    for b in range(padded.shape[0]):
        for h in range(H):
            inside = padded[b, PH + h, PW:PW + W]                  # (W, C)
            for c in range(C):
                source, target = inside[:, c], gx[n0 + b, c, h]
                for w in range(W):
                    target[w] = source[w]


@njit(nogil=True, cache=True)
def _rows_to_nchw(rows, n0, out):
    """out[n0 + b, m, p] = rows[b*P + p, m]: rows (B*P, M) -> out (N, M, P)."""
    N, M, P = out.shape
    for b in range(rows.shape[0] // P):
        image = rows[b * P:(b + 1) * P]                            # (P, M)
        for m in range(M):
            source, target = image[:, m], out[n0 + b, m]
            for p in range(P):
                target[p] = source[p]


@njit(nogil=True, cache=True)
def _nchw_to_rows(array, n0, rows):
    """rows[b*P + p, m] = array[n0 + b, m, p]: array (N, M, P) -> rows (B*P, M)."""
    N, M, P = array.shape
    for b in range(rows.shape[0] // P):
        image = rows[b * P:(b + 1) * P]                            # (P, M)
        for m in range(M):
            source, target = array[n0 + b, m], image[:, m]
            for p in range(P):
                target[p] = source[p]


def _chunks(N, P):
    """(first image, images) of each chunk: CHUNK_ROWS // P images (at least 1) at a time."""
    B = max(1, min(N, CHUNK_ROWS // P))
    return [(n0, min(B, N - n0)) for n0 in range(0, N, B)]


def _scratch(dtype):
    """A thread's scratch buffers: buffer(name, shape) is the same array each time it is asked
    for with the same shape, a new zero-filled one when the shape changes (the last chunk)."""
    buffers = {}

    def buffer(name, shape):
        if name not in buffers or buffers[name].shape != shape:
            buffers[name] = numpy.zeros(shape, dtype=dtype)
        return buffers[name]
    return buffer


def _filters_channels_last(weight, dtype):
    """weight (OC, C, KH, KW) -> W2 (OC, KH*KW*C), columns ordered (kh, kw, c) as a row's."""
    OC = weight.shape[0]
    return numpy.ascontiguousarray(weight.transpose(0, 2, 3, 1), dtype=dtype).reshape(OC, -1)


def conv2d_forward(x, weight, stride, padding):
    """y = conv(x, weight): x (N, C, H, W), weight (OC, C, KH, KW) -> y (N, OC, OH, OW),
    C-contiguous, no bias (the Function adds it). One chunk of images per part."""
    OC, C, KH, KW = weight.shape
    N, _, H, W = x.shape
    _, (SH, SW), (PH, PW), (OH, OW) = window_geometry("conv2d", x.shape, (KH, KW), stride, padding)
    x = _float_array("conv2d", x)
    if _winograd_applies(weight.shape, (SH, SW), (OH, OW)):
        return _winograd_forward(x, weight, (PH, PW), (OH, OW))
    w2 = _filters_channels_last(weight, x.dtype)               # (OC, K)
    y = numpy.empty((N, OC, OH * OW), dtype=x.dtype)
    chunks = _chunks(N, OH * OW)

    def make_worker():
        buffer = _scratch(x.dtype)

        def convolve(i):
            n0, B = chunks[i]
            padded = buffer("padded", (B, H + 2 * PH, W + 2 * PW, C))
            _to_padded_channels_last(x, n0, PH, PW, padded)
            rows = buffer("rows", (B * OH * OW, KH * KW * C))
            _patches(padded, KH, KW, SH, SW, rows)
            y_rows = buffer("y_rows", (B * OH * OW, OC))
            numpy.matmul(rows, w2.T, out=y_rows)               # (B*P, K) @ (K, OC)
            _rows_to_nchw(y_rows, n0, y)
        return convolve

    share(len(chunks), make_worker)
    return y.reshape(N, OC, OH, OW)


def conv2d_backward(gy, x, weight, stride, padding, input_grad=True):
    """gy (N, OC, OH, OW), x and weight as in the forward -> (gx or None, gweight).
    One chunk of images per part; the parts' weight gradients are added in chunk order, so the
    result does not depend on which thread did which chunk."""
    OC, C, KH, KW = weight.shape
    N, _, H, W = x.shape
    _, (SH, SW), (PH, PW), (OH, OW) = window_geometry("conv2d", x.shape, (KH, KW), stride, padding)
    gy = _float_array("conv2d", gy).reshape(N, OC, OH * OW)
    x = numpy.ascontiguousarray(x, dtype=gy.dtype)
    if _winograd_applies(weight.shape, (SH, SW), (OH, OW)):
        return _winograd_backward(gy.reshape(N, OC, OH, OW), x, weight, (PH, PW), (OH, OW),
                                  input_grad)
    w2 = _filters_channels_last(weight, gy.dtype)              # (OC, K)
    gx = numpy.empty((N, C, H, W), dtype=gy.dtype) if input_grad else None
    chunks = _chunks(N, OH * OW)
    gweight_parts = numpy.empty((len(chunks),) + w2.shape, dtype=gy.dtype)

    def make_worker():
        buffer = _scratch(gy.dtype)

        def differentiate(i):
            n0, B = chunks[i]
            padded = buffer("padded", (B, H + 2 * PH, W + 2 * PW, C))
            _to_padded_channels_last(x, n0, PH, PW, padded)
            rows = buffer("rows", (B * OH * OW, KH * KW * C))
            _patches(padded, KH, KW, SH, SW, rows)            # recomputed, not kept
            gy_rows = buffer("gy_rows", (B * OH * OW, OC))
            _nchw_to_rows(gy, n0, gy_rows)
            numpy.matmul(gy_rows.T, rows, out=gweight_parts[i])   # (OC, B*P) @ (B*P, K)
            if input_grad:
                grows = buffer("grows", rows.shape)
                numpy.matmul(gy_rows, w2, out=grows)           # (B*P, OC) @ (OC, K)
                gpadded = buffer("gpadded", padded.shape)      # (padded's border must stay 0)
                _fold_patches(grows, KH, KW, SH, SW, gpadded)
                _padded_channels_last_to_nchw(gpadded, n0, PH, PW, gx)
        return differentiate

    share(len(chunks), make_worker)
    gweight = gweight_parts.sum(axis=0).reshape(OC, KH, KW, C)     # chunk order
    return gx, numpy.ascontiguousarray(gweight.transpose(0, 3, 1, 2))


# ----------------------------------------------------------------------------------------------
# 3x3, stride 1: Winograd's F(2x2, 3x3) instead of im2col + GEMM (read winograd.py first)
# ----------------------------------------------------------------------------------------------
# A chunk's transformed tiles, V (16, T, C) or M (16, T, OC), take about this many bytes: small
# enough to stay in a core's cache between the transform and the GEMMs, large enough that each of
# the 16 BLAS calls is worth its overhead (ResNet-20's stages: 2, 4 and 8 images a chunk).
WINOGRAD_CHUNK_BYTES = 512 * 1024


def _winograd_applies(weight_shape, stride, out_size):
    """F(2x2, 3x3) covers 3x3 filters at stride 1 whose output splits into 2x2 tiles."""
    return (tuple(weight_shape[2:]) == (3, 3) and tuple(stride) == (1, 1)
            and out_size[0] % 2 == 0 and out_size[1] % 2 == 0)


def _winograd_chunks(N, OH, OW, channels, itemsize):
    """(first image, images) of each chunk, so that 16 * tiles * channels * itemsize is about
    WINOGRAD_CHUNK_BYTES (at least one image)."""
    tiles = WINOGRAD_CHUNK_BYTES // (16 * channels * itemsize)
    B = max(1, min(N, tiles // (OH * OW // 4)))
    return [(n0, min(B, N - n0)) for n0 in range(0, N, B)]


def _to_padded_columns_by_parity(x, n0, PH, PW, padded):
    """padded (B, H+2PH, 2, (W+2PW)/2, C) = x[chunk] channels last with a zero border, padded
    column w stored at [w % 2, w // 2] (winograd.input_transform reads it so)."""
    for parity in (0, 1):
        w0 = (parity - PW) % 2                   # the first x column that lands on this parity
        _to_padded_channels_last(x[:, :, :, w0::2], n0, PH, (PW + w0) // 2, padded[:, :, parity])


def _padded_columns_by_parity_to_nchw(padded, n0, PH, PW, gx):
    """The inside of a padded chunk laid out as _to_padded_columns_by_parity's, back to NCHW."""
    for parity in (0, 1):
        w0 = (parity - PW) % 2
        _padded_channels_last_to_nchw(padded[:, :, parity], n0, PH, (PW + w0) // 2,
                                      gx[:, :, :, w0::2])


def _winograd_input_tiles(buffer, x, n0, B, padding, out_size):
    """The chunk of B images from n0 as padded (B, OH+2, 2, OW/2+1, C) and its transformed 4x4
    tiles V (16, B*OH/2*OW/2, C), in the worker's scratch buffers."""
    C, (PH, PW), (OH, OW) = x.shape[1], padding, out_size
    padded = buffer("padded", (B, OH + 2, 2, OW // 2 + 1, C))
    _to_padded_columns_by_parity(x, n0, PH, PW, padded)
    V = buffer("V", (16, B * (OH // 2) * (OW // 2), C))
    winograd.input_transform(padded, V, buffer("rows", (4, 2, OW // 2 + 1, C)))
    return padded, V


def _winograd_forward(x, weight, padding, out_size):
    """y = conv(x, weight) for 3x3 filters at stride 1, by chunks of images:

        padded = x[chunk] channels last, zero border, columns by parity   (B, OH+2, 2, OW/2+1, C)
        V      = its 4x4 tiles, transformed                              (16, T, C)
        M[k]   = V[k] @ U[k]^T                                           (16, T, OC)
        y_cl   = the 2x2 output tiles of M, laid out as padded           (B, OH, 2, OW/2, OC)
        y[chunk] = y_cl as NCHW
    """
    N, C = x.shape[:2]
    OC, (OH, OW) = weight.shape[0], out_size
    U_T = numpy.ascontiguousarray(winograd.filter_transform(weight.astype(x.dtype))
                                  .transpose(0, 2, 1))         # (16, C, OC)
    y = numpy.empty((N, OC, OH, OW), dtype=x.dtype)
    chunks = _winograd_chunks(N, OH, OW, max(C, OC), x.dtype.itemsize)

    def make_worker():
        buffer = _scratch(x.dtype)

        def convolve(i):
            n0, B = chunks[i]
            _, V = _winograd_input_tiles(buffer, x, n0, B, padding, out_size)    # (16, T, C)
            M = buffer("M", V.shape[:2] + (OC,))
            numpy.matmul(V, U_T, out=M)                        # 16 x (T, C) @ (C, OC)
            y_cl = buffer("y_cl", (B, OH, 2, OW // 2, OC))
            winograd.output_transform(M, y_cl, buffer("out_rows", (2, 4, OW // 2, OC)))
            _padded_columns_by_parity_to_nchw(y_cl, n0, 0, 0, y)
        return convolve

    share(len(chunks), make_worker)
    return y


def _winograd_backward(gy, x, weight, padding, out_size, input_grad):
    """(gx or None, gweight) of _winograd_forward, by chunks of images:

        V      = the input tiles, transformed again           (16, T, C)
        dM     = the output gradient's 2x2 tiles, transformed  (16, T, OC)
        dU    += dM[k]^T @ V[k]                                (16, OC, C), chunk order
        dV     = dM[k] @ U[k]                                  (16, T, C)
        gx[chunk] = dV's tiles, transformed back and added where they came from
        gweight = G^T dU G
    """
    N, C, H, W = x.shape
    OC = weight.shape[0]
    (PH, PW), (OH, OW) = padding, out_size
    U = winograd.filter_transform(weight.astype(gy.dtype))     # (16, OC, C)
    gx = numpy.empty((N, C, H, W), dtype=gy.dtype) if input_grad else None
    chunks = _winograd_chunks(N, OH, OW, max(C, OC), gy.dtype.itemsize)
    gU_parts = numpy.empty((len(chunks), 16, OC, C), dtype=gy.dtype)

    def make_worker():
        buffer = _scratch(gy.dtype)

        def differentiate(i):
            n0, B = chunks[i]
            padded, V = _winograd_input_tiles(buffer, x, n0, B, padding, out_size)  # again
            gy_cl = buffer("gy_cl", (B, OH, 2, OW // 2, OC))
            _to_padded_columns_by_parity(gy, n0, 0, 0, gy_cl)
            dM = buffer("dM", V.shape[:2] + (OC,))
            winograd.output_transform_adjoint(gy_cl, dM, buffer("out_rows", (4, 2, OW // 2, OC)))
            numpy.matmul(dM.transpose(0, 2, 1), V, out=gU_parts[i])   # 16 x (OC, T) @ (T, C)
            if input_grad:
                dV = buffer("dV", V.shape)
                numpy.matmul(dM, U, out=dV)                    # 16 x (T, OC) @ (OC, C)
                gpadded = buffer("gpadded", padded.shape)
                gpadded[...] = 0.0
                winograd.input_transform_adjoint(dV, gpadded,
                                                 buffer("grad_rows", (4, 4, OW // 2, C)))
                _padded_columns_by_parity_to_nchw(gpadded, n0, PH, PW, gx)
        return differentiate

    share(len(chunks), make_worker)
    return gx, winograd.filter_transform_backward(gU_parts.sum(axis=0))   # chunk order
