"""Batch norm on the GPU: per-channel sums by a shared-memory tree reduction, then one fused
elementwise pass.

The readable NumPy twins are in tinyres/functional/batchnorm.py (the math, and the closed-form
backward, are explained there and in docs/batchnorm.md). For each channel c, over its
m = N*H*W values:

    forward    mean_c, var_c = the mean and the (biased) variance,  inv_std_c = 1/sqrt(var_c + eps)
               y = (x - mean_c) * inv_std_c * weight_c + bias_c                    (elementwise.py)
    backward   sum(dy) and sum(dy * x_hat) per channel, then
               dx = weight_c * inv_std_c / m * (m*dy - sum(dy) - x_hat * sum(dy * x_hat))

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
equal numbers when |mean| >> std (it can even come out negative). The block owns its channel, so
both passes happen inside one kernel.

One block per channel is the simplest correct layout, and a learner can follow it; but a layer
with 16 channels then keeps only 16 of a GPU's ~80 multiprocessors busy. Production libraries
split each channel across many blocks and combine their partial sums in a second step.
"""
import math

from numba import cuda, float32, float64

from .elementwise import batch_norm_apply_kernel, batch_norm_backward_dx_kernel
from .launch import (DTYPES, REDUCE_THREADS, array_module, check_float,  # noqa: F401 (DTYPES:
                     launch_per_channel, launch_per_element)               # what it takes)


# The tree (step 3 above) is written out in each kernel rather than in a helper device function:
# compiling a kernel that calls a device function to PTX asks for a GPU in numba-cuda 0.30, and
# CI has none. Its shape is always the same:
#
#     cuda.syncthreads()                       # every partial[t] has been written
#     stride = REDUCE_THREADS // 2
#     while stride > 0:
#         if t < stride:
#             partial[t] += partial[t + stride]
#         cuda.syncthreads()                   # outside the `if`: every thread must reach it
#         stride //= 2


@cuda.jit
def channel_stats_kernel(x, eps, mean, var, inv_std):
    """x (N, C, L) -> mean, var (biased), inv_std (C,); block c computes channel c."""
    N, L = x.shape[0], x.shape[2]
    c = cuda.blockIdx.x                     # this block's channel
    t = cuda.threadIdx.x                    # this thread's place in the block
    m = N * L                               # values in the channel; value k is x[k // L, c, k % L]
    partial = cuda.shared.array(REDUCE_THREADS, float64)

    # pass 1: the mean
    total = float64(0.0)
    for k in range(t, m, REDUCE_THREADS):   # neighbouring threads read neighbouring values
        total += x[k // L, c, k % L]
    partial[t] = total
    cuda.syncthreads()
    stride = REDUCE_THREADS // 2            # the tree: partial[0] becomes the channel's sum
    while stride > 0:
        if t < stride:
            partial[t] += partial[t + stride]
        cuda.syncthreads()
        stride //= 2
    mean_c = partial[0] / m
    cuda.syncthreads()                      # all have read partial[0] before it is reused

    # pass 2: the variance about that mean
    total = float64(0.0)
    for k in range(t, m, REDUCE_THREADS):
        d = x[k // L, c, k % L] - mean_c
        total += d * d
    partial[t] = total
    cuda.syncthreads()
    stride = REDUCE_THREADS // 2
    while stride > 0:
        if t < stride:
            partial[t] += partial[t + stride]
        cuda.syncthreads()
        stride //= 2

    if t == 0:                              # one thread writes the channel's results
        var_c = partial[0] / m
        mean[c] = mean_c
        var[c] = var_c
        inv_std[c] = float64(1.0) / math.sqrt(var_c + eps)


@cuda.jit
def channel_grad_sums_kernel(gy, x, mean, inv_std, sum_dy, sum_dy_xhat):
    """gy, x (N, C, L) -> sum(dy), sum(dy * x_hat) per channel (C,); block c does channel c.
    Two sums at once: two shared arrays, reduced side by side by one tree."""
    N, L = x.shape[0], x.shape[2]
    c = cuda.blockIdx.x
    t = cuda.threadIdx.x
    m = N * L
    partial_dy = cuda.shared.array(REDUCE_THREADS, float64)
    partial_dy_xhat = cuda.shared.array(REDUCE_THREADS, float64)

    mean_c, inv_std_c = mean[c], inv_std[c]
    total_dy = float64(0.0)
    total_dy_xhat = float64(0.0)
    for k in range(t, m, REDUCE_THREADS):
        n, j = k // L, k % L
        dy = gy[n, c, j]
        x_hat = (x[n, c, j] - mean_c) * inv_std_c
        total_dy += dy
        total_dy_xhat += dy * x_hat
    partial_dy[t] = total_dy
    partial_dy_xhat[t] = total_dy_xhat
    cuda.syncthreads()
    stride = REDUCE_THREADS // 2
    while stride > 0:
        if t < stride:
            partial_dy[t] += partial_dy[t + stride]
            partial_dy_xhat[t] += partial_dy_xhat[t + stride]
        cuda.syncthreads()
        stride //= 2

    if t == 0:
        sum_dy[c] = partial_dy[0]
        sum_dy_xhat[c] = partial_dy_xhat[0]


# The exact argument types of each kernel for float32 data (checked by the simulator tests and
# compiled to PTX in CI).
VECTOR = float32[::1]
FLOAT32_SIGNATURES = {
    channel_stats_kernel: (float32[:, :, ::1], float32, VECTOR, VECTOR, VECTOR),
    channel_grad_sums_kernel: (float32[:, :, ::1], float32[:, :, ::1], VECTOR, VECTOR, VECTOR,
                               VECTOR),
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


def batch_norm_train_forward(x, weight, bias, eps):
    """x (N, C) or (N, C, H, W) -> y (x's shape), mean, var (biased), inv_std (C,)."""
    xp = array_module(x)
    check_float("batch_norm_train_forward", x)
    x3 = _as_ncl(xp, x)                                        # (N, C, L)
    C = x3.shape[1]
    mean, var, inv_std = (xp.empty(C, dtype=x.dtype) for _ in range(3))
    launch_per_channel(channel_stats_kernel, C, x3, x.dtype.type(eps), mean, var, inv_std)
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
    sum_dy, sum_dy_xhat = xp.empty(C, dtype=gy.dtype), xp.empty(C, dtype=gy.dtype)
    launch_per_channel(channel_grad_sums_kernel, C, gy3, x3, mean, inv_std, sum_dy, sum_dy_xhat)
    gx = xp.empty_like(gy3)
    launch_per_element(batch_norm_backward_dx_kernel, gx.size, gy3, x3, mean, inv_std,
                       _vector(xp, weight, x3, fill=1.0), sum_dy, sum_dy_xhat,
                       gy.dtype.type(N * L), gx)
    return gx.reshape(gy.shape), (None if weight is None else sum_dy_xhat), sum_dy
