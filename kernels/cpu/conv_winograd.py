"""The CPU convolution's Winograd route: 3x3 filters at stride 1 whose output splits into 2x2 tiles
(all but two of a CIFAR ResNet's convs), by Winograd's F(4x4, 3x3) when the output splits into
4x4 tiles and the layer has at most 128 channels (every one of them in the CIFAR ResNets), else
F(2x2, 3x3).

The algorithm, and its readable NumPy twin that the tests hold this route to, is
tinyres/functional/winograd.py; winograd.py here has the four tile kernels (Numba) and the filter
transforms. This driver runs them as conv_gemm.py runs im2col + GEMM: in chunks of images shared
among the threads (layout.run_chunks), each chunk copied channels last with a zero border, its
columns split by phase w % m (what winograd.py's kernels read); k = m + 2:

    forward    padded = x[chunk], V = its k x k tiles transformed (k*k, T, C),
               M[i] = V[i] @ U[i]^T (k*k GEMMs), y[chunk] = M's m x m output tiles
    backward   V again, dM = the output gradient's tiles transformed, dU += dM[i]^T @ V[i]
               (chunk order), dV = dM[i] @ U[i], gx[chunk] = dV's tiles transformed back and
               added where they came from; gweight = G^T dU G

k*k small GEMMs over transformed tiles do 4/9 (m = 2) or 1/4 (m = 4) of im2col's
multiplications, at a price in rounding: the transforms' sums of large terms round some ten times
more than im2col's dot products. conv.py therefore sends only float32 here; float64, the type of
gradient checks, takes im2col + GEMM, exact to the reference's rounding. This module takes
either type (the tests hold both to the readable twin) and never imports tinyres.
"""
import numpy

from . import winograd
from .layout import channels_last, empty_channels_last, from_padded, run_chunks, to_padded

# A chunk's transformed tiles, V (k*k, T, C) or M (k*k, T, OC), take about this many bytes: small
# enough to stay in a core's cache between the transform and the GEMMs, large enough that each of
# the k*k BLAS calls is worth its overhead (chosen by measurement: docs/performance.md).
CHUNK_BYTES = 1024 * 1024

# F(4x4) takes layers of up to this many channels, F(2x2) wider ones: past it a chunk of
# CHUNK_BYTES holds only a few tiles, so each of F(4x4)'s 36 products reads all of U
# (36 x C x OC numbers) for a few rows, and F(2x2)'s 16 read less (measured with
# tools/winograd_tiles.py: docs/performance.md).
WIDE_CHANNELS = 128


def applies(geometry):
    """Winograd covers 3x3 filters at stride 1 whose output splits into 2x2 tiles."""
    return (tuple(geometry.kernel) == (3, 3) and tuple(geometry.stride) == (1, 1)
            and geometry.out_size[0] % 2 == 0 and geometry.out_size[1] % 2 == 0)


def tile_size(out_size, channels):
    """m of F(m x m, 3x3) for an output of out_size (even, as `applies` asks) and the larger of
    the input and output channel counts: 4 when the output splits into 4x4 tiles and there are
    at most WIDE_CHANNELS channels, else 2."""
    if out_size[0] % 4 or out_size[1] % 4 or channels > WIDE_CHANNELS:
        return 2
    return 4


