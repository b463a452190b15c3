"""Batch norm on the CPU: channel by channel, one trip through memory per pass.

The readable NumPy twins are in tinyres/functional/batchnorm.py (the math, and the closed-form
backward, are explained there and in docs/batchnorm.md). For each channel c, over its
m = N*H*W values:

    forward    mean_c, var_c (biased), inv_std_c = 1/sqrt(var_c + eps)
               y = (x - mean_c) * inv_std_c * weight_c + bias_c
    backward   sum(dy) and sum(dy * x_hat) per channel, then
               dx = weight_c * inv_std_c / m * (m*dy - sum(dy) - x_hat * sum(dy * x_hat))

The NumPy version makes a new array for every step (x - mean, its square, x_hat, y, ...) and
reads the whole tensor again for each: about ten trips through memory for the forward alone.
Here a kernel takes a channel and does all of a pass's steps on it while its values (N runs of
H*W numbers) are still in the core's cache, so each pass reads x once from main memory (twice
from the cache) and writes y once. The channels are shared among the threads (threads.py).

Accuracy. The statistics are sums over m values (131,072 in ResNet-20's first stage). They are
accumulated in float64, whatever the data's type (the forward's in four interleaved partial sums,
so that the four additions of a step do not wait for each other; the backward's row by row), and
the forward's *about a shift*: the channel's first value.
The variance is then E[(x-s)^2] - E[x-s]^2, which loses nothing to cancellation as long as
|mean - s| is not huge compared with the standard deviation: s is one of the channel's own
values, so it lies within a few standard deviations of the mean. (The reference takes two
passes, the mean first; the GPU kernels do the same.)

The eval-mode twin applies the running statistics, a per-channel affine map, in one pass.

Channels-last input (the fast path's activations: a convolution's output, layout.py) is an
(M, C) matrix of rows, M = N*H*W, one row per pixel, and takes the second set of kernels below:
there a channel's values are C apart, so the work is cut into blocks of rows instead of channels.
Each block's per-channel sums (float64, about the same shift) are kept apart and added in block
order afterwards, so the result does not depend on the threads; then a second pass over the
blocks writes y (or dx) with channels-last memory, so the next layer gets the layout it wants.

The kernels take float32 and float64 data (DTYPES); tinyres.dispatch sends any other type to
the reference. This module never imports tinyres.
"""
import numpy
from numba import njit

from .layout import channels_last
from .threads import num_threads, share

DTYPES = (numpy.float32, numpy.float64)


# The loops below index 1-D rows (x[n, c] is the n-th run of channel c) from 0 with range(): Numba
# then knows no index is negative and the compiler makes vector instructions of the loops.
@njit(nogil=True, cache=True)
def _forward(x, weight, bias, eps, y, mean, var, inv_std, first, last):
    """x (N, C, L) -> y (N, C, L), mean, var, inv_std (C,) for the channels first .. last-1;
    weight, bias (C,) in x's dtype. Channel by channel: its sums in float64, then y while the
    channel's values are still in the cache."""
    N, C, L = x.shape
    m = N * L
    L4 = L - L % 4
    for c in range(first, last):
        shift = numpy.float64(x[0, c, 0])
        s0, s1, s2, s3 = 0.0, 0.0, 0.0, 0.0                  # sums of (x - shift)
        q0, q1, q2, q3 = 0.0, 0.0, 0.0, 0.0                  # sums of (x - shift)^2
        for n in range(N):
            row = x[n, c]
            for l in range(0, L4, 4):                        # four sums side by side
                d0, d1 = row[l] - shift, row[l + 1] - shift
                d2, d3 = row[l + 2] - shift, row[l + 3] - shift
                s0 += d0
                s1 += d1
                s2 += d2
                s3 += d3
                q0 += d0 * d0
                q1 += d1 * d1
                q2 += d2 * d2
                q3 += d3 * d3
            for l in range(L4, L):
                d0 = row[l] - shift
                s0 += d0
                q0 += d0 * d0
        mean_shifted = (s0 + s1 + s2 + s3) / m
        variance = max((q0 + q1 + q2 + q3) / m - mean_shifted * mean_shifted, 0.0)
        mean[c] = shift + mean_shifted
        var[c] = variance
        inv_std[c] = 1.0 / numpy.sqrt(variance + eps)
        # the same steps as the reference, in x's dtype: ((x - mean) * inv_std) * weight + bias
        mean_c, inv_std_c, weight_c, bias_c = mean[c], inv_std[c], weight[c], bias[c]
        for n in range(N):
            source, target = x[n, c], y[n, c]
            for l in range(L):
                target[l] = (source[l] - mean_c) * inv_std_c * weight_c + bias_c


