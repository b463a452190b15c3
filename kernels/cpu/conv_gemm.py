"""The CPU convolution's im2col + GEMM route: chunks of images, channels last, one row per patch,
one BLAS product per chunk (conv.py chooses the route; conv_winograd.py is the other one).

Dimensions as in conv.py: K = C*KH*KW, P = OH*OW.

The whole convolution is done here, not as im2col then a product, because the speed of a
convolution is decided by memory more than by arithmetic. For ResNet-20's first stage (N = 128,
C = OC = 16, 32x32 maps) the full cols matrix is 128*1024 x 144 floats = 75 MB, nine times the
image it was copied from. Writing it, reading it back for the matrix product and keeping it for
the backward pass costs more time (and memory) than the product itself. So the twins do the
same math in *chunks* of B images, sized so that a chunk's rows (about CHUNK_ROWS of them) stay
in a core's caches, and the chunks are shared among the threads (layout.run_chunks):

    for every chunk of B images:
        padded = x[chunk] as (B, H+2PH, W+2PW, C), zero border    channels last
        rows   = its patches, (B*OH*OW, KH*KW*C)                  stays in the cache
        y[chunk] = rows @ W2^T                (B*P, K) @ (K, OC): one BLAS GEMM

y has channels-last memory (layout.py), so its chunk *is* a (B*P, OC) matrix: the product is
written in place, with no copy back to NCHW.

It is the reference's computation (one row per patch, times the filters), with two changes of
layout that decide the speed:

  * The chunk is first copied channels-last. Then the KW*C numbers a patch needs from one input
    row are contiguous, and each row of `rows` is KH contiguous runs: vector copies, no test for
    the padding (the zero border is in the buffer).
  * So a row's columns are ordered (kh, kw, c), not (c, kh, kw); the filters are reordered the
    same way, W2 = weight.transpose(0, 2, 3, 1).reshape(OC, K) (a few KB).

Orientation matters to BLAS: with OC as small as 16, (B*P, K) @ (K, OC) runs faster than the
same product written (OC, K) @ (K, B*P) (docs/performance.md).

The backward recomputes each chunk's rows instead of keeping 75 MB per layer from the forward pass
(memory stays at the size of the activations, as PyTorch's), and per chunk:

    gy_rows  = gy[chunk] as (B*P, OC)      (a view when gy is channels last, as the fast path's)
    gweight += gy_rows^T @ rows            (OC, K), added over the chunks in order
    grows    = gy_rows @ W2                (B*P, K), the gradient of each patch
    gx[chunk] = fold(grows): each patch's gradient added back where the patch came from

GEMMs stay in BLAS (numpy.matmul). This module never imports tinyres.
"""
import numpy
from numba import njit

from .layout import channels_last, empty_channels_last, from_padded, run_chunks, to_padded

