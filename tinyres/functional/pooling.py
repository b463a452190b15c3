"""Floor 4: pooling — max pool, average pool, global and adaptive average pool.

Pooling slides a (KH, KW) window over each channel on its own and reduces the window to one
number: its maximum (max pool) or its mean (average pool). It has no weights; what there is to
learn is how each backward pass sends the gradient back:

    max pool   the whole gradient of an output goes to the ONE input that was the maximum
               (remembered in forward as `argmax`); every other input of the window gets zero.
    avg pool   every input of the window gets an equal share, gradient / (KH*KW).
    global avg every pixel of a channel gets gradient / (H*W)  (ResNet's last pooling layer).
    adaptive   windows chosen to give a fixed output size; a linear map, so its backward is
               the same averaging, transposed (VGG's pool to 7x7).

Where windows overlap (stride < kernel, ResNet's 3x3 stride-2 max pool) an input can belong to
several windows and receives the *sum* of what each sends it. See docs/pooling.md.

Dimensions are named as in conv.py: N, C, H, W, KH, KW, SH, SW, PH, PW, and
OH = (H + 2*PH - KH) // SH + 1, OW = (W + 2*PW - KW) // SW + 1 (floor mode, as PyTorch's default).
"""
from tinyres import ops
from tinyres.autograd import Function
from tinyres.backend import get_array_module
from tinyres.dispatch import fast_twin
from tinyres.errors import not_supported
from tinyres.kernels.geometry import as_pair, window_geometry
from tinyres.tensor import FLOAT_DTYPES


def _offset(kh, kw, stride, out_size):
    """Index of the element at kernel offset (kh, kw) of every window at once: applied to a
    padded (N, C, H+2PH, W+2PW) array it gives an (N, C, OH, OW) strided view."""
    (SH, SW), (OH, OW) = stride, out_size
    return (Ellipsis, slice(kh, kh + SH * OH, SH), slice(kw, kw + SW * OW, SW))


# ----------------------------------------------------------------------------------------------
# Max pool: the array-level forward and backward (each has fast twins in kernels/)
# ----------------------------------------------------------------------------------------------
@fast_twin("max_pool2d_forward")
def max_pool2d_forward(x, kernel_size, stride, padding):
    """y, argmax = the maximum of every window and where it is.

    x (N, C, H, W) -> y (N, C, OH, OW) of x's dtype, argmax (N, C, OH, OW) int64: the flat
    index h*W + w of the chosen element in its own unpadded (H, W) plane.

    The padding is implicit -inf, so it never wins. Ties go to the FIRST maximum in window scan
    order (kh, then kw), because we replace the running best only when strictly greater; a NaN
    always wins, so NaNs propagate (both as PyTorch).
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    (KH, KW), (SH, SW), (PH, PW), (OH, OW) = window_geometry("max_pool2d", x.shape,
                                                             kernel_size, stride, padding)
    if PH or PW:                                                    # (N, C, H+2PH, W+2PW)
        x = xp.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)), constant_values=float("-inf"))
    top = xp.arange(OH, dtype=xp.int64)[:, None] * SH - PH          # (OH, 1) first row of window
    left = xp.arange(OW, dtype=xp.int64)[None, :] * SW - PW         # (1, OW) first column
    best = xp.full((N, C, OH, OW), float("-inf"), dtype=x.dtype)
    # Start at each window's first real (unpadded) element, so that even a window of all -inf
    # points at a real input.
    argmax = xp.maximum(top, 0) * W + xp.maximum(left, 0)           # (OH, OW)
    for kh in range(KH):
        for kw in range(KW):
            window = x[_offset(kh, kw, (SH, SW), (OH, OW))]         # (N, C, OH, OW)
            index = (top + kh) * W + (left + kw)                    # (OH, OW) as h*W + w
            better = (window > best) | xp.isnan(window)             # strictly: first max wins
            best = xp.where(better, window, best)
            argmax = xp.where(better, index, argmax)                # (N, C, OH, OW)
    return best, argmax


@fast_twin("max_pool2d_backward")
def max_pool2d_backward(gy, argmax, x_shape):
    """gx = zeros of x_shape, with each gy[n, c, i, j] added at argmax[n, c, i, j] of plane (n, c).

    gy, argmax (N, C, OH, OW) -> gx (N, C, H, W). An input that was the maximum of several
    overlapping windows receives the sum of their gradients: a scatter-*add* (``xp.add.at``;
    plain ``gx[index] = gy`` would keep only one of them).
    """
    # BEGIN SOLUTION A3 max_pool_backward
    xp = get_array_module(gy)
    N, C, H, W = x_shape
    # argmax counts within one (H, W) plane; plane (n, c) starts at (n*C + c) * H*W in flat gx
    plane_start = xp.arange(N * C, dtype=xp.int64).reshape(N, C, 1, 1) * (H * W)
    gx = xp.zeros(N * C * H * W, dtype=gy.dtype)                    # (N*C*H*W,)
    xp.add.at(gx, (plane_start + argmax).reshape(-1), gy.reshape(-1))
    return gx.reshape(N, C, H, W)
    # END SOLUTION


class MaxPool2d(Function):
    """y = max over each window;   dL/dx = dL/dy routed to each window's argmax (summed)."""

    def __init__(self, kernel_size, stride, padding):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        y, argmax = max_pool2d_forward(x, self.kernel_size, self.stride, self.padding)
        self.save(argmax=argmax)
        self.x_shape = x.shape
        return y                                                    # (N, C, OH, OW)

    def backward(self, gy):
        return max_pool2d_backward(gy, self.argmax, self.x_shape)  # (N, C, H, W)


