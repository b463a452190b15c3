"""max_pool2d, avg_pool2d, global_avg_pool2d, adaptive_avg_pool2d: against loops, gradient
routing (overlaps, padding, ties), gradcheck, errors, and (where installed) PyTorch."""
import re

import numpy
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tinyres import Tensor, gradcheck
from tinyres.functional.pooling import (adaptive_avg_pool2d, avg_pool2d, global_avg_pool2d,
                                        max_pool2d, max_pool2d_backward, max_pool2d_forward)

from helpers import host, on_device

SETTINGS = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


# ----------------------------------------------------------------------------------------------
# Pooling as loops: the definitions
# ----------------------------------------------------------------------------------------------
def windows(H, W, kernel, stride, padding):
    """Yield (i, j, [(h, w), ...]): each output position and its window's real input pixels,
    in scan order (kh, then kw)."""
    (KH, KW), (SH, SW), (PH, PW) = kernel, stride, padding
    OH, OW = (H + 2 * PH - KH) // SH + 1, (W + 2 * PW - KW) // SW + 1
    for i in range(OH):
        for j in range(OW):
            yield i, j, [(i * SH + kh - PH, j * SW + kw - PW) for kh in range(KH)
                         for kw in range(KW)
                         if 0 <= i * SH + kh - PH < H and 0 <= j * SW + kw - PW < W]


def max_pool_naive(x, y_shape, kernel, stride, padding):
    """Forward and argmax of max pooling, one window at a time (first max wins).

    (No backward here: it is A3's max_pool2d_backward, and a course copy carries this file. The
    backward is held to the argmax below, to gradcheck, and to a hand example.)"""
    N, C, H, W = x.shape
    y, argmax = numpy.zeros(y_shape), numpy.zeros(y_shape, numpy.int64)
    for n in range(N):
        for c in range(C):
            for i, j, pixels in windows(H, W, kernel, stride, padding):
                h, w = pixels[0]
                for ph, pw in pixels[1:]:
                    if x[n, c, ph, pw] > x[n, c, h, w]:
                        h, w = ph, pw
                y[n, c, i, j], argmax[n, c, i, j] = x[n, c, h, w], h * W + w
    return y, argmax


