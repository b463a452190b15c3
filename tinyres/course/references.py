"""What the grader compares with: plain NumPy float64, written here, independent of the engine.

Loops for im2col / col2im, the convolution one kernel offset at a time, batch norm and max
pooling from their definitions; the analytic gradients of A1's ops (the chain rule of each,
written out: a numerical backward would agree with central differences, not with these to
1e-9), and central differences (against a random projection of the output, never all ones)
for the backward passes of the later assignments. Window sizes come from
tinyres.kernels.geometry, the one place they are computed. The grader's side only: a student
copy does not carry this file.
"""
import numpy

from tinyres.kernels.geometry import window_geometry


def _pad(x, padding, value=0.0):
    (PH, PW) = padding
    return numpy.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)), constant_values=value)


def im2col_loops(x, kernel, stride, padding):
    """One row per output pixel (n, i, j): the zero-padded patch under it, as (c, kh, kw)."""
    (KH, KW), (SH, SW), _, (OH, OW) = window_geometry("im2col", x.shape, kernel, stride, padding)
    xp = _pad(x, padding)
    rows = [xp[n, :, i * SH:i * SH + KH, j * SW:j * SW + KW].reshape(-1)
            for n in range(x.shape[0]) for i in range(OH) for j in range(OW)]
    return numpy.array(rows)


def col2im_loops(cols, x_shape, kernel, stride, padding):
    """Each row of cols added back onto its patch of a zero (padded) image; the padding cut."""
    N, C, H, W = x_shape
    (KH, KW), (SH, SW), (PH, PW), (OH, OW) = window_geometry("col2im", x_shape, kernel, stride,
                                                             padding)
    x = numpy.zeros((N, C, H + 2 * PH, W + 2 * PW))
    rows = iter(cols)
    for n in range(N):
        for i in range(OH):
            for j in range(OW):
                x[n, :, i * SH:i * SH + KH, j * SW:j * SW + KW] += next(rows).reshape(C, KH, KW)
    return x[:, :, PH:PH + H, PW:PW + W]


def conv_reference(x, w, stride, padding, bias=None):
    """y[n,o,i,j] = b[o] + sum_{c,kh,kw} w[o,c,kh,kw] x_pad[n,c,i*SH+kh,j*SW+kw], one kernel
    offset at a time."""
    OC, _, KH, KW = w.shape
    _, (SH, SW), _, (OH, OW) = window_geometry("conv2d", x.shape, (KH, KW), stride, padding)
    xp = _pad(x, padding)
    y = numpy.zeros((x.shape[0], OC, OH, OW))
    for kh in range(KH):
        for kw in range(KW):
            window = xp[:, :, kh:kh + SH * OH:SH, kw:kw + SW * OW:SW]
            y += numpy.einsum("nchw,oc->nohw", window, w[:, :, kh, kw])
    return y if bias is None else y + bias.reshape(1, -1, 1, 1)


def batch_norm_reference(x, weight, bias, eps=1e-5):
    """Training-mode batch norm: per channel over every other axis, biased variance."""
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / numpy.sqrt(var + eps)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def max_pool_reference(x, kernel, stride, padding):
    """The maximum of each window, padding never chosen."""
    (KH, KW), (SH, SW), _, (OH, OW) = window_geometry("max_pool2d", x.shape, kernel, stride,
                                                      padding)
    xp = _pad(x, padding, -numpy.inf)
    y = numpy.full((x.shape[0], x.shape[1], OH, OW), -numpy.inf)
    for kh in range(KH):
        for kw in range(KW):
            y = numpy.maximum(y, xp[:, :, kh:kh + SH * OH:SH, kw:kw + SW * OW:SW])
    return y


def zero_pad_reference(x, out_channels, stride):
    """Option A's shortcut: every stride-th pixel, zero channels before and after."""
    sampled = x[:, :, ::stride, ::stride]
    before = (out_channels - x.shape[1]) // 2
    y = numpy.zeros((x.shape[0], out_channels) + sampled.shape[2:])
    y[:, before:before + x.shape[1]] = sampled
    return y


def sgd_reference(start, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
                  nesterov=False, skip=()):
    """The parameters after one SGD step per entry of `grads` (PyTorch's update); `skip` holds
    (step, parameter) pairs whose gradient is None."""
    weights, buffers = [w.copy() for w in start], [None] * len(start)
    for step, step_grads in enumerate(grads):
        for i, g in enumerate(step_grads):
            if (step, i) in skip:
                continue
            g = g + weight_decay * weights[i]
            if momentum:
                buffers[i] = (g.copy() if buffers[i] is None
                              else momentum * buffers[i] + (1 - dampening) * g)
                g = g + momentum * buffers[i] if nesterov else buffers[i]
            weights[i] = weights[i] - lr * g
    return weights


def sum_to_shape(grad, shape):
    """A broadcast gradient summed back to `shape`: over the leading axes broadcasting added,
    then over the axes where `shape` has 1."""
    grad = grad.sum(axis=tuple(range(grad.ndim - len(shape))))
    return grad.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True)


def mul_gradients(a, b, gy):
    """y = a * b (broadcast): dL/da = gy * b, dL/db = gy * a, each summed to its shape."""
    return sum_to_shape(gy * b, a.shape), sum_to_shape(gy * a, b.shape)


def matmul_gradients(a, b, gy):
    """y = a @ b: dL/da[..., m, k] = sum_n gy[..., m, n] b[..., k, n] and dL/db[..., k, n] =
    sum_m a[..., m, k] gy[..., m, n], batch axes summed to each shape; a 1-D a is one row,
    a 1-D b one column."""
    a2, b2 = (a[None, :] if a.ndim == 1 else a), (b[:, None] if b.ndim == 1 else b)
    g = gy[..., None] if b.ndim == 1 else gy
    g = g[..., None, :] if a.ndim == 1 else g
    ga = numpy.einsum("...mn,...kn->...mk", g, b2)
    gb = numpy.einsum("...mk,...mn->...kn", a2, g)
    return sum_to_shape(ga, a2.shape).reshape(a.shape), sum_to_shape(gb, b2.shape).reshape(b.shape)


def sum_gradients(x, gy, axis, keepdims):
    """y = x.sum(axis): every summed element of x receives its gy."""
    axes = tuple(range(x.ndim)) if axis is None else tuple(
        a % x.ndim for a in ((axis,) if isinstance(axis, int) else axis))
    return (numpy.broadcast_to(gy if keepdims else numpy.expand_dims(gy, axes), x.shape).copy(),)


def numeric_gradients(f, arrays, direction, eps=1e-6):
    """Central differences of L = <f(*arrays), direction> with respect to every array."""
    arrays = [a.copy() for a in arrays]
    grads = []
    for array in arrays:
        grad = numpy.zeros_like(array)
        for index in numpy.ndindex(array.shape):
            keep = array[index]
            array[index] = keep + eps
            plus = (f(*arrays) * direction).sum()
            array[index] = keep - eps
            minus = (f(*arrays) * direction).sum()
            array[index] = keep
            grad[index] = (plus - minus) / (2 * eps)
        grads.append(grad)
    return grads
