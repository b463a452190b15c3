"""Layout copies the CPU convolutions share: a chunk of NCHW images copied channels-last with a
zero border (and back), and each thread's scratch buffers.

Channels last, a pixel's C channels are neighbours in memory, so the KW*C numbers a window needs
from one input row are one contiguous run (conv_gemm.py copies patches as runs; conv_winograd.py
transforms whole rows of tiles at once). This module never imports tinyres.
"""
import numpy
from numba import njit


# The copies below that change the layout (NCHW <-> channels last) walk 1-D views (a row, or a
# strided column) with indices from 0: Numba then knows no index is negative, and the compiler
# turns the loops into vector instructions (twice as fast as indexing the 4-D arrays directly).
@njit(nogil=True, cache=True)
def to_padded_channels_last(x, n0, PH, PW, padded):
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
def padded_channels_last_to_nchw(padded, n0, PH, PW, gx):
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