@njit(nogil=True, cache=True)
def _backward(gy, x, mean, inv_std, weight, gx, gweight, gbias, first, last):
    """gy, x (N, C, L) -> gx (N, C, L), gweight, gbias (C,)
    for the channels first .. last-1. Channel by channel: its two sums in float64, then gx while
    gy and x are still in the cache."""
    N, C, L = x.shape
    m = N * L
    for c in range(first, last):
        mean_c, inv_std_c = numpy.float64(mean[c]), numpy.float64(inv_std[c])
        sum_dy, sum_dy_xc = 0.0, 0.0                         # sum(dy), sum(dy * (x - mean))
        for n in range(N):
            g, source = gy[n, c], x[n, c]
            row_dy, row_dy_xc = 0.0, 0.0
            for l in range(L):
                dy = numpy.float64(g[l])
                row_dy += dy
                row_dy_xc += dy * (source[l] - mean_c)
            sum_dy += row_dy
            sum_dy_xc += row_dy_xc
        gbias[c] = sum_dy
        gweight[c] = sum_dy_xc * inv_std_c                   # sum(dy * x_hat)
        # dx = weight * inv_std * (dy - sum(dy)/m - x_hat * sum(dy * x_hat)/m), in float64,
        # with x_hat * sum(dy * x_hat) = (x - mean) * inv_std^2 * sum(dy * (x - mean))
        mean_dy = sum_dy / m
        slope = inv_std_c * inv_std_c * sum_dy_xc / m
        scale = weight[c] * inv_std_c
        for n in range(N):
            g, source, target = gy[n, c], x[n, c], gx[n, c]
            for l in range(L):
                target[l] = (numpy.float64(g[l]) - mean_dy - (source[l] - mean_c) * slope) * scale


@njit(nogil=True, cache=True)
def _eval_forward(x, mean, scale, bias, y, first, last):
    """Eval mode, channels first .. last-1: y = (x - mean) * scale + bias, all (C,) vectors."""
    N, C, L = x.shape
    for c in range(first, last):
        mean_c, scale_c, bias_c = mean[c], scale[c], bias[c]
        for n in range(N):
            source, target = x[n, c], y[n, c]
            for l in range(L):
                target[l] = (source[l] - mean_c) * scale_c + bias_c


# Channels last: x (M, C), one row per pixel; the loops over a row's C channels vectorise.
@njit(nogil=True, cache=True)
def _row_sums(x, shift, first, last, sums, squares):
    """sums[c], squares[c] = the float64 sums of (x - shift) and (x - shift)^2 over the rows
    first .. last-1 of x (M, C). Summed in local arrays, written once at the end: the blocks'
    results sit side by side in memory, and threads writing there at every row would fight over
    the cache lines they share."""
    C = x.shape[1]
    s, q = numpy.zeros(C), numpy.zeros(C)
    for r in range(first, last):
        row = x[r]
        for c in range(C):
            d = numpy.float64(row[c]) - shift[c]
            s[c] += d
            q[c] += d * d
    sums[:] = s
    squares[:] = q


@njit(nogil=True, cache=True)
def _row_grad_sums(gy, x, mean, first, last, sum_dy, sum_dy_xc):
    """sum_dy[c], sum_dy_xc[c] = the float64 sums of dy and dy * (x - mean) over the rows
    first .. last-1 (in local arrays, as _row_sums)."""
    C = x.shape[1]
    mean64 = mean.astype(numpy.float64)
    s, sx = numpy.zeros(C), numpy.zeros(C)
    for r in range(first, last):
        g, source = gy[r], x[r]
        for c in range(C):
            dy = numpy.float64(g[c])
            s[c] += dy
            sx[c] += dy * (source[c] - mean64[c])
    sum_dy[:] = s
    sum_dy_xc[:] = sx


@njit(nogil=True, cache=True)
def _rows_affine(x, mean, scale, shift, y, first, last):
    """Eval mode: y = (x - mean) * scale + shift per channel over the rows first .. last-1."""
    C = x.shape[1]
    for r in range(first, last):
        source, target = x[r], y[r]
        for c in range(C):
            target[c] = (source[c] - mean[c]) * scale[c] + shift[c]