# Rows (patches) per chunk: B = CHUNK_ROWS // (OH*OW) images, at least one. Small enough that a
# chunk's rows stay in a core's caches (590 KB for ResNet's first stage), large enough that each
# GEMM is big and the Python work per chunk is small (docs/performance.md).
CHUNK_ROWS = 1024


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
def _nchw_to_rows(array, n0, rows):
    """rows[b*P + p, m] = array[n0 + b, m, p]: array (N, M, P) -> rows (B*P, M)."""
    N, M, P = array.shape
    for b in range(rows.shape[0] // P):
        image = rows[b * P:(b + 1) * P]                            # (P, M)
        for m in range(M):
            source, target = array[n0 + b, m], image[:, m]
            for p in range(P):
                target[p] = source[p]


def row_chunks(N, P):
    """(first image, images) of each chunk of about CHUNK_ROWS patch rows: CHUNK_ROWS // P
    images (at least 1) at a time, P = OH*OW rows an image."""
    B = max(1, min(N, CHUNK_ROWS // P))
    return [(n0, min(B, N - n0)) for n0 in range(0, N, B)]


def _filters_channels_last(weight, dtype):
    """weight (OC, C, KH, KW) -> W2 (OC, KH*KW*C), columns ordered (kh, kw, c) as a row's."""
    OC = weight.shape[0]
    return numpy.ascontiguousarray(weight.transpose(0, 2, 3, 1), dtype=dtype).reshape(OC, -1)


def _chunk_patches(buffer, x, n0, B, geometry):
    """The chunk of B images from n0 as padded (B, H+2PH, W+2PW, C), channels last, and its
    patches rows (B*OH*OW, KH*KW*C), in the worker's scratch buffers."""
    C, H, W = x.shape[1:]
    (KH, KW), (SH, SW), (PH, PW), (OH, OW) = geometry
    padded = buffer(("padded", PH, PW), (B, H + 2 * PH, W + 2 * PW, C))   # border stays 0
    to_padded(x, n0, PH, PW, padded)
    rows = buffer("rows", (B * OH * OW, KH * KW * C))
    _patches(padded, KH, KW, SH, SW, rows)
    return padded, rows


def forward(x, weight, geometry):
    """y = conv(x, weight): x (N, C, H, W) (NCHW or channels-last memory), weight
    (OC, C, KH, KW) -> y (N, OC, OH, OW) with channels-last memory; geometry the conv's
    (geometry.Geometry). One chunk of images per part; a chunk's product is written straight into
    y, whose memory is its rows."""
    OC = weight.shape[0]
    N, (OH, OW) = x.shape[0], geometry.out_size
    w2 = _filters_channels_last(weight, x.dtype)               # (OC, K)
    y, y_cl = empty_channels_last((N, OC, OH, OW), x.dtype)    # y_cl (N, OH, OW, OC)

    def convolve(buffer, i, n0, B):
        _, rows = _chunk_patches(buffer, x, n0, B, geometry)
        y_rows = y_cl[n0:n0 + B].reshape(B * OH * OW, OC)       # a view: y's own memory
        numpy.matmul(rows, w2.T, out=y_rows)                   # (B*P, K) @ (K, OC)

    run_chunks(row_chunks(N, OH * OW), x.dtype, convolve)
    return y


def backward(gy, x, weight, geometry, input_grad):
    """gy (N, OC, OH, OW), x (N, C, H, W), each NCHW or channels-last memory, of one dtype,
    weight and geometry as in the forward -> (gx (channels-last memory) or None, gweight). One
    chunk of images per part; the parts' weight gradients are added in chunk order, so the
    result does not depend on which thread did which chunk."""
    OC, C, KH, KW = weight.shape
    N, _, H, W = x.shape
    _, (SH, SW), (PH, PW), (OH, OW) = geometry
    gy_cl = channels_last(gy)                                  # (N, OH, OW, OC) or None
    if gy_cl is None:
        gy = gy.reshape(N, OC, OH * OW)
    w2 = _filters_channels_last(weight, gy.dtype)              # (OC, K)
    gx = empty_channels_last((N, C, H, W), gy.dtype)[0] if input_grad else None
    chunks = row_chunks(N, OH * OW)
    gweight_parts = numpy.empty((len(chunks),) + w2.shape, dtype=gy.dtype)

    def differentiate(buffer, i, n0, B):
        padded, rows = _chunk_patches(buffer, x, n0, B, geometry)   # recomputed, not kept
        if gy_cl is not None:                                  # gy's memory is its rows
            gy_rows = gy_cl[n0:n0 + B].reshape(B * OH * OW, OC)
        else:
            gy_rows = buffer("gy_rows", (B * OH * OW, OC))
            _nchw_to_rows(gy, n0, gy_rows)
        numpy.matmul(gy_rows.T, rows, out=gweight_parts[i])    # (OC, B*P) @ (B*P, K)
        if input_grad:
            grows = buffer("grows", rows.shape)
            numpy.matmul(gy_rows, w2, out=grows)               # (B*P, OC) @ (OC, K)
            gpadded = buffer("gpadded", padded.shape)          # (padded's border must stay 0)
            _fold_patches(grows, KH, KW, SH, SW, gpadded)
            from_padded(gpadded, n0, PH, PW, gx)

    run_chunks(chunks, gy.dtype, differentiate)
    gweight = gweight_parts.sum(axis=0).reshape(OC, KH, KW, C)     # chunk order
    return gx, numpy.ascontiguousarray(gweight.transpose(0, 3, 1, 2))
