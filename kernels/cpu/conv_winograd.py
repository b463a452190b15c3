"""The CPU convolution's Winograd route: 3x3 filters at stride 1 whose output splits into 2x2 tiles
(all but two of a CIFAR ResNet's convs), by Winograd's F(2x2, 3x3).

The algorithm, and its readable NumPy twin that the tests hold this route to, is
tinyres/functional/winograd.py; winograd.py here has the four tile kernels (Numba) and the filter
transforms. This driver runs them as conv_gemm.py runs im2col + GEMM: in chunks of images shared
among the threads (threads.py), each chunk copied channels last with a zero border, its columns
split by parity (what winograd.py's kernels read):

    forward    padded = x[chunk], V = its 4x4 tiles transformed (16, T, C),
               M[k] = V[k] @ U[k]^T (16 GEMMs), y[chunk] = M's 2x2 output tiles
    backward   V again, dM = the output gradient's tiles transformed, dU += dM[k]^T @ V[k]
               (chunk order), dV = dM[k] @ U[k], gx[chunk] = dV's tiles transformed back and
               added where they came from; gweight = G^T dU G

16 small GEMMs over transformed tiles do 4/9 of im2col's multiplications. This module never
imports tinyres.
"""
import numpy

from . import winograd
from .layout import channels_last, empty_channels_last, from_padded, scratch, to_padded
from .threads import share

# A chunk's transformed tiles, V (16, T, C) or M (16, T, OC), take about this many bytes: small
# enough to stay in a core's cache between the transform and the GEMMs, large enough that each of
# the 16 BLAS calls is worth its overhead (ResNet-20's stages: 2, 4 and 8 images a chunk).
CHUNK_BYTES = 512 * 1024


def applies(weight_shape, stride, out_size):
    """F(2x2, 3x3) covers 3x3 filters at stride 1 whose output splits into 2x2 tiles."""
    return (tuple(weight_shape[2:]) == (3, 3) and tuple(stride) == (1, 1)
            and out_size[0] % 2 == 0 and out_size[1] % 2 == 0)


