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

The kernels take float32 and float64 data (DTYPES); tinyres.dispatch sends any other type to
the reference. This module never imports tinyres.
"""
import numpy
from numba import njit

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
    """x (N, C) or (N, C, H, W) -> y (x's shape), mean, var (biased), inv_std (C,)."""
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
    """Eval mode: y = (x - mean) * scale + bias per channel (bias None: no shift)."""
    x3 = _as_ncl(x, x.dtype)                                 # (N, C, L)
    C = x3.shape[1]
    y = numpy.empty_like(x3)
    mean, scale = _vector(mean, C, x.dtype, 0.0), _vector(scale, C, x.dtype, 1.0)
    bias = _vector(bias, C, x.dtype, 0.0)
    ranges = _channel_ranges(C)
    share(len(ranges), lambda: lambda i: _eval_forward(x3, mean, scale, bias, y, *ranges[i]))
    return y.reshape(x.shape)
