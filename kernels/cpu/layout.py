"""Layout copies the CPU convolutions share: a chunk of images copied channels-last with a zero
border (and back), and each thread's scratch buffers.

Channels last, a pixel's C channels are neighbours in memory, so the KW*C numbers a window needs
from one input row are one contiguous run (conv_gemm.py copies patches as runs; conv_winograd.py
transforms whole rows of tiles at once).

The fast path keeps its activations channels last *between* layers too, as PyTorch's
``channels_last`` memory format does: a convolution's output is an (N, H, W, C) array handed
out as the (N, C, H, W) view ``y_cl.transpose(0, 3, 1, 2)``. A learner sees the usual shape;
batch norm, ReLU and the next convolution see channels-last memory and need no NCHW <-> NHWC
copy. So every copy here comes in two kinds, picked by the source's layout: from channels-last
memory (runs of C numbers, a plain copy) or from NCHW memory (a transpose on the way).
This module never imports tinyres.
"""
import numpy
from numba import njit


def channels_last(a):
    """a (N, C, H, W) seen as its channels-last memory, an (N, H, W, C) view, when a's channels
    are neighbours in memory (the fast path's activations, and slices of them); else None."""
    if a.ndim != 4 or a.shape[1] < 2 or a.strides[1] != a.itemsize:
        return None
    return a.transpose(0, 2, 3, 1)


def empty_channels_last(shape, dtype):
    """An uninitialised (N, C, H, W) array of `shape` with channels-last memory, and that memory
    as (N, H, W, C)."""
    N, C, H, W = shape
    memory = numpy.empty((N, H, W, C), dtype=dtype)
    return memory.transpose(0, 3, 1, 2), memory


def kernel_array(a):
    """a as the copies below take it: left as it is when its channels are neighbours in memory,
    else C-contiguous (NCHW)."""
    return a if channels_last(a) is not None else numpy.ascontiguousarray(a)


def to_padded(x, n0, PH, PW, padded):
    """padded[b, PH + h, PW + w, c] = x[n0 + b, c, h, w]: x (N, C, H, W), channels-last memory or
    NCHW -> padded (B, H+2PH, W+2PW, C). The border is left as it is (zero: the buffer was made
    with zeros)."""
    x_cl = channels_last(x)
    if x_cl is not None:
        _copy_pixels(x_cl, n0, 0, 0, padded, 0, PH, PW, padded.shape[0], x.shape[2], x.shape[3])
    else:
        _nchw_to_padded(x, n0, PH, PW, padded)


def from_padded(padded, n0, PH, PW, out):
    """out[n0 + b, c, h, w] = padded[b, PH + h, PW + w, c] (the inside of a padded chunk), into
    out (N, C, H, W) of either layout."""
    out_cl = channels_last(out)
    if out_cl is not None:
        B, H, W = padded.shape[0], out.shape[2], out.shape[3]
        _copy_pixels(padded, 0, PH, PW, out_cl, n0, 0, 0, B, H, W)
    else:
        _padded_to_nchw(padded, n0, PH, PW, out)


@njit(nogil=True, cache=True)
def _copy_pixels(source, s0, SH0, SW0, target, t0, TH0, TW0, B, H, W):
    """target[t0 + b, TH0 + h, TW0 + w, :] = source[s0 + b, SH0 + h, SW0 + w, :] for B images,
    H rows and W columns (both channels last, strides as they come): a run of C numbers a
    pixel."""
    C = source.shape[3]
    for b in range(B):
        for h in range(H):
            from_row, to_row = source[s0 + b, SH0 + h], target[t0 + b, TH0 + h]
            for w in range(W):
                run, into = from_row[SW0 + w], to_row[TW0 + w]
                for c in range(C):
                    into[c] = run[c]


# The copies below that change the layout (NCHW <-> channels last) walk 1-D views (a row, or a
# strided column) with indices from 0: Numba then knows no index is negative, and the compiler
# turns the loops into vector instructions (twice as fast as indexing the 4-D arrays directly).
@njit(nogil=True, cache=True)
def _nchw_to_padded(x, n0, PH, PW, padded):
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
def _padded_to_nchw(padded, n0, PH, PW, gx):
    """gx[n0 + b, c, h, w] = padded[b, PH + h, PW + w, c] (the inside, back to NCHW)."""
    N, C, H, W = gx.shape
    for b in range(padded.shape[0]):
        for h in range(H):
            inside = padded[b, PH + h, PW:PW + W]                  # (W, C)
            for c in range(C):
                source, target = inside[:, c], gx[n0 + b, c, h]
                for w in range(W):
                    target[w] = source[w]


def scratch(dtype):
    """A thread's scratch buffers: buffer(name, shape) is the same array each time it is asked
    for with the same shape, a new zero-filled one when the shape changes (the last chunk)."""
    buffers = {}

    def buffer(name, shape):
        if name not in buffers or buffers[name].shape != shape:
            buffers[name] = numpy.zeros(shape, dtype=dtype)
        return buffers[name]
    return buffer