def chunks_of(N, OH, OW, channels, itemsize):
    """(first image, images) of each chunk, so that 16 * tiles * channels * itemsize is about
    CHUNK_BYTES (at least one image)."""
    tiles = CHUNK_BYTES // (16 * channels * itemsize)
    B = max(1, min(N, tiles // (OH * OW // 4)))
    return [(n0, min(B, N - n0)) for n0 in range(0, N, B)]


def _to_padded_columns_by_parity(x, n0, PH, PW, padded):
    """padded (B, H+2PH, 2, (W+2PW)/2, C) = x[chunk] channels last with a zero border, padded
    column w stored at [w % 2, w // 2] (winograd.input_transform reads it so); x of either
    memory layout."""
    for parity in (0, 1):
        w0 = (parity - PW) % 2                   # the first x column that lands on this parity
        to_padded(x[:, :, :, w0::2], n0, PH, (PW + w0) // 2, padded[:, :, parity])


def _padded_columns_by_parity_to(padded, n0, PH, PW, gx):
    """The inside of a padded chunk laid out as _to_padded_columns_by_parity's, into gx (either
    memory layout)."""
    for parity in (0, 1):
        w0 = (parity - PW) % 2
        from_padded(padded[:, :, parity], n0, PH, (PW + w0) // 2, gx[:, :, :, w0::2])


def _input_tiles(buffer, x, n0, B, padding, out_size):
    """The chunk of B images from n0 as padded (B, OH+2, 2, OW/2+1, C) and its transformed 4x4
    tiles V (16, B*OH/2*OW/2, C), in the worker's scratch buffers."""
    C, (PH, PW), (OH, OW) = x.shape[1], padding, out_size
    padded = buffer("padded", (B, OH + 2, 2, OW // 2 + 1, C))
    _to_padded_columns_by_parity(x, n0, PH, PW, padded)
    V = buffer("V", (16, B * (OH // 2) * (OW // 2), C))
    winograd.input_transform(padded, V, buffer("rows", (4, 2, OW // 2 + 1, C)))
    return padded, V


def forward(x, weight, stride, padding, out_size):
    """y = conv(x, weight) for 3x3 filters at stride 1, by chunks of images:

        padded = x[chunk] channels last, zero border, columns by parity   (B, OH+2, 2, OW/2+1, C)
        V      = its 4x4 tiles, transformed                              (16, T, C)
        M[k]   = V[k] @ U[k]^T                                           (16, T, OC)
        y[chunk] = the 2x2 output tiles of M, in place                    (B, OH, OW, OC)

    y has channels-last memory (layout.py): the output transform writes its chunk directly.

    x NCHW or channels-last memory; stride is (1, 1) (see `applies`).
    """
    N, C = x.shape[:2]
    OC, (OH, OW) = weight.shape[0], out_size
    U_T = numpy.ascontiguousarray(winograd.filter_transform(weight.astype(x.dtype))
                                  .transpose(0, 2, 1))         # (16, C, OC)
    y, y_cl = empty_channels_last((N, OC, OH, OW), x.dtype)   # y_cl (N, OH, OW, OC)
    chunks = chunks_of(N, OH, OW, max(C, OC), x.dtype.itemsize)

    def make_worker():
        buffer = scratch(x.dtype)

        def convolve(i):
            n0, B = chunks[i]
            _, V = _input_tiles(buffer, x, n0, B, padding, out_size)    # (16, T, C)
            M = buffer("M", V.shape[:2] + (OC,))
            numpy.matmul(V, U_T, out=M)                        # 16 x (T, C) @ (C, OC)
            winograd.output_transform(M, y_cl[n0:n0 + B], buffer("out_rows", (2, 4, OW // 2, OC)))
        return convolve

    share(len(chunks), make_worker)
    return y


def backward(gy, x, weight, stride, padding, out_size, input_grad):
    """(gx or None, gweight) of `forward`, by chunks of images (gy, x of one dtype, each NCHW or
    channels-last memory; gx channels last):

        V      = the input tiles, transformed again           (16, T, C)
        dM     = the output gradient's 2x2 tiles, transformed  (16, T, OC), read from gy's
                                                               channels-last memory
        dU    += dM[k]^T @ V[k]                                (16, OC, C), chunk order
        dV     = dM[k] @ U[k]                                  (16, T, C)
        gx[chunk] = dV's tiles, transformed back and added where they came from
        gweight = G^T dU G
    """
    N, C, H, W = x.shape
    OC = weight.shape[0]
    (PH, PW), (OH, OW) = padding, out_size
    U = winograd.filter_transform(weight.astype(gy.dtype))     # (16, OC, C)
    gx = empty_channels_last((N, C, H, W), gy.dtype)[0] if input_grad else None
    gy_cl = channels_last(gy)                                  # (N, OH, OW, OC), as the tiles
    if gy_cl is None or not gy_cl.flags.c_contiguous:          # transform reads it
        gy_cl = numpy.ascontiguousarray(gy.transpose(0, 2, 3, 1))
    chunks = chunks_of(N, OH, OW, max(C, OC), gy.dtype.itemsize)
    dU_parts = numpy.empty((len(chunks), 16, OC, C), dtype=gy.dtype)

    def make_worker():
        buffer = scratch(gy.dtype)

        def differentiate(i):
            n0, B = chunks[i]
            padded, V = _input_tiles(buffer, x, n0, B, padding, out_size)  # again
            dM = buffer("dM", V.shape[:2] + (OC,))
            winograd.output_transform_adjoint(gy_cl[n0:n0 + B], dM,
                                              buffer("out_rows", (4, 2, OW // 2, OC)))
            numpy.matmul(dM.transpose(0, 2, 1), V, out=dU_parts[i])   # 16 x (OC, T) @ (T, C)
            if input_grad:
                dV = buffer("dV", V.shape)
                numpy.matmul(dM, U, out=dV)                    # 16 x (T, OC) @ (OC, C)
                gpadded = buffer("gpadded", padded.shape)
                gpadded[...] = 0.0
                winograd.input_transform_adjoint(dV, gpadded,
                                                 buffer("grad_rows", (4, 4, OW // 2, C)))
                _padded_columns_by_parity_to(gpadded, n0, PH, PW, gx)
        return differentiate

    share(len(chunks), make_worker)
    return gx, winograd.filter_transform_backward(dU_parts.sum(axis=0))   # chunk order