# ----------------------------------------------------------------------------------------------
# Average pools
# ----------------------------------------------------------------------------------------------
class AvgPool2d(Function):
    """y[n, c, i, j] = 1/(KH*KW) * sum_{kh, kw} x_pad[n, c, i*SH + kh, j*SW + kw]

    The zeros of the padding count in the mean (count_include_pad=True, PyTorch's default), so
    every window divides by KH*KW, and every input of a window gets dL/dy / (KH*KW).
    """

    def __init__(self, kernel_size, stride, padding):
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        xp = get_array_module(x)
        N, C, H, W = self.x_shape = x.shape
        (KH, KW), _, (PH, PW), self.out_size = window_geometry(
            "avg_pool2d", x.shape, self.kernel_size, self.stride, self.padding)
        if PH or PW:                                                # (N, C, H+2PH, W+2PW)
            x = xp.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))
        y = xp.zeros((N, C) + self.out_size, dtype=x.dtype)         # (N, C, OH, OW)
        for kh in range(KH):
            for kw in range(KW):
                y += x[_offset(kh, kw, self.stride, self.out_size)]
        y /= KH * KW
        return y

    def backward(self, gy):
        xp = get_array_module(gy)
        N, C, H, W = self.x_shape
        (KH, KW), (PH, PW) = self.kernel_size, self.padding
        share = gy / (KH * KW)                                      # (N, C, OH, OW)
        gx = xp.zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=gy.dtype)
        for kh in range(KH):
            for kw in range(KW):
                gx[_offset(kh, kw, self.stride, self.out_size)] += share
        return gx[:, :, PH:PH + H, PW:PW + W]                       # (N, C, H, W)


class GlobalAvgPool2d(Function):
    """y[n, c] = mean of x[n, c] over all H*W pixels;   each pixel gets dL/dy[n, c] / (H*W)."""

    def forward(self, x):
        self.x_shape = x.shape
        return x.mean(axis=(2, 3))                                  # (N, C)

    def backward(self, gy):
        xp = get_array_module(gy)
        N, C, H, W = self.x_shape
        share = gy.reshape(N, C, 1, 1) / (H * W)                    # (N, C, 1, 1)
        return xp.broadcast_to(share, self.x_shape).copy()          # (N, C, H, W)


class AdaptiveAvgPool2d(Function):
    """Average pooling to a fixed output size (OH, OW), whatever the input's (H, W).

    PyTorch's windows: along an axis of length H with OH outputs, output i averages the rows

        start_i = floor(i * H / OH)   to   end_i = ceil((i + 1) * H / OH)   (end excluded).

    When OH divides H every window is H/OH long and they do not overlap (avg_pool2d with an
    H/OH x W/OW window; OH = 1 is the global mean). Otherwise their lengths differ by one and
    neighbours may share a row: H=5, OH=2 gives rows 0-2 and 2-4; H=1, OH=7 copies the row 7 times.

    A window is a rectangle, and the mean over a rectangle is the mean over its rows, then over its
    columns: two products with fixed averaging matrices,

        y = A_H @ x @ A_W^T      A_H (OH, H): A_H[i, h] = 1 / (end_i - start_i) if h is in window i,
                                               else 0 (A_W (OW, W) likewise)

    The map is linear, so backward multiplies by the same matrices, transposed:
    dL/dx = A_H^T @ dL/dy @ A_W, which gives every pixel 1/len of each window it belongs to.
    """

    def __init__(self, output_size):
        self.output_size = output_size

    def forward(self, x):
        xp = get_array_module(x)
        (H, W), (OH, OW) = x.shape[2:], self.output_size
        A_H = averaging_matrix(xp, H, OH, x.dtype)                      # (OH, H)
        A_W = averaging_matrix(xp, W, OW, x.dtype)                      # (OW, W)
        self.save(A_H=A_H, A_W=A_W)
        return A_H @ x @ A_W.T                                          # (N, C, OH, OW)

    def backward(self, gy):
        return self.A_H.T @ gy @ self.A_W                               # (N, C, H, W)