def avg_pool_naive(x, kernel, stride, padding):
    N, C, H, W = x.shape
    (KH, KW), (SH, SW), (PH, PW) = kernel, stride, padding
    y = numpy.zeros((N, C, (H + 2 * PH - KH) // SH + 1, (W + 2 * PW - KW) // SW + 1))
    for i, j, pixels in windows(H, W, kernel, stride, padding):
        for h, w in pixels:
            y[:, :, i, j] += x[:, :, h, w]
    return y / (KH * KW)                       # the padding's zeros count: always KH*KW


def adaptive_avg_pool_naive(x, OH, OW):
    """PyTorch's definition: output (i, j) is the mean of rows floor(i*H/OH) .. ceil((i+1)*H/OH)
    - 1 and columns floor(j*W/OW) .. ceil((j+1)*W/OW) - 1."""
    N, C, H, W = x.shape
    y = numpy.zeros((N, C, OH, OW))
    for i in range(OH):
        for j in range(OW):
            h0, h1 = (i * H) // OH, -(-((i + 1) * H) // OH)
            w0, w1 = (j * W) // OW, -(-((j + 1) * W) // OW)
            y[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return y


@st.composite
def pool_configs(draw):
    """A valid pooling configuration: padding at most half the kernel, the kernel fits the
    padded input; stride defaults to the kernel or is drawn (smaller: overlapping windows;
    larger: skipped pixels)."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    stride = draw(st.none() | st.tuples(st.integers(1, 3), st.integers(1, 3)))
    return dict(
        n=draw(st.integers(1, 2)), c=draw(st.integers(1, 3)),
        h=draw(st.integers(max(1, kernel[0] - 2 * padding[0]), 7)),
        w=draw(st.integers(max(1, kernel[1] - 2 * padding[1]), 7)),
        kernel=kernel, stride=stride, padding=padding, noncontiguous=draw(st.booleans()))


# (N, C, H, W) with size-1 axes, batch 1 and odd sizes; and an adaptive pool's (OH, OW)
IMAGE_SHAPES = st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 7), st.integers(1, 7))
OUTPUT_SIZES = st.tuples(st.integers(1, 7), st.integers(1, 7))


def shape_of(cfg):
    return cfg["n"], cfg["c"], cfg["h"], cfg["w"]


def args_of(cfg):
    return cfg["kernel"], cfg["stride"], cfg["padding"]


# ----------------------------------------------------------------------------------------------
# max pool
# ----------------------------------------------------------------------------------------------
@SETTINGS
@given(cfg=pool_configs(), seed=st.integers(0, 2**16))
def test_max_pool_forward_argmax_backward_match_loops(backend, cfg, seed):
    rng = numpy.random.default_rng(seed)
    x_host = rng.standard_normal(shape_of(cfg))
    x = Tensor(on_device(backend, x_host, cfg["noncontiguous"]), requires_grad=True)
    y = max_pool2d(x, *args_of(cfg))
    gy = rng.standard_normal(y.shape)
    y.backward(Tensor(backend.asarray(gy)))

    kernel, stride, padding = args_of(cfg)
    stride = stride or kernel
    y_ref, argmax_ref = max_pool_naive(x_host, gy.shape, kernel, stride, padding)
    _, argmax = max_pool2d_forward(x.data, kernel, stride, padding)
    numpy.testing.assert_array_equal(host(y.data), y_ref)
    assert argmax.dtype == numpy.int64
    numpy.testing.assert_array_equal(host(argmax), argmax_ref)
    # the backward: every gradient lands on its window's maximum, and none is lost
    gx = host(x.grad).reshape(x_host.shape[0], x_host.shape[1], -1)          # (N, C, H*W)
    is_max = numpy.zeros(gx.shape, bool)
    numpy.put_along_axis(is_max, argmax_ref.reshape(gx.shape[0], gx.shape[1], -1), True, axis=2)
    assert (gx[~is_max] == 0).all()
    numpy.testing.assert_allclose(gx.sum(axis=2), gy.sum(axis=(2, 3)), rtol=1e-12, atol=1e-12)


def test_max_pool_overlapping_windows_add_their_gradients(backend):
    """A pixel that is the maximum of four overlapping windows receives all four gradients."""
    x = numpy.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 5.0                       # the centre is in every 2x2 window, stride 1
    t = Tensor(backend.asarray(x), requires_grad=True)
    max_pool2d(t, 2, stride=1).backward(Tensor(backend.asarray([[[[1.0, 2.0], [3.0, 4.0]]]])))
    expected = numpy.zeros((3, 3))
    expected[1, 1] = 10.0
    numpy.testing.assert_array_equal(host(t.grad)[0, 0], expected)


@pytest.mark.parametrize("kernel, stride, padding", [(2, 1, 0), (3, 2, 1), (2, 2, 1), (3, 1, 1)])
def test_max_pool_ties_send_the_gradient_to_the_first_maximum(backend, kernel, stride, padding):
    """A constant input: every element of a window is a maximum; the first real one in scan
    order (the window's top-left unpadded pixel) gets the gradient, no other."""
    H = W = 5
    x = Tensor(backend.full((2, 1, H, W), 0.5), requires_grad=True)
    y, argmax = max_pool2d_forward(x.data, kernel, stride, padding)
    gy = numpy.random.default_rng(0).standard_normal(y.shape)
    max_pool2d(x, kernel, stride, padding).backward(Tensor(backend.asarray(gy)))

    expected_grad = numpy.zeros(x.shape)
    for i, j, pixels in windows(H, W, (kernel,) * 2, (stride,) * 2, (padding,) * 2):
        h, w = pixels[0]
        assert (host(argmax)[:, :, i, j] == h * W + w).all()
        expected_grad[:, :, h, w] += gy[:, :, i, j]
    numpy.testing.assert_allclose(host(x.grad), expected_grad, rtol=1e-12)


def test_max_pool_propagates_nan_and_handles_all_minus_inf(backend):
    x = numpy.full((1, 1, 4, 4), -numpy.inf)
    x[0, 0, 0, 0] = numpy.nan
    y, argmax = max_pool2d_forward(backend.asarray(x), 2, 2, 1)
    y, argmax = host(y)[0, 0], host(argmax)[0, 0]
    assert numpy.isnan(y[0, 0]) and argmax[0, 0] == 0
    assert (y.ravel()[1:] == -numpy.inf).all()
    assert ((0 <= argmax) & (argmax < 16)).all()     # always a real pixel, never the padding


def test_max_pool_backward_twin_is_a_scatter_add(backend):
    gy = backend.asarray(numpy.ones((1, 1, 2, 2)))
    argmax = backend.asarray(numpy.array([[[[0, 0], [3, 0]]]], dtype=numpy.int64))
    gx = host(max_pool2d_backward(gy, argmax, (1, 1, 2, 2)))
    numpy.testing.assert_array_equal(gx, [[[[3.0, 0.0], [0.0, 1.0]]]])


# ----------------------------------------------------------------------------------------------
# average pools
# ----------------------------------------------------------------------------------------------
@SETTINGS
@given(cfg=pool_configs(), seed=st.integers(0, 2**16))
def test_avg_pool_matches_loops(backend, cfg, seed):
    x_host = numpy.random.default_rng(seed).standard_normal(shape_of(cfg))
    y = avg_pool2d(Tensor(on_device(backend, x_host, cfg["noncontiguous"])), *args_of(cfg))
    kernel, stride, padding = args_of(cfg)
    numpy.testing.assert_allclose(host(y.data), avg_pool_naive(x_host, kernel, stride or kernel,
                                                               padding), rtol=1e-12, atol=1e-14)


def test_global_avg_pool_is_the_channel_mean(backend, rng):
    x = rng.standard_normal((2, 3, 4, 5))
    y = global_avg_pool2d(Tensor(backend.asarray(x)))
    assert y.shape == (2, 3)
    numpy.testing.assert_allclose(host(y.data), x.mean(axis=(2, 3)), rtol=1e-12)


@SETTINGS
@given(shape=IMAGE_SHAPES, out=OUTPUT_SIZES, seed=st.integers(0, 2**16),
       noncontiguous=st.booleans())
def test_adaptive_avg_pool_matches_loops(backend, shape, out, seed, noncontiguous):
    """Any sizes: even windows, uneven overlapping ones (5 -> 2), and 'up' (1 -> 7: copies)."""
    x_host = numpy.random.default_rng(seed).standard_normal(shape)
    y = adaptive_avg_pool2d(Tensor(on_device(backend, x_host, noncontiguous)), out)
    numpy.testing.assert_allclose(host(y.data), adaptive_avg_pool_naive(x_host, *out),
                                  rtol=1e-12, atol=1e-14)


def test_adaptive_avg_pool_shares_rows_between_overlapping_windows(backend):
    """H=5 -> 2: windows are rows 0-2 and 2-4, so row 2 gets a third of each window's gradient."""
    x = Tensor(backend.asarray(numpy.zeros((1, 1, 5, 1))), requires_grad=True)
    adaptive_avg_pool2d(x, (2, 1)).backward(Tensor(backend.asarray([[[[3.0], [6.0]]]])))
    numpy.testing.assert_allclose(host(x.grad).ravel(), [1, 1, 1 + 2, 2, 2], rtol=1e-12)


@pytest.mark.parametrize("pool", [
    lambda x: max_pool2d(x, 3, 2, 1), lambda x: avg_pool2d(x, 3, 2, 1), global_avg_pool2d,
    lambda x: adaptive_avg_pool2d(x, (3, 2))])
def test_pools_keep_float32(backend, rng, pool):
    x = Tensor(backend.asarray(rng.standard_normal((2, 3, 7, 7)).astype(numpy.float32)),
               requires_grad=True)
    y = pool(x)
    (y * y).sum().backward()
    assert y.dtype == x.grad.dtype == numpy.float32


# ----------------------------------------------------------------------------------------------
# gradcheck (float64, hypothesis shapes, non-contiguous inputs, both backends)
# ----------------------------------------------------------------------------------------------
@SETTINGS
@given(cfg=pool_configs(), seed=st.integers(0, 2**16),
       pool=st.sampled_from([max_pool2d, avg_pool2d]))
def test_pool_gradcheck(backend, cfg, seed, pool):
    x_host = numpy.random.default_rng(seed).standard_normal(shape_of(cfg))
    x = Tensor(on_device(backend, x_host, cfg["noncontiguous"]), requires_grad=True)
    gradcheck(lambda x: pool(x, *args_of(cfg)), [x])


@SETTINGS
@given(shape=IMAGE_SHAPES, seed=st.integers(0, 2**16), noncontiguous=st.booleans())
def test_global_avg_pool_gradcheck(backend, shape, seed, noncontiguous):
    x_host = numpy.random.default_rng(seed).standard_normal(shape)
    gradcheck(global_avg_pool2d, [Tensor(on_device(backend, x_host, noncontiguous),
                                         requires_grad=True)])


@SETTINGS
@given(shape=IMAGE_SHAPES, out=OUTPUT_SIZES, seed=st.integers(0, 2**16),
       noncontiguous=st.booleans())
def test_adaptive_avg_pool_gradcheck(backend, shape, out, seed, noncontiguous):
    x_host = numpy.random.default_rng(seed).standard_normal(shape)
    gradcheck(lambda x: adaptive_avg_pool2d(x, out),
              [Tensor(on_device(backend, x_host, noncontiguous), requires_grad=True)])


@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d", "global_avg_pool2d",
                                  "adaptive_avg_pool2d"])
def test_registered_cases_pass(name):
    """The cases `tinyres gradcheck` runs for pooling."""
    from tinyres.course.checks import REGISTRY  # importing it registers every family's cases
    for _, fn, inputs in REGISTRY[name](numpy.random.default_rng(0)):
        gradcheck(fn, inputs)


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------
def _t(*shape, dtype=numpy.float32):
    return Tensor(numpy.zeros(shape, dtype=dtype))


@pytest.mark.parametrize("pool", [max_pool2d, avg_pool2d])
@pytest.mark.parametrize("x, args, error, message", [
    (_t(3, 8, 8), (2,), ValueError, "expected a 4-D input (N, C, H, W), got shape (3, 8, 8)"),
    (_t(1, 3, 2, 2), (5, 1, 1), ValueError,
     "kernel 5x5 is larger than the padded input 4x4 (input shape (1, 3, 2, 2), padding (1, 1))"),
    (_t(1, 3, 8, 8), (3, 2, 2), ValueError,
     "padding (2, 2) must be at most half the kernel 3x3"),
    (_t(1, 3, 8, 8), (2, 0), ValueError, "stride must be positive, got (0, 0)"),
    (_t(1, 3, 8, 8), (3, 1, -1), ValueError, "padding must be non-negative, got (-1, -1)"),
    (_t(1, 3, 8, 8, dtype=numpy.int32), (2,), TypeError,
     "expected a floating point input (float32 or float64), got dtype int32"),
])
def test_pool_errors_say_expected_and_actual(pool, x, args, error, message):
    with pytest.raises(error, match=re.escape(f"{pool.__name__}: {message}")):
        pool(x, *args)


def test_pool_errors_name_the_layer():
    with pytest.raises(ValueError, match=re.escape("stem.pool: expected a 4-D input")):
        max_pool2d(_t(8, 8), 3, 2, 1, name="stem.pool")
    with pytest.raises(ValueError, match=re.escape(
            "global_avg_pool2d: expected a 4-D input (N, C, H, W), got shape (2, 3)")):
        global_avg_pool2d(_t(2, 3))
    with pytest.raises(ValueError, match=re.escape(
            "head.pool: expected a 4-D input (N, C, H, W), got shape (2, 3)")):
        adaptive_avg_pool2d(_t(2, 3), 7, name="head.pool")


@pytest.mark.parametrize("size, error, message", [
    (0, ValueError, "output_size must be positive, got 0"),
    ((7, -1), ValueError, "output_size must be positive, got (7, -1)"),
    (2.5, TypeError, "output_size must be an int or a pair of ints (height, width), got 2.5"),
])
def test_adaptive_avg_pool_refuses_bad_sizes(size, error, message):
    with pytest.raises(error, match=re.escape(f"adaptive_avg_pool2d: {message}")):
        adaptive_avg_pool2d(_t(1, 3, 8, 8), size)


# ----------------------------------------------------------------------------------------------
# PyTorch as an outside oracle (float32)
# ----------------------------------------------------------------------------------------------
@pytest.mark.torch
@pytest.mark.parametrize("name, args", [
    ("max_pool2d", (3, 2, 1)), ("max_pool2d", (2, 1, 1)), ("max_pool2d", ((3, 2), (1, 2), (1, 0))),
    ("avg_pool2d", (3, 2, 1)), ("avg_pool2d", (2, 2, 0)), ("avg_pool2d", ((3, 2), (1, 2), (1, 1))),
])
def test_pools_match_torch(backend, rng, name, args):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 9, 8)).astype(numpy.float32)
    ours = Tensor(backend.asarray(x), requires_grad=True)
    y = {"max_pool2d": max_pool2d, "avg_pool2d": avg_pool2d}[name](ours, *args)
    gy = rng.standard_normal(y.shape).astype(numpy.float32)
    y.backward(Tensor(backend.asarray(gy)))

    theirs = torch.tensor(x, requires_grad=True)
    ty = getattr(torch.nn.functional, name)(theirs, *args)
    ty.backward(torch.tensor(gy))
    numpy.testing.assert_allclose(host(y.data), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(host(ours.grad), theirs.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.torch
def test_max_pool_ties_match_torch(backend):
    torch = pytest.importorskip("torch")
    x = numpy.ones((1, 2, 6, 6), numpy.float32)
    ours = Tensor(backend.asarray(x), requires_grad=True)
    max_pool2d(ours, 3, 2, 1).sum().backward()
    theirs = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(theirs, 3, 2, 1).sum().backward()
    numpy.testing.assert_array_equal(host(ours.grad), theirs.grad.numpy())


@pytest.mark.torch
def test_global_avg_pool_matches_torch_adaptive_avg_pool(backend, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 5, 7)).astype(numpy.float32)
    y = global_avg_pool2d(Tensor(backend.asarray(x)))
    expected = torch.nn.functional.adaptive_avg_pool2d(torch.tensor(x), 1).flatten(1)
    numpy.testing.assert_allclose(host(y.data), expected.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.torch
@pytest.mark.parametrize("in_size, out_size", [
    ((7, 7), (3, 3)), ((5, 5), (2, 2)), ((6, 6), (4, 4)), ((5, 11), (2, 3)), ((1, 1), (7, 7)),
    ((3, 2), (7, 7)), ((8, 8), (2, 2)), ((5, 7), (1, 1))])
def test_adaptive_avg_pool_matches_torch(backend, rng, in_size, out_size):
    """Forward and backward, even and uneven windows, against PyTorch (float32)."""
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3) + in_size).astype(numpy.float32)
    ours = Tensor(backend.asarray(x), requires_grad=True)
    y = adaptive_avg_pool2d(ours, out_size)
    gy = rng.standard_normal(y.shape).astype(numpy.float32)
    y.backward(Tensor(backend.asarray(gy)))

    theirs = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.adaptive_avg_pool2d(theirs, out_size)
    ty.backward(torch.tensor(gy))
    numpy.testing.assert_allclose(host(y.data), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(host(ours.grad), theirs.grad.numpy(), rtol=1e-5, atol=1e-6)