def tile_chunks(N, out_size, channels, itemsize):
    """(first image, images) of each chunk whose transformed tiles, k*k * tiles * channels *
    itemsize bytes, take at most about CHUNK_BYTES: the largest power of two images that fits
    (at least one image).

    A power of two, so that the halves or quarters of a batch (data-parallel ranks), when no
    smaller than a chunk, are chunked image for image as the whole batch is: an image's
    rounding depends on its place in the chunk's BLAS products, and F(4x4)'s output transform
    magnifies it (tests/test_distributed.py's one step on two ranks holds the ranks to one
    process's numbers)."""
    OH, OW = out_size
    m = tile_size(out_size, channels)
    tiles = CHUNK_BYTES // ((m + 2) ** 2 * channels * itemsize)
    fit = max(1, tiles // (OH * OW // (m * m)))
    B = min(N, 1 << (fit.bit_length() - 1))
    return [(n0, min(B, N - n0)) for n0 in range(0, N, B)]


def _input_tiles(buffer, x, n0, B, geometry, m):
    """The chunk of B images from n0 as padded (B, OH+2, m, OW/m+1, C) and its transformed
    (m+2)x(m+2) tiles V (k*k, B*OH/m*OW/m, C), in the worker's scratch buffers."""
    C, (PH, PW), (OH, OW), k = x.shape[1], geometry.padding, geometry.out_size, m + 2
    padded = buffer(("padded", PH, PW), (B, OH + 2, m, OW // m + 1, C))   # split by phase
    to_padded(x, n0, PH, PW, padded)
    V = buffer("V", (k * k, B * (OH // m) * (OW // m), C))
    winograd.input_transform(padded, V, buffer("rows", (k, m, OW // m + 1, C)))
    return padded, V


def forward(x, weight, geometry):
    """y = conv(x, weight) for 3x3 filters at stride 1 (see `applies`), by chunks of images
    (m = tile_size(...), k = m + 2):

        padded = x[chunk] channels last, zero border, columns by phase   (B, OH+2, m, OW/m+1, C)
        V      = its k x k tiles, transformed                            (k*k, T, C)
        M[i]   = V[i] @ U[i]^T                                           (k*k, T, OC)
        y[chunk] = the m x m output tiles of M, in place                  (B, OH, OW, OC)

    y has channels-last memory (layout.py): the output transform writes its chunk directly.
    x NCHW or channels-last memory.
    """
    N, C = x.shape[:2]
    OC, (OH, OW) = weight.shape[0], geometry.out_size
    m = tile_size(geometry.out_size, max(C, OC))
    U_T = winograd.filter_transform(weight.astype(x.dtype, copy=False), m,
                                    out_channels_first=False)  # (k*k, C, OC)
    y, y_cl = empty_channels_last((N, OC, OH, OW), x.dtype)   # y_cl (N, OH, OW, OC)

    def convolve(buffer, i, n0, B):
        _, V = _input_tiles(buffer, x, n0, B, geometry, m)     # (k*k, T, C)
        M = buffer("M", V.shape[:2] + (OC,))
        numpy.matmul(V, U_T, out=M)                            # k*k x (T, C) @ (C, OC)
        winograd.output_transform(M, y_cl[n0:n0 + B], buffer("out_rows", (m, m + 2, OW // m, OC)))

    run_chunks(tile_chunks(N, geometry.out_size, max(C, OC), x.dtype.itemsize), x.dtype, convolve)
    return y


def backward(gy, x, weight, geometry, input_grad):
    """(gx or None, gweight) of `forward`, by chunks of images (gy, x of one dtype, each NCHW or
    channels-last memory; gx channels last):

        V      = the input tiles, transformed again             (k*k, T, C)
        dM     = the output gradient's m x m tiles, transformed  (k*k, T, OC), read from gy's
                                                                 channels-last memory
        dU    += dM[i]^T @ V[i]                                  (k*k, OC, C), chunk order
        dV     = dM[i] @ U[i]                                    (k*k, T, C)
        gx[chunk] = dV's tiles, transformed back and added where they came from
        gweight = G^T dU G
    """
    N, C, H, W = x.shape
    OC = weight.shape[0]
    _, _, (PH, PW), (OH, OW) = geometry
    m = tile_size(geometry.out_size, max(C, OC))
    k = m + 2
    U = winograd.filter_transform(weight.astype(gy.dtype, copy=False), m)   # (k*k, OC, C)
    gx = empty_channels_last((N, C, H, W), gy.dtype)[0] if input_grad else None
    gy_cl = channels_last(gy)                                  # (N, OH, OW, OC), as the tiles
    if gy_cl is None or not gy_cl.flags.c_contiguous:          # transform reads it
        gy_cl = numpy.ascontiguousarray(gy.transpose(0, 2, 3, 1))
    chunks = tile_chunks(N, geometry.out_size, max(C, OC), gy.dtype.itemsize)
    dU_parts = numpy.empty((len(chunks), k * k, OC, C), dtype=gy.dtype)

    def differentiate(buffer, i, n0, B):
        padded, V = _input_tiles(buffer, x, n0, B, geometry, m)   # again
        dM = buffer("dM", V.shape[:2] + (OC,))
        winograd.output_transform_adjoint(gy_cl[n0:n0 + B], dM,
                                          buffer("out_rows", (k, m, OW // m, OC)))
        numpy.matmul(dM.transpose(0, 2, 1), V, out=dU_parts[i])   # k*k x (OC, T) @ (T, C)
        if input_grad:
            dV = buffer("dV", V.shape)
            numpy.matmul(dM, U, out=dV)                        # k*k x (T, OC) @ (OC, C)
            gpadded = buffer("gpadded", padded.shape)
            gpadded[...] = 0.0
            winograd.input_transform_adjoint(dV, gpadded, buffer("grad_rows", (k, k, OW // m, C)))
            from_padded(gpadded, n0, PH, PW, gx)

    run_chunks(chunks, gy.dtype, differentiate)
    return gx, winograd.filter_transform_backward(dU_parts.sum(axis=0))   # chunk order