@njit(nogil=True, cache=True)
def _rows_normalise(x, mean, inv_std, weight, bias, y, first, last):
    """y = ((x - mean) * inv_std) * weight + bias over the rows first .. last-1, in x's dtype, the
    reference's steps in its order."""
    C = x.shape[1]
    for r in range(first, last):
        source, target = x[r], y[r]
        for c in range(C):
            target[c] = (source[c] - mean[c]) * inv_std[c] * weight[c] + bias[c]


@njit(nogil=True, cache=True)
def _rows_grad(gy, x, mean, mean_dy, slope, scale, gx, first, last):
    """dx = (dy - mean_dy - (x - mean) * slope) * scale per channel (float64 vectors), rows
    first .. last-1."""
    C = x.shape[1]
    for r in range(first, last):
        g, source, target = gy[r], x[r], gx[r]
        for c in range(C):
            target[c] = (numpy.float64(g[c]) - mean_dy[c]
                         - (source[c] - numpy.float64(mean[c])) * slope[c]) * scale[c]


ROWS_PER_BLOCK = 4096          # 256 KB of 16 float32 channels: a block stays in a core's cache


def _row_blocks(M):
    bounds = list(range(0, M, ROWS_PER_BLOCK)) + [M]
    return list(zip(bounds[:-1], bounds[1:]))


def _as_rows(x):
    """x (N, C, H, W) with dense channels-last memory as its (M, C) rows (a view), else None."""
    x_cl = channels_last(x)
    return x_cl.reshape(-1, x.shape[1]) if x_cl is not None and x_cl.flags.c_contiguous else None


def _rows_like(x, dtype):
    """An uninitialised array of x's shape with channels-last memory, and its (M, C) rows."""
    N, C, H, W = x.shape
    memory = numpy.empty((N, H, W, C), dtype=dtype)
    return memory.transpose(0, 3, 1, 2), memory.reshape(-1, C)


def _train_forward_rows(x, x2, weight, bias, eps):
    M, C = x2.shape
    blocks = _row_blocks(M)
    shift = x2[0].astype(numpy.float64)                      # each channel's first value
    sums, squares = numpy.empty((2, len(blocks), C))
    share(len(blocks), lambda: lambda i: _row_sums(x2, shift, *blocks[i], sums[i], squares[i]))
    mean_shifted = sums.sum(axis=0) / M                      # block order: deterministic
    variance = numpy.maximum(squares.sum(axis=0) / M - mean_shifted ** 2, 0.0)
    mean = (shift + mean_shifted).astype(x.dtype)
    var = variance.astype(x.dtype)
    inv_std = (1.0 / numpy.sqrt(variance + eps)).astype(x.dtype)
    y, y2 = _rows_like(x, x.dtype)
    share(len(blocks), lambda: lambda i: _rows_normalise(x2, mean, inv_std, weight, bias, y2,
                                                         *blocks[i]))
    return y, mean, var, inv_std


def _train_backward_rows(gy2, x2, shape_like, mean, inv_std, weight_k):
    M, C = x2.shape
    blocks = _row_blocks(M)
    sum_dy, sum_dy_xc = numpy.empty((2, len(blocks), C))
    share(len(blocks), lambda: lambda i: _row_grad_sums(gy2, x2, mean, *blocks[i], sum_dy[i],
                                                        sum_dy_xc[i]))
    sum_dy, sum_dy_xc = sum_dy.sum(axis=0), sum_dy_xc.sum(axis=0)
    inv_std64 = inv_std.astype(numpy.float64)
    slope = inv_std64 * inv_std64 * sum_dy_xc / M
    scale = weight_k.astype(numpy.float64) * inv_std64
    gx, gx2 = _rows_like(shape_like, gy2.dtype)
    share(len(blocks), lambda: lambda i: _rows_grad(gy2, x2, mean, sum_dy / M, slope, scale, gx2,
                                                    *blocks[i]))
    return gx, (sum_dy_xc * inv_std64).astype(gy2.dtype), sum_dy.astype(gy2.dtype)


