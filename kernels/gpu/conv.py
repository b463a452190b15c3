"""im2col and col2im, the data movement of a convolution, on the GPU: one thread per element.

The readable NumPy twins are tinyres/functional/conv.py (read them first: the layout below is
theirs). The dimensions, named as there:

    N  batch     C  channels     H, W  input height, width      KH, KW  kernel height, width
    SH, SW  stride               PH, PW  zero padding on each side
    OH = (H + 2*PH - KH) // SH + 1          OW = (W + 2*PW - KW) // SW + 1

    im2col:  x (N, C, H, W)  ->  cols (N*OH*OW, C*KH*KW)
             row  = (n*OH + oh)*OW + ow           one row per output pixel
             col  = (c*KH + kh)*KW + kw           one column per (channel, kernel offset)
             cols[row, col] = x[n, c, oh*SH - PH + kh, ow*SW - PW + kw]   (0 in the padding)

On a GPU the natural way to write this is backwards from the output: give every element of
`cols` its own thread, let the thread work out from its number which (n, oh, ow, c, kh, kw) it is,
and copy one value. Threads are cheap; a GPU runs tens of thousands at once.

col2im (the adjoint, for the backward pass) adds each entry of `cols` back onto the input pixel
it was copied from. Written "one thread per cols entry" it would need atomic adds, because
overlapping windows send several entries to one pixel. Here it is written the other way round:
one thread per INPUT pixel, which *gathers* every cols entry that was copied from it. Each
pixel's sum is then computed by exactly one thread, in a fixed order: no atomics, no races, and
the same bits on every run.
"""
from numba import cuda, float32, int64

from ..geometry import window_geometry
from .launch import DTYPES, array_module, check_float, launch_per_element  # noqa: F401 (declared)


@cuda.jit
def im2col_kernel(x, cols, KH, KW, SH, SW, PH, PW, OH, OW):
    """x (N, C, H, W) -> cols (N*OH*OW, C*KH*KW); thread i writes the i-th entry of cols."""
    H, W = x.shape[2], x.shape[3]
    K = cols.shape[1]                           # C*KH*KW columns
    i = cuda.grid(1)                            # this thread's element, in row-major order
    if i >= cols.shape[0] * K:                  # a spare thread of the last block
        return
    row, col = i // K, i % K
    # row = (n*OH + oh)*OW + ow: peel off ow, then oh, then n
    ow = row % OW
    oh = (row // OW) % OH
    n = row // (OW * OH)
    # col = (c*KH + kh)*KW + kw: the same, for the columns
    kw = col % KW
    kh = (col // KW) % KH
    c = col // (KW * KH)
    # the input pixel under kernel offset (kh, kw) of the window of output pixel (oh, ow)
    h = oh * SH - PH + kh
    w = ow * SW - PW + kw
    if 0 <= h < H and 0 <= w < W:
        cols[row, col] = x[n, c, h, w]
    else:
        cols[row, col] = float32(0.0)           # the zero padding


@cuda.jit
def col2im_kernel(cols, x, KH, KW, SH, SW, PH, PW, OH, OW):
    """cols (N*OH*OW, C*KH*KW) -> x (N, C, H, W); thread i sums into the i-th pixel of x.

    Pixel (h, w) sits at offset (kh, kw) of the window of output pixel (oh, ow) when
    h = oh*SH - PH + kh, i.e. oh = (h + PH - kh) / SH, which must be a whole number in
    [0, OH). So for each kernel offset there is at most one window: no search is needed.
    """
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    i = cuda.grid(1)
    if i >= x.shape[0] * C * H * W:
        return
    # i = ((n*C + c)*H + h)*W + w
    w = i % W
    h = (i // W) % H
    c = (i // (W * H)) % C
    n = i // (W * H * C)
    total = float32(0.0)                        # (becomes float64 for float64 data)
    for kh in range(KH):
        top = h + PH - kh                       # = oh*SH for the window that holds (h, w) here
        if top < 0 or top % SH != 0 or top // SH >= OH:
            continue                            # no window puts offset kh on row h
        oh = top // SH
        for kw in range(KW):
            left = w + PW - kw
            if left < 0 or left % SW != 0 or left // SW >= OW:
                continue
            ow = left // SW
            row = (n * OH + oh) * OW + ow
            col = (c * KH + kh) * KW + kw
            total += cols[row, col]             # fixed (kh, kw) order: deterministic
    x[n, c, h, w] = total


# The exact argument types of each kernel for float32 data: the host functions below launch with
# these, the CUDA simulator tests check that they do, and CI compiles each to PTX with them.
GEOMETRY = (int64,) * 8                                     # KH, KW, SH, SW, PH, PW, OH, OW
FLOAT32_SIGNATURES = {
    im2col_kernel: (float32[:, :, :, ::1], float32[:, ::1]) + GEOMETRY,
    col2im_kernel: (float32[:, ::1], float32[:, :, :, ::1]) + GEOMETRY,
}


# ----------------------------------------------------------------------------------------------
# Host functions: same names, signatures and results as tinyres.functional.conv's twins
# ----------------------------------------------------------------------------------------------
def im2col(x, kernel_size, stride=1, padding=0):
    """x (N, C, H, W) -> cols (N*OH*OW, C*KH*KW), as tinyres.functional.conv.im2col."""
    xp = array_module(x)
    check_float("im2col", x)
    (KH, KW), (SH, SW), (PH, PW), (OH, OW) = window_geometry("im2col", x.shape, kernel_size,
                                                             stride, padding)
    N, C = x.shape[0], x.shape[1]
    x = xp.ascontiguousarray(x)                                 # the kernel indexes row-major
    cols = xp.empty((N * OH * OW, C * KH * KW), dtype=x.dtype)
    launch_per_element(im2col_kernel, cols.size, x, cols, KH, KW, SH, SW, PH, PW, OH, OW)
    return cols


def col2im(cols, x_shape, kernel_size, stride=1, padding=0):
    """cols (N*OH*OW, C*KH*KW) -> (N, C, H, W), as tinyres.functional.conv.col2im."""
    xp = array_module(cols)
    check_float("col2im", cols)
    N, C, H, W = (int(s) for s in x_shape)
    (KH, KW), (SH, SW), (PH, PW), (OH, OW) = window_geometry("col2im", (N, C, H, W),
                                                             kernel_size, stride, padding)
    if cols.shape != (N * OH * OW, C * KH * KW):
        raise ValueError(f"col2im: expected cols of shape {(N * OH * OW, C * KH * KW)} for "
                         f"x_shape {(N, C, H, W)}, got shape {tuple(cols.shape)}")
    cols = xp.ascontiguousarray(cols)
    x = xp.empty((N, C, H, W), dtype=cols.dtype)                # every pixel is written once
    launch_per_element(col2im_kernel, x.size, cols, x, KH, KW, SH, SW, PH, PW, OH, OW)
    return x
