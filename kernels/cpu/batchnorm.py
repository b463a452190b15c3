"""Batch norm on the CPU: a statistics pass, then a normalise (or gradient) pass, each one trip
through memory.

The readable NumPy twins are in tinyres/functional/batchnorm.py (the math, and the closed-form
backward, are explained there and in docs/batchnorm.md). For each channel c, over its
m = N*H*W values:

    forward    mean_c, var_c (biased), inv_std_c = 1/sqrt(var_c + eps)
               y = (x - mean_c) * inv_std_c * weight_c + bias_c
    backward   sum(dy) and sum(dy * x_hat) per channel, then
               dx = weight_c * inv_std_c / m * (m*dy - sum(dy) - x_hat * sum(dy * x_hat))

The NumPy version makes a new array for every step (x - mean, its square, x_hat, y, ...) and
reads the whole tensor again for each: about ten trips through memory for the forward alone.
Here a pass does all of its steps on a part of x (a block of rows, or a few channels) while it
is in the core's cache: the forward reads x twice (statistics, then normalise) and writes y
once. The parts are shared among the threads (threads.py).

Accuracy. The statistics are sums over m values (131,072 in ResNet-20's first stage). They are
accumulated in float64, whatever the data's type (a row's channels side by side, or along a
channel's runs in four interleaved partial sums, so that the additions of a step do not wait for
each other), and the forward's *about a shift*: the channel's first value.
The variance is then E[(x-s)^2] - E[x-s]^2, which loses nothing to cancellation as long as
|mean - s| is not huge compared with the standard deviation: s is one of the channel's own
values, so it lies within a few standard deviations of the mean. (The reference takes two
passes, the mean first; the GPU kernels do the same.)

Each idea is one routine per memory layout: a statistics pass (per-channel float64 sums of
u - su and (u - su) * (v - sv): the forward's with u = v = x about the shift, the backward's with
u = dy, v = x about the mean), a normalise pass y = (x - mean) * scale * weight + bias (training:
scale = inv_std; eval, the running statistics' per-channel affine map: scale folded, weight 1,
which changes no bit) and the backward's gradient pass. The two layouts:

    channels last, dense   the fast path's activations (a convolution's output, layout.py): an
                           (M, C) matrix of rows, M = N*H*W, one row per pixel. A channel's
                           values are C apart, so a pass is cut into blocks of rows.
    anything else          copied C-contiguous, an (N, C, L) array, L = H*W (or 1): a channel
                           is N runs of L numbers, and a pass is cut into ranges of channels.

`_Layout` picks one for an input, cuts the passes and keeps the outputs in the input's layout
(the next layer gets the memory it wants). Each part's per-channel sums are kept apart and added
in part order afterwards, so the result does not depend on the threads.

The kernels take float32 and float64 data (DTYPES); tinyres.dispatch sends any other type to
the reference. This module never imports tinyres.
"""
import numpy
from numba import njit

from .layout import channels_last
from .threads import num_threads, share

DTYPES = (numpy.float32, numpy.float64)


# ----------------------------------------------------------------------------------------------
# Channels last: x (M, C), one row per pixel; the loops over a row's C channels vectorise.
# ----------------------------------------------------------------------------------------------
@njit(nogil=True, cache=True)
def _row_sums(u, su, v, sv, first, last, sums, products):
    """sums[c], products[c] = the float64 sums of u - su[c] and (u - su[c]) * (v - sv[c]) over
    the rows first .. last-1 of u, v (M, C); su, sv float64 (C,); v None: v is u, sv su (the
    forward's sum of squares, compiled without the second read). Summed in local arrays,
    written once at the end: the parts' results sit side by side in memory, and threads writing
    there at every row would fight over the cache lines they share."""
    C = u.shape[1]
    s, p = numpy.zeros(C), numpy.zeros(C)
    for r in range(first, last):
        u_row = u[r]
        for c in range(C):
            d = numpy.float64(u_row[c]) - su[c]
            s[c] += d
            p[c] += d * (d if v is None else numpy.float64(v[r, c]) - sv[c])
    sums[:] = s
    products[:] = p


@njit(nogil=True, cache=True)
def _row_normalise(x, mean, scale, weight, bias, y, first, last):
    """y = ((x - mean) * scale) * weight + bias per channel over the rows first .. last-1, in
    x's dtype: the reference's steps in its order."""
    C = x.shape[1]
    for r in range(first, last):
        source, target = x[r], y[r]
        for c in range(C):
            target[c] = (source[c] - mean[c]) * scale[c] * weight[c] + bias[c]


@njit(nogil=True, cache=True)
def _row_grad(gy, x, mean, mean_dy, slope, scale, gx, first, last):
    """dx = (dy - mean_dy - (x - mean) * slope) * scale per channel (float64 vectors), rows
    first .. last-1."""
    C = x.shape[1]
    for r in range(first, last):
        g, source, target = gy[r], x[r], gx[r]
        for c in range(C):
            target[c] = (numpy.float64(g[c]) - mean_dy[c]
                         - (numpy.float64(source[c]) - mean[c]) * slope[c]) * scale[c]


