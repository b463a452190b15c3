"""Fused elementwise kernels: several array operations done in one pass over memory.

An elementwise GPU kernel is limited by memory, not arithmetic: reading and writing an array
costs far more than the few multiply-adds done on each value. The readable batch-norm twin
(tinyres/functional/batchnorm.py) writes y = (x - mean) * inv_std * weight + bias as three or four
array operations, each reading and writing a whole (N, C, H, W) array. Here each thread reads its
x once and writes its y once, with all four steps in registers in between: one pass instead of
four. The backward's dx formula is fused the same way.

Both kernels see the data as (N, C, L): L = H*W for images, 1 for (N, C) input. Thread i owns
element i = (n*C + c)*L + j, and the per-channel vectors are indexed by its channel c.
"""
from numba import cuda, float32


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

    The two sums per channel come from the reduction kernel (batchnorm.py); m (the count of
    values per channel) is passed as a float of the data's type, so m * gy stays float32.
    gy, x, gx (N, C, L); the other vectors (C,)."""
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
FLOAT32_SIGNATURES = {
    batch_norm_apply_kernel: (float32[:, :, ::1], VECTOR, VECTOR, VECTOR, VECTOR,
                              float32[:, :, ::1]),
    batch_norm_backward_dx_kernel: (float32[:, :, ::1], float32[:, :, ::1], VECTOR, VECTOR, VECTOR,
                                    VECTOR, VECTOR, float32, float32[:, :, ::1]),
}
