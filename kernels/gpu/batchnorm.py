"""Batch norm on the GPU: per-channel sums by a shared-memory tree reduction, then one fused
elementwise pass.

The readable NumPy twins are in tinyres/functional/batchnorm.py (the math, and the closed-form
backward, are explained there and in docs/batchnorm.md). For each channel c, over its
m = N*H*W values:

    forward    mean_c, var_c = the mean and the (biased) variance,  inv_std_c = 1/sqrt(var_c + eps)
               y = (x - mean_c) * inv_std_c * weight_c + bias_c
    backward   sum(dy) and sum(dy * x_hat) per channel, then
               dx = weight_c * inv_std_c / m * (m*dy - sum(dy) - x_hat * sum(dy * x_hat))

Every per-channel sum here is one kernel, `channel_sums_kernel`: for each channel, the sums of
d = u - u_shift_c and of d * (v - v_shift_c) * v_scale_c over the channel's values, two arrays u,
v of the data's shape. Three launches of it give everything:

    the mean          u = x                                    sum(d) / m
    the variance      u = v = x, shifted by the mean            sum(d * d) / m       (pass 2)
    the gradient      u = dy; v = x, shifted by the mean,       sum(dy), sum(dy * x_hat)
    sums                  scaled by inv_std

A per-channel sum is a *reduction*: many values in, one out. Threads cannot all add into one
number at once, so they cooperate in steps. One block of REDUCE_THREADS (128) threads owns one
channel (the grid has C blocks):

  1. Each thread t walks the channel's values t, t+128, t+256, ... and adds them up on its own.
  2. It writes its partial sum to partial[t], an array in the block's *shared memory* (fast
     memory that the threads of one block share; other blocks cannot see it).
  3. Tree: 128 partial sums -> 64 -> 32 -> ... -> 1. In each step the lower half of the threads
     adds in the upper half (partial[t] += partial[t + stride]), and all threads wait at
     cuda.syncthreads() until the step is done, so nobody reads a value before it is written.
     log2(128) = 7 steps; partial[0] then holds the channel's sum.

        partial:  a0 a1 a2 a3 a4 a5 a6 a7      (8 threads shown)
        stride 4: a0+a4  a1+a5  a2+a6  a3+a7
        stride 2: (a0+a4)+(a2+a6)  (a1+a5)+(a3+a7)
        stride 1: the total, in partial[0]

Accuracy. The sums are accumulated in float64 whatever the data's type. Each thread adds about
m/128 values one after another, and in float32 every addition may round by up to 6e-8 of the
running sum: for a channel of a million values (a batch of 256 maps of 64x64) that is ~8,000
additions per thread and a possible drift of ~5e-4. In float64 the same drift is ~1e-12, far
below what float32 can store, and it costs little: these kernels are limited by reading x from
memory, not by the additions. The variance is computed in two passes, the mean first, then the
mean of (x - mean)^2, because the one-pass formula E[x^2] - E[x]^2 subtracts two large, nearly
equal numbers when |mean| >> std (it can even come out negative). The sums come back in float64
and the host turns them into mean, var and inv_std (C numbers) in float64 too.

The elementwise passes are fused: an elementwise GPU kernel is limited by memory, not arithmetic,
and the readable twin writes y as three or four array operations, each reading and writing a
whole (N, C, H, W) array. Here each thread reads its x once and writes its y once, all the steps
in registers between; the backward's dx likewise. Thread i owns element i = (n*C + c)*L + j.

One block per channel is the simplest correct layout, and a learner can follow it; but a layer
with 16 channels then keeps only 16 of a GPU's ~80 multiprocessors busy. Production libraries
split each channel across many blocks and combine their partial sums in a second step.
"""
from numba import cuda, float32, float64

from .launch import (DTYPES, REDUCE_THREADS, array_module, check_float,  # noqa: F401 (DTYPES:
                     launch_per_channel, launch_per_element)               # what it takes)