# ----------------------------------------------------------------------------------------------
# Host functions: same names, signatures and results as tinyres.functional.batchnorm's twins
# ----------------------------------------------------------------------------------------------
def _channel_ranges(C):
    """The parts a job is cut into: a few channels each, about four parts per thread."""
    parts = min(C, 4 * num_threads())
    bounds = [C * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _as_ncl(x, dtype):
    """(N, C) or (N, C, H, W) -> a C-contiguous (N, C, L) array of `dtype`, L = 1 or H*W."""
    if x.ndim not in (2, 4):
        raise ValueError(f"batch_norm (CPU kernel): expected (N, C) or (N, C, H, W) input, got "
                         f"shape {tuple(x.shape)}")
    L = 1 if x.ndim == 2 else x.shape[2] * x.shape[3]
    return numpy.ascontiguousarray(x, dtype=dtype).reshape(x.shape[0], x.shape[1], L)


def _vector(v, C, dtype, fill):
    """A contiguous (C,) vector of `dtype`: v, or `fill` everywhere when v is None."""
    if v is None:
        return numpy.full(C, fill, dtype=dtype)
    return numpy.ascontiguousarray(v, dtype=dtype)


def batch_norm_train_forward(x, weight, bias, eps):
    """x (N, C) or (N, C, H, W) -> y (x's shape and memory layout), mean, var (biased),
    inv_std (C,)."""
    x2 = _as_rows(x)                                         # (M, C) if channels last
    if x2 is not None:
        C = x.shape[1]
        return _train_forward_rows(x, x2, _vector(weight, C, x.dtype, 1.0),
                                   _vector(bias, C, x.dtype, 0.0), eps)
    x3 = _as_ncl(x, x.dtype)                                 # (N, C, L)
    C = x3.shape[1]
    y = numpy.empty_like(x3)
    mean, var, inv_std = (numpy.empty(C, dtype=x.dtype) for _ in range(3))
    weight, bias = _vector(weight, C, x.dtype, 1.0), _vector(bias, C, x.dtype, 0.0)
    ranges = _channel_ranges(C)
    share(len(ranges), lambda: lambda i: _forward(x3, weight, bias, float(eps), y, mean, var,
                                                  inv_std, *ranges[i]))
    return y.reshape(x.shape), mean, var, inv_std


def batch_norm_train_backward(gy, x, mean, inv_std, weight):
    """-> gx (x's shape), gweight (C,) (None when weight is None), gbias (C,)."""
    if gy.shape != x.shape:
        raise ValueError(f"batch_norm_train_backward: gy has shape {tuple(gy.shape)}, x has "
                         f"shape {tuple(x.shape)}; they must match")
    dtype = gy.dtype
    x2 = _as_rows(x)
    if x2 is not None:                                       # channels last: gy made so too
        C = x.shape[1]
        gy2 = _as_rows(gy)
        if gy2 is None:
            gy2 = numpy.ascontiguousarray(gy.transpose(0, 2, 3, 1)).reshape(-1, C)
        gx, gweight, gbias = _train_backward_rows(gy2.astype(dtype, copy=False),
                                                  x2.astype(dtype, copy=False), x,
                                                  _vector(mean, C, dtype, 0.0),
                                                  _vector(inv_std, C, dtype, 0.0),
                                                  _vector(weight, C, dtype, 1.0))
        return gx, (None if weight is None else gweight), gbias
    gy3, x3 = _as_ncl(gy, dtype), _as_ncl(x, dtype)         # (N, C, L)
    C = x3.shape[1]
    gx = numpy.empty_like(gy3)
    gweight, gbias = numpy.empty(C, dtype=dtype), numpy.empty(C, dtype=dtype)
    mean, inv_std = _vector(mean, C, dtype, 0.0), _vector(inv_std, C, dtype, 0.0)
    weight_k = _vector(weight, C, dtype, 1.0)
    ranges = _channel_ranges(C)
    share(len(ranges), lambda: lambda i: _backward(gy3, x3, mean, inv_std, weight_k, gx, gweight,
                                                   gbias, *ranges[i]))
    return gx.reshape(gy.shape), (None if weight is None else gweight), gbias


def batch_norm_eval_forward(x, mean, scale, bias):
    """Eval mode: y = (x - mean) * scale + bias per channel (bias None: no shift); y keeps x's
    memory layout."""
    x2 = _as_rows(x)                                         # (M, C) if channels last
    x3 = _as_ncl(x, x.dtype) if x2 is None else None         # else (N, C, L)
    C = x.shape[1]
    mean, scale = _vector(mean, C, x.dtype, 0.0), _vector(scale, C, x.dtype, 1.0)
    bias = _vector(bias, C, x.dtype, 0.0)
    if x2 is not None:
        y, y2 = _rows_like(x, x.dtype)
        blocks = _row_blocks(x2.shape[0])
        share(len(blocks), lambda: lambda i: _rows_affine(x2, mean, scale, bias, y2, *blocks[i]))
        return y
    y = numpy.empty_like(x3)
    ranges = _channel_ranges(C)
    share(len(ranges), lambda: lambda i: _eval_forward(x3, mean, scale, bias, y, *ranges[i]))
    return y.reshape(x.shape)