# ----------------------------------------------------------------------------------------------
# Any other layout, copied to (N, C, L): channel c is the N runs x[n, c] of L numbers. The loops
# index those 1-D runs from 0 with range(): Numba then knows no index is negative and the
# compiler makes vector instructions of them.
# ----------------------------------------------------------------------------------------------
@njit(nogil=True, cache=True)
def _channel_sums(u, su, v, sv, first, last, sums, products):
    """sums[c], products[c] as _row_sums's (v None: v is u), for the channels first .. last-1
    of u, v (N, C, L), in four interleaved partial sums along each run."""
    N, C, L = u.shape
    L4 = L - L % 4
    for c in range(first, last):
        su_c, sv_c = su[c], (su[c] if sv is None else sv[c])
        s0, s1, s2, s3 = 0.0, 0.0, 0.0, 0.0
        p0, p1, p2, p3 = 0.0, 0.0, 0.0, 0.0
        for n in range(N):
            u_run = u[n, c]
            v_run = u_run if v is None else v[n, c]
            for i in range(0, L4, 4):                        # four sums side by side
                d0, d1 = u_run[i] - su_c, u_run[i + 1] - su_c
                d2, d3 = u_run[i + 2] - su_c, u_run[i + 3] - su_c
                s0 += d0
                s1 += d1
                s2 += d2
                s3 += d3
                p0 += d0 * (v_run[i] - sv_c)
                p1 += d1 * (v_run[i + 1] - sv_c)
                p2 += d2 * (v_run[i + 2] - sv_c)
                p3 += d3 * (v_run[i + 3] - sv_c)
            for i in range(L4, L):
                d0 = u_run[i] - su_c
                s0 += d0
                p0 += d0 * (v_run[i] - sv_c)
        sums[c] = (s0 + s1) + (s2 + s3)
        products[c] = (p0 + p1) + (p2 + p3)


@njit(nogil=True, cache=True)
def _channel_normalise(x, mean, scale, weight, bias, y, first, last):
    """y = ((x - mean) * scale) * weight + bias for the channels first .. last-1, in x's dtype."""
    N, C, L = x.shape
    for c in range(first, last):
        mean_c, scale_c, weight_c, bias_c = mean[c], scale[c], weight[c], bias[c]
        for n in range(N):
            source, target = x[n, c], y[n, c]
            for i in range(L):
                target[i] = (source[i] - mean_c) * scale_c * weight_c + bias_c


@njit(nogil=True, cache=True)
def _channel_grad(gy, x, mean, mean_dy, slope, scale, gx, first, last):
    """dx = (dy - mean_dy - (x - mean) * slope) * scale (float64 vectors), channels
    first .. last-1."""
    N, C, L = x.shape
    for c in range(first, last):
        mean_c, mean_dy_c, slope_c, scale_c = mean[c], mean_dy[c], slope[c], scale[c]
        for n in range(N):
            g, source, target = gy[n, c], x[n, c], gx[n, c]
            for i in range(L):
                target[i] = (numpy.float64(g[i]) - mean_dy_c
                             - (source[i] - mean_c) * slope_c) * scale_c


# ----------------------------------------------------------------------------------------------
# The layout helper: which kernels walk an input, and how their passes are cut
# ----------------------------------------------------------------------------------------------
ROWS_PER_BLOCK = 4096          # 256 KB of 16 float32 channels: a block stays in a core's cache