# The tree (step 3 above) is written once, here: one kernel serves every per-channel sum, because
# compiling a kernel that calls a helper device function to PTX asks for a GPU in numba-cuda
# 0.30, and CI has none.
@cuda.jit
def channel_sums_kernel(u, v, u_shift, v_shift, v_scale, sum_d, sum_de):
    """Block c: sum_d[c] = sum of d, sum_de[c] = sum of d * e over channel c's values, with
    d = u - u_shift[c] and e = (v - v_shift[c]) * v_scale[c]. u, v (N, C, L); the (C,) shifts,
    scale and sums in float64. Two sums at once: two shared arrays, reduced side by side."""
    N, L = u.shape[0], u.shape[2]
    c = cuda.blockIdx.x                     # this block's channel
    t = cuda.threadIdx.x                    # this thread's place in the block
    m = N * L                               # values in the channel; value k is u[k // L, c, k % L]
    partial_d = cuda.shared.array(REDUCE_THREADS, float64)
    partial_de = cuda.shared.array(REDUCE_THREADS, float64)

    u_shift_c, v_shift_c, v_scale_c = u_shift[c], v_shift[c], v_scale[c]
    total_d = float64(0.0)
    total_de = float64(0.0)
    for k in range(t, m, REDUCE_THREADS):   # neighbouring threads read neighbouring values
        n, j = k // L, k % L
        d = u[n, c, j] - u_shift_c
        total_d += d
        total_de += d * (v[n, c, j] - v_shift_c) * v_scale_c
    partial_d[t] = total_d
    partial_de[t] = total_de
    cuda.syncthreads()                      # every partial[t] has been written
    stride = REDUCE_THREADS // 2            # the tree: partial[0] becomes the channel's sum
    while stride > 0:
        if t < stride:
            partial_d[t] += partial_d[t + stride]
            partial_de[t] += partial_de[t + stride]
        cuda.syncthreads()                  # outside the `if`: every thread must reach it
        stride //= 2

    if t == 0:                              # one thread writes the channel's results
        sum_d[c] = partial_d[0]
        sum_de[c] = partial_de[0]


