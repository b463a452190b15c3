"""Layout copies the CPU convolutions share: a chunk of images copied channels-last with a zero
border (and back), each thread's scratch buffers, and the loop that runs a convolution's chunks
on the threads (run_chunks).

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
import threading

import numpy
from numba import njit

from .threads import share


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
    with zeros, and `scratch` gives it to no convolution with another padding). padded may also
    have its columns split by phase, (B, H+2PH, m, Wp/m, C) with padded column w at
    [w % m, w // m] (Winograd's tiles: kernels/cpu/winograd.py)."""
    split = padded if padded.ndim == 5 else padded[:, :, None]      # unsplit: m = 1
    x_cl = channels_last(x)
    if x_cl is not None:
        _pixels_to_padded(x_cl, n0, PH, PW, split)
    else:
        _nchw_to_padded(x, n0, PH, PW, split)


def from_padded(padded, n0, PH, PW, out):
    """out[n0 + b, c, h, w] = padded[b, PH + h, PW + w, c] (the inside of a padded chunk, its
    columns split by phase or not, as to_padded's), into out (N, C, H, W) of either layout."""
    split = padded if padded.ndim == 5 else padded[:, :, None]
    out_cl = channels_last(out)
    if out_cl is not None:
        _padded_to_pixels(split, PH, PW, out_cl, n0)
    else:
        _padded_to_nchw(split, n0, PH, PW, out)


# Each copy walks its source and its target row by row, and splits a row's columns by phase
# within the row: a chunk read phase by phase, every m-th pixel a pass, reads each cache line of
# its source m times, from memory rather than from the cache (docs/performance.md).
@njit(inline="always")
def _next_column(phase, place, m):
    """(phase, place) of the next padded column, counted on: (w % m, w // m) would cost two
    integer divisions a pixel."""
    return (phase + 1, place) if phase + 1 < m else (0, place + 1)


@njit(nogil=True, cache=True)
def _pixels_to_padded(x_cl, n0, PH, PW, padded):
    """padded[b, PH + h, (PW + w) % m, (PW + w) // m, :] = x_cl[n0 + b, h, w, :], both channels
    last (strides as they come): a run of C numbers a pixel."""
    B, _, m, _, C = padded.shape
    H, W = x_cl.shape[1], x_cl.shape[2]
    for b in range(B):
        for h in range(H):
            from_row, to_row = x_cl[n0 + b, h], padded[b, PH + h]      # (W, C), (m, Wp/m, C)
            phase, place = PW % m, PW // m                             # of column PW + w
            for w in range(W):
                run, into = from_row[w], to_row[phase, place]
                for c in range(C):
                    into[c] = run[c]
                phase, place = _next_column(phase, place, m)


@njit(nogil=True, cache=True)
def _padded_to_pixels(padded, PH, PW, out_cl, n0):
    """out_cl[n0 + b, h, w, :] = padded[b, PH + h, (PW + w) % m, (PW + w) // m, :] (the inside,
    back to channels last)."""
    B, _, m, _, C = padded.shape
    H, W = out_cl.shape[1], out_cl.shape[2]
    for b in range(B):
        for h in range(H):
            from_row, to_row = padded[b, PH + h], out_cl[n0 + b, h]
            phase, place = PW % m, PW // m
            for w in range(W):
                run, into = from_row[phase, place], to_row[w]
                for c in range(C):
                    into[c] = run[c]
                phase, place = _next_column(phase, place, m)


# The copies below that change the layout (NCHW <-> channels last) walk 1-D views (a row's
# columns of one phase, or a strided column) with indices from 0: Numba then knows no index is
# negative, and the compiler turns the loops into vector instructions (it does not when they
# index the 4-D arrays directly).
@njit(nogil=True, cache=True)
def _nchw_to_padded(x, n0, PH, PW, padded):
    """padded[b, PH + h, (PW + w) % m, (PW + w) // m, c] = x[n0 + b, c, h, w]: x (N, C, H, W)
    -> padded (B, H+2PH, m, Wp/m, C)."""
    N, C, H, W = x.shape
    m = padded.shape[2]
    for b in range(padded.shape[0]):
        for h in range(H):
            to_row = padded[b, PH + h]                             # (m, Wp/m, C)
            for c in range(C):
                row = x[n0 + b, c, h]
                for phase in range(m):
                    w0 = (phase - PW) % m              # the first column of x on this phase
                    source, target = row[w0::m], to_row[phase, (PW + w0) // m:, c]
                    for w in range(len(source)):
                        target[w] = source[w]


@njit(nogil=True, cache=True)
def _padded_to_nchw(padded, n0, PH, PW, gx):
    """gx[n0 + b, c, h, w] = padded[b, PH + h, (PW + w) % m, (PW + w) // m, c] (the inside, back
    to NCHW)."""
    N, C, H, W = gx.shape
    m = padded.shape[2]
    for b in range(padded.shape[0]):
        for h in range(H):
            from_row = padded[b, PH + h]
            for c in range(C):
                row = gx[n0 + b, c, h]
                for phase in range(m):
                    w0 = (phase - PW) % m
                    source, target = from_row[phase, (PW + w0) // m:, c], row[w0::m]
                    for w in range(len(target)):
                        target[w] = source[w]


_kept = threading.local()       # each thread's scratch buffers, kept from one job to the next


def scratch(dtype):
    """A thread's scratch buffers: buffer(name, shape) is the same array each time this thread
    asks for `name` with that shape (and dtype), in this job or a later one; a new zero-filled
    one the first time (kept, so that a training step does not zero-fill its buffers again at
    every convolution). A buffer whose zero border the kernels rely on names its padding in
    `name`: another convolution could ask for the same shape with another padding and write
    where this one's border is."""
    if not hasattr(_kept, "buffers"):
        _kept.buffers = {}
    buffers, kind = _kept.buffers, numpy.dtype(dtype).str

    def buffer(name, shape):
        key = (kind, name, shape)
        if key not in buffers:
            buffers[key] = numpy.zeros(shape, dtype=dtype)
        return buffers[key]
    return buffer


def run_chunks(chunks, dtype, work):
    """work(buffer, i, n0, B) for each chunk i = (n0, B) of `chunks` (B images from image n0),
    the chunks shared among the threads (threads.share), `buffer` the scratch buffers (of
    `dtype`) of the thread that runs it. The skeleton of both convolution routes: a chunk's
    work must not depend on another's, and what it adds up across chunks it writes to its own
    slot i, so that the sum, taken afterwards in chunk order, does not depend on the threads."""
    def make_worker():
        buffer = scratch(dtype)
        return lambda i: work(buffer, i, *chunks[i])
    share(len(chunks), make_worker)