class _Layout:
    """x (N, C) or (N, C, H, W) as the kernels walk it: `view` (dense channels-last memory as
    its (M, C) rows, else a C-contiguous (N, C, L) copy) and the parts a pass is cut into
    (blocks of rows, or ranges of channels: about four a thread)."""

    def __init__(self, x):
        if x.ndim not in (2, 4):
            raise ValueError(f"batch_norm (CPU kernel): expected (N, C) or (N, C, H, W) input, "
                             f"got shape {tuple(x.shape)}")
        self.shape, C = x.shape, x.shape[1]
        x_cl = channels_last(x)
        self.by_rows = x_cl is not None and x_cl.flags.c_contiguous
        if self.by_rows:
            M = x_cl.shape[0] * x_cl.shape[1] * x_cl.shape[2]
            bounds = list(range(0, M, ROWS_PER_BLOCK)) + [M]
            self.sums, self.normalise, self.grad = _row_sums, _row_normalise, _row_grad
        else:
            parts = min(C, 4 * num_threads())
            bounds = [C * i // parts for i in range(parts + 1)]
            self.sums, self.normalise, self.grad = _channel_sums, _channel_normalise, _channel_grad
        self.parts = list(zip(bounds[:-1], bounds[1:]))
        self.view = self.read(x, x.dtype)

    def read(self, a, dtype):
        """a, of x's shape, laid out as x's view, in `dtype` (a view where it already is)."""
        N, C = self.shape[:2]
        if self.by_rows:
            a_cl = a.transpose(0, 2, 3, 1)                   # (N, H, W, C)
            return numpy.ascontiguousarray(a_cl, dtype=dtype).reshape(-1, C)
        return numpy.ascontiguousarray(a, dtype=dtype).reshape(N, C, -1)

    def empty(self, dtype):
        """An uninitialised output of x's shape and layout, and its view."""
        N, C = self.shape[:2]
        if self.by_rows:
            _, _, H, W = self.shape
            memory = numpy.empty((N, H, W, C), dtype=dtype)
            return memory.transpose(0, 3, 1, 2), memory.reshape(-1, C)
        view = numpy.empty((N, C, self.view.shape[2]), dtype=dtype)
        return view.reshape(self.shape), view

    def run(self, kernel, *args):
        """kernel(*args, first, last) for every part, shared among the threads."""
        share(len(self.parts), lambda: lambda i: kernel(*args, *self.parts[i]))

    def channel_sums(self, u, su, v=None, sv=None):
        """The float64 (C,) sums of u - su and (u - su) * (v - sv) per channel (views; su, sv
        float64 (C,); v None: v is u, sv su): each part's apart, then added in part order."""
        partial = numpy.zeros((2, len(self.parts), self.shape[1]))
        share(len(self.parts), lambda: lambda i: self.sums(u, su, v, sv, *self.parts[i],
                                                           partial[0, i], partial[1, i]))
        return partial.sum(axis=1)                           # part order: deterministic


def _vector(v, C, dtype, fill):
    """A contiguous (C,) vector of `dtype`: v, or `fill` everywhere when v is None."""
    if v is None:
        return numpy.full(C, fill, dtype=dtype)
    return numpy.ascontiguousarray(v, dtype=dtype)


# ----------------------------------------------------------------------------------------------
# Host functions: same names, signatures and results as tinyres.functional.batchnorm's twins
# ----------------------------------------------------------------------------------------------
def batch_norm_train_forward(x, weight, bias, eps):
    """x (N, C) or (N, C, H, W) -> y (x's shape and memory layout), mean, var (biased),
    inv_std (C,)."""
    layout, C, dtype = _Layout(x), x.shape[1], x.dtype
    M = x.size // C
    shift = layout.view.reshape(-1, C)[0] if layout.by_rows else layout.view[0, :, 0]
    shift = shift.astype(numpy.float64)                      # each channel's first value
    sums, squares = layout.channel_sums(layout.view, shift)
    mean_shifted = sums / M
    variance = numpy.maximum(squares / M - mean_shifted ** 2, 0.0)
    mean, var = (shift + mean_shifted).astype(dtype), variance.astype(dtype)
    inv_std = (1.0 / numpy.sqrt(variance + eps)).astype(dtype)
    y, y_view = layout.empty(dtype)
    layout.run(layout.normalise, layout.view, mean, inv_std, _vector(weight, C, dtype, 1.0),
               _vector(bias, C, dtype, 0.0), y_view)
    return y, mean, var, inv_std


def batch_norm_train_backward(gy, x, mean, inv_std, weight):
    """-> gx (x's shape and memory layout), gweight (C,) (None when weight is None), gbias (C,).

    With sum(dy) and sum(dy * (x - mean)) per channel, in float64:
        dx = weight * inv_std * (dy - sum(dy)/m - (x - mean) * inv_std^2 * sum(dy * (x - mean))/m)
    """
    if gy.shape != x.shape:
        raise ValueError(f"batch_norm_train_backward: gy has shape {tuple(gy.shape)}, x has "
                         f"shape {tuple(x.shape)}; they must match")
    layout, C, dtype = _Layout(x), x.shape[1], gy.dtype
    M = x.size // C
    gy_view, x_view = layout.read(gy, dtype), layout.read(x, dtype)
    mean64 = _vector(mean, C, dtype, 0.0).astype(numpy.float64)
    inv_std64 = _vector(inv_std, C, dtype, 0.0).astype(numpy.float64)
    sum_dy, sum_dy_xc = layout.channel_sums(gy_view, numpy.zeros(C), x_view, mean64)
    slope = inv_std64 * inv_std64 * sum_dy_xc / M
    scale = _vector(weight, C, dtype, 1.0).astype(numpy.float64) * inv_std64
    gx, gx_view = layout.empty(dtype)
    layout.run(layout.grad, gy_view, x_view, mean64, sum_dy / M, slope, scale, gx_view)
    gweight = None if weight is None else (sum_dy_xc * inv_std64).astype(dtype)  # sum(dy x_hat)
    return gx, gweight, sum_dy.astype(dtype)


def batch_norm_eval_forward(x, mean, scale, bias):
    """Eval mode: y = (x - mean) * scale + bias per channel (bias None: no shift), the normalise
    pass with weight 1 (x * 1 is x: the same bits); y keeps x's memory layout."""
    layout, C, dtype = _Layout(x), x.shape[1], x.dtype
    y, y_view = layout.empty(dtype)
    layout.run(layout.normalise, layout.view, _vector(mean, C, dtype, 0.0),
               _vector(scale, C, dtype, 1.0), numpy.ones(C, dtype=dtype),
               _vector(bias, C, dtype, 0.0), y_view)
    return y