def averaging_matrix(xp, size, out_size, dtype):
    """(out_size, size): row i is 1/len on PyTorch's adaptive window i of an axis, else 0."""
    i = xp.arange(out_size)[:, None]                                    # (out, 1)
    j = xp.arange(size)[None, :]                                        # (1, size)
    start = (i * size) // out_size                                      # floor(i * size / out)
    end = ((i + 1) * size + out_size - 1) // out_size                   # ceil((i+1) * size / out)
    inside = (j >= start) & (j < end)                                   # (out, size)
    return inside.astype(dtype) / (end - start).astype(dtype)


# ----------------------------------------------------------------------------------------------
# The public functions: check the arguments, then call the Function
# ----------------------------------------------------------------------------------------------
def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, name=None):
    """Max pooling: x (N, C, H, W) -> (N, C, OH, OW), as ``torch.nn.functional.max_pool2d``.

    `stride` defaults to `kernel_size`; `padding` (at most half the kernel) is implicit -inf.
    kernel_size, stride and padding are an int or a (height, width) pair. Dilation, ceil_mode
    and return_indices raise. `name` (the layer's path in its model) names the layer in errors.
    """
    x, op = input, name or "max_pool2d"
    _refuse(op, dilation not in (1, (1, 1)), f"dilation={dilation!r}", "use dilation=1")
    _refuse(op, ceil_mode, "ceil_mode=True", "pad the input (padding=) to cover the last window")
    _refuse(op, return_indices, "return_indices=True", "max pooling's indices stay inside "
            "its backward (MaxPool2d's argmax)")
    args = _check_pool_args(op, x, kernel_size, stride, padding)
    return MaxPool2d(*args)(x)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None, *, name=None):
    """Average pooling: x (N, C, H, W) -> (N, C, OH, OW), zero padding counted in the mean
    (count_include_pad=True), as ``torch.nn.functional.avg_pool2d``.

    `stride` defaults to `kernel_size`; padding is at most half the kernel (as PyTorch).
    ceil_mode, count_include_pad=False and divisor_override raise.
    """
    x, op = input, name or "avg_pool2d"
    _refuse(op, ceil_mode, "ceil_mode=True", "pad the input (padding=) to cover the last window")
    _refuse(op, not count_include_pad, "count_include_pad=False", "use the default (padding "
            "counts as zeros in the mean)")
    _refuse(op, divisor_override is not None, "divisor_override=", "scale the output instead")
    args = _check_pool_args(op, x, kernel_size, stride, padding)
    return AvgPool2d(*args)(x)


def _refuse(op, given, feature, instead):
    if given:
        raise not_supported(op, feature, instead)


def global_avg_pool2d(x, name=None):
    """Global average pooling: x (N, C, H, W) -> (N, C), the mean of each channel
    (as ``adaptive_avg_pool2d(x, 1)`` followed by a flatten)."""
    _check_images(name or "global_avg_pool2d", x)
    return GlobalAvgPool2d()(x)


def adaptive_avg_pool2d(input, output_size, *, name=None):
    """Adaptive average pooling: x (N, C, H, W) -> (N, C, OH, OW) for any H, W, with PyTorch's
    windows (see AdaptiveAvgPool2d). `output_size` is an int or an (OH, OW) pair."""
    x, op = input, name or "adaptive_avg_pool2d"
    size = as_pair(output_size, "output_size", op)
    if min(size) < 1:
        raise ValueError(f"{op}: output_size must be positive, got {output_size!r}")
    _check_images(op, x)
    if size == (1, 1):          # ResNet's head: a mean is cheaper than two matrix products
        return ops.reshape(GlobalAvgPool2d()(x), x.shape[0], x.shape[1], 1, 1)
    return AdaptiveAvgPool2d(size)(x)


def _check_images(op, x):
    """Every pool takes a 4-D floating point (N, C, H, W) batch."""
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
    if x.dtype.type not in FLOAT_DTYPES:
        raise TypeError(f"{op}: expected a floating point input (float32 or float64), got "
                        f"dtype {x.dtype}")


def _check_pool_args(op, x, kernel_size, stride, padding):
    """Validate a pooling call; return (kernel, stride, padding) as (height, width) pairs."""
    _check_images(op, x)
    # the window's arguments, checked where every path checks them (kernels/geometry.py)
    kernel, stride, padding, _ = window_geometry(
        op, x.shape, kernel_size, kernel_size if stride is None else stride, padding)
    if 2 * padding[0] > kernel[0] or 2 * padding[1] > kernel[1]:
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel "
                         f"{kernel[0]}x{kernel[1]} (else a window could hold only padding)")
    return kernel, stride, padding