@cuda.jit
def batch_norm_apply_kernel(x, mean, inv_std, weight, bias, y):
    """y = (x - mean[c]) * inv_std[c] * weight[c] + bias[c]: normalise, scale and shift in one
    pass. x, y (N, C, L); mean, inv_std, weight, bias (C,)."""
    C, L = x.shape[1], x.shape[2]
    i = cuda.grid(1)
    if i >= x.size:
        return
    j = i % L                                   # i = (n*C + c)*L + j
    c = (i // L) % C
    n = i // (L * C)
    x_hat = (x[n, c, j] - mean[c]) * inv_std[c]
    y[n, c, j] = x_hat * weight[c] + bias[c]


@cuda.jit
def batch_norm_backward_dx_kernel(gy, x, mean, inv_std, weight, sum_dy, sum_dy_xhat, m, gx):
    """gx = weight[c] * inv_std[c] / m * (m * gy - sum(gy) - x_hat * sum(gy * x_hat)).

    m (the count of values per channel) is passed as a float of the data's type, so m * gy
    stays float32. gy, x, gx (N, C, L); the other vectors (C,)."""
    C, L = x.shape[1], x.shape[2]
    i = cuda.grid(1)
    if i >= x.size:
        return
    j = i % L
    c = (i // L) % C
    n = i // (L * C)
    x_hat = (x[n, c, j] - mean[c]) * inv_std[c]
    scale = weight[c] * inv_std[c] / m
    gx[n, c, j] = (m * gy[n, c, j] - sum_dy[c] - x_hat * sum_dy_xhat[c]) * scale


# The exact argument types of each kernel for float32 data (checked by the simulator tests and
# compiled to PTX in CI).
VECTOR = float32[::1]
SUMS = float64[::1]
FLOAT32_SIGNATURES = {
    channel_sums_kernel: (float32[:, :, ::1], float32[:, :, ::1], SUMS, SUMS, SUMS, SUMS, SUMS),
    batch_norm_apply_kernel: (float32[:, :, ::1], VECTOR, VECTOR, VECTOR, VECTOR,
                              float32[:, :, ::1]),
    batch_norm_backward_dx_kernel: (float32[:, :, ::1], float32[:, :, ::1], VECTOR, VECTOR, VECTOR,
                                    VECTOR, VECTOR, float32, float32[:, :, ::1]),
}


# ----------------------------------------------------------------------------------------------
# Host functions: same names, signatures and results as tinyres.functional.batchnorm's twins
# ----------------------------------------------------------------------------------------------
def _as_ncl(xp, x):
    """(N, C) or (N, C, H, W) -> a C-contiguous (N, C, L) view, L = 1 or H*W."""
    if x.ndim not in (2, 4):
        raise ValueError(f"batch_norm (GPU kernel): expected (N, C) or (N, C, H, W) input, got "
                         f"shape {tuple(x.shape)}")
    N, C = x.shape[0], x.shape[1]
    L = 1 if x.ndim == 2 else x.shape[2] * x.shape[3]
    return xp.ascontiguousarray(x).reshape(N, C, L)


def _vector(xp, v, like, fill=None):
    """A contiguous (C,) vector of like's dtype: `v`, or `fill` everywhere when v is None."""
    if v is None:
        return xp.full(like.shape[1], fill, dtype=like.dtype)
    return xp.ascontiguousarray(v, dtype=like.dtype)


def _channel_sums(xp, u, v, u_shift, v_shift, v_scale):
    """(sum of d, sum of d * e) per channel, in float64 (see channel_sums_kernel)."""
    C = u.shape[1]
    sum_d, sum_de = xp.empty(C, dtype=xp.float64), xp.empty(C, dtype=xp.float64)
    launch_per_channel(channel_sums_kernel, C, u, v, u_shift, v_shift, v_scale, sum_d, sum_de)
    return sum_d, sum_de


def batch_norm_train_forward(x, weight, bias, eps):
    """x (N, C) or (N, C, H, W) -> y (x's shape), mean, var (biased), inv_std (C,)."""
    xp = array_module(x)
    check_float("batch_norm_train_forward", x)
    x3 = _as_ncl(xp, x)                                        # (N, C, L)
    N, C, L = x3.shape
    zeros, ones = xp.zeros(C, dtype=xp.float64), xp.ones(C, dtype=xp.float64)
    total, _ = _channel_sums(xp, x3, x3, zeros, zeros, zeros)            # pass 1: sum(x)
    mean64 = total / (N * L)
    _, squares = _channel_sums(xp, x3, x3, mean64, mean64, ones)         # pass 2: sum((x-mean)^2)
    var64 = squares / (N * L)
    inv_std64 = 1.0 / xp.sqrt(var64 + float(x.dtype.type(eps)))
    mean, var, inv_std = (a.astype(x.dtype) for a in (mean64, var64, inv_std64))
    weight = _vector(xp, weight, x3, fill=1.0)                 # None: scale by 1
    bias = _vector(xp, bias, x3, fill=0.0)                     # None: shift by 0
    y = xp.empty_like(x3)
    launch_per_element(batch_norm_apply_kernel, y.size, x3, mean, inv_std, weight, bias, y)
    return y.reshape(x.shape), mean, var, inv_std


def batch_norm_train_backward(gy, x, mean, inv_std, weight):
    """-> gx (x's shape), gweight (C,) (None when weight is None), gbias (C,)."""
    xp = array_module(gy)
    check_float("batch_norm_train_backward", gy)
    if gy.shape != x.shape:
        raise ValueError(f"batch_norm_train_backward: gy has shape {tuple(gy.shape)}, x has "
                         f"shape {tuple(x.shape)}; they must match")
    gy3, x3 = _as_ncl(xp, gy), _as_ncl(xp, x.astype(gy.dtype, copy=False))   # (N, C, L)
    N, C, L = x3.shape
    mean, inv_std = _vector(xp, mean, x3), _vector(xp, inv_std, x3)
    sums = _channel_sums(xp, gy3, x3, xp.zeros(C, dtype=xp.float64),
                         mean.astype(xp.float64), inv_std.astype(xp.float64))
    sum_dy, sum_dy_xhat = (a.astype(gy.dtype) for a in sums)     # sum(dy), sum(dy * x_hat)
    gx = xp.empty_like(gy3)
    launch_per_element(batch_norm_backward_dx_kernel, gx.size, gy3, x3, mean, inv_std,
                       _vector(xp, weight, x3, fill=1.0), sum_dy, sum_dy_xhat,
                       gy.dtype.type(N * L), gx)
    return gx.reshape(gy.shape), (None if weight is None else sum_dy_xhat), sum_dy
