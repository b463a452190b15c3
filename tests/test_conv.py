"""conv2d, im2col and col2im: layout, adjointness, the nested-loop definition
(tinyres/functional/conv_loops.py), gradients, errors, and (where installed) PyTorch."""
import re

import numpy
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import tinyres
from tinyres import Tensor, dispatch, gradcheck
from tinyres.functional.conv import col2im, conv2d, im2col
from tinyres.functional.conv_loops import conv2d_loops

from helpers import conv_configs, conv_output_shape, host, leaf, on_device

# the `backend` fixture is set once per test and reused by every hypothesis example
SETTINGS = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def conv_inputs(cfg, rng, dtype=numpy.float64):
    x = rng.standard_normal((cfg["n"], cfg["c"], cfg["h"], cfg["w"])).astype(dtype)
    w = rng.standard_normal((cfg["oc"], cfg["c"]) + cfg["kernel"]).astype(dtype)
    b = rng.standard_normal(cfg["oc"]).astype(dtype) if cfg["bias"] else None
    return x, w, b


# ----------------------------------------------------------------------------------------------
# the definition as loops: first, by hand (A2 writes conv2d_loops before im2col, and the tests
# below then hold im2col + GEMM to it)
# ----------------------------------------------------------------------------------------------
def test_conv2d_loops_on_a_hand_example():
    x = numpy.arange(1.0, 10.0).reshape(1, 1, 3, 3)      # 1 2 3 / 4 5 6 / 7 8 9
    w = numpy.array([[1.0, 2.0], [0.0, -1.0]]).reshape(1, 1, 2, 2)
    # top-left window 1 2 / 4 5: 1*1 + 2*2 + 4*0 + 5*(-1) = 0, plus the bias 1
    numpy.testing.assert_array_equal(conv2d_loops(x, w, numpy.array([1.0])), [[[[1, 3], [7, 9]]]])
    # stride 2, padding 1: the top-left window is 0 0 / 0 1, so only 1 * w[1, 1] = -1 remains
    numpy.testing.assert_array_equal(conv2d_loops(x, w, stride=2, padding=1),
                                     [[[[-1, -3], [1, 8]]]])


# ----------------------------------------------------------------------------------------------
# im2col / col2im
# ----------------------------------------------------------------------------------------------
def test_im2col_layout_is_the_docstring_picture(backend):
    x = backend.asarray(numpy.arange(9.0).reshape(1, 1, 3, 3))   # a..i = 0..8
    cols = im2col(x, 2)
    expected = [[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]]
    numpy.testing.assert_array_equal(host(cols), expected)


def test_im2col_columns_follow_the_weight_layout(backend, rng):
    """cols @ weight.reshape(OC, -1).T is the convolution, rows (n, oh, ow)."""
    x, w = rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((4, 3, 3, 2))
    cols = im2col(backend.asarray(x), (3, 2), stride=(2, 1), padding=1)
    y = (cols @ backend.asarray(w).reshape(4, -1).T).reshape(2, 3, 5, 4).transpose(0, 3, 1, 2)
    expected = conv2d_loops(x, w, stride=(2, 1), padding=(1, 1))
    numpy.testing.assert_allclose(host(y), expected, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(cfg=conv_configs(bias=st.booleans()), seed=st.integers(0, 2**16))
def test_col2im_is_the_adjoint_of_im2col(backend, cfg, seed):
    """<im2col(x), y> = <x, col2im(y)>: col2im adds every patch back where it came from."""
    rng = numpy.random.default_rng(seed)
    x_shape = (cfg["n"], cfg["c"], cfg["h"], cfg["w"])
    x = on_device(backend, rng.standard_normal(x_shape), cfg["noncontiguous"])
    args = (cfg["kernel"], cfg["stride"], cfg["padding"])
    cols = im2col(x, *args)
    (KH, KW), (OH, OW) = cfg["kernel"], conv_output_shape(cfg)
    assert cols.shape == (cfg["n"] * OH * OW, cfg["c"] * KH * KW)
    y = backend.asarray(rng.standard_normal(cols.shape))
    back = col2im(y, x_shape, *args)
    assert back.shape == x_shape and type(back) is type(x)
    assert (cols * y).sum().item() == pytest.approx((x * back).sum().item(), rel=1e-12, abs=1e-12)


def test_col2im_adds_overlapping_patches(backend):
    """With stride 1 and a 2x2 kernel on 3x3, the centre pixel is in all four patches."""
    ones = backend.ones((4, 4))
    counts = host(col2im(ones, (1, 1, 3, 3), 2))[0, 0]
    numpy.testing.assert_array_equal(counts, [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


@pytest.mark.parametrize("args", [(3, 1, 1), ((3, 2), (2, 1), (1, 0)), (1, 2, 0), (2, 3, 1)])
def test_routed_im2col_col2im_equal_the_reference(args, rng):
    """Whatever twin the door picks (a Numba kernel once there is one) gives the reference's
    result."""
    x = rng.standard_normal((2, 3, 6, 5))
    cols = im2col(x, *args)
    numpy.testing.assert_allclose(cols, im2col.reference(x, *args), rtol=1e-12)
    numpy.testing.assert_allclose(col2im(cols, x.shape, *args),
                                  col2im.reference(cols, x.shape, *args), rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# conv2d: forward, backward, dtype
# ----------------------------------------------------------------------------------------------
@SETTINGS
@given(cfg=conv_configs(bias=st.booleans()), seed=st.integers(0, 2**16))
def test_conv2d_matches_nested_loops(backend, cfg, seed):
    x, w, b = conv_inputs(cfg, numpy.random.default_rng(seed))
    y = conv2d(Tensor(on_device(backend, x, cfg["noncontiguous"])), Tensor(backend.asarray(w)),
               None if b is None else Tensor(backend.asarray(b)),
               stride=cfg["stride"], padding=cfg["padding"])
    expected = conv2d_loops(x, w, b, cfg["stride"], cfg["padding"])
    assert y.shape == expected.shape and y.device == tinyres.backend.default_device()
    numpy.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-12)


@SETTINGS
@given(cfg=conv_configs(bias=st.booleans()), seed=st.integers(0, 2**16))
def test_conv2d_gradcheck(backend, cfg, seed):
    x, w, b = conv_inputs(cfg, numpy.random.default_rng(seed))
    inputs = [leaf(backend, x, cfg["noncontiguous"]), leaf(backend, w, cfg["noncontiguous"])]
    if b is not None:
        inputs.append(leaf(backend, b))
    gradcheck(lambda *t: conv2d(*t, stride=cfg["stride"], padding=cfg["padding"]), inputs)


def test_conv2d_keeps_float32_and_returns_dense_nchw(backend, rng):
    """(N, OC, OH, OW) in x's dtype, in dense memory: C order, or channels last on the fast CPU
    path (its activations stay channels last between layers, as PyTorch's channels_last)."""
    x = Tensor(backend.asarray(rng.standard_normal((2, 3, 6, 6)).astype(numpy.float32)),
               requires_grad=True)
    w = Tensor(backend.asarray(rng.standard_normal((4, 3, 3, 3)).astype(numpy.float32)),
               requires_grad=True)
    b = Tensor(backend.asarray(numpy.zeros(4, numpy.float32)), requires_grad=True)
    y = conv2d(x, w, b, stride=2, padding=1)
    assert y.dtype == numpy.float32 and y.shape == (2, 4, 3, 3)
    fast_cpu = (backend.__name__ == "numpy"                   # the CPU kernel ran (a student
                and dispatch.kernel_for("conv2d_forward", x.data) is not None)   # copy has none)
    memory = y.data.transpose(0, 2, 3, 1) if fast_cpu else y.data
    assert memory.flags.c_contiguous
    (y * y).sum().backward()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == numpy.float32


def test_conv2d_skips_the_input_gradient_when_not_needed(backend, rng):
    x = Tensor(backend.asarray(rng.standard_normal((1, 2, 4, 4))))          # an image
    w = Tensor(backend.asarray(rng.standard_normal((3, 2, 3, 3))), requires_grad=True)
    conv2d(x, w, padding=1).sum().backward()
    assert x.grad is None and w.grad.shape == (3, 2, 3, 3)


# ----------------------------------------------------------------------------------------------
# errors: the op (or layer) name, what was expected, what was given
# ----------------------------------------------------------------------------------------------
def _t(*shape, dtype=numpy.float32):
    return Tensor(numpy.zeros(shape, dtype=dtype))


@pytest.mark.parametrize("make, kwargs, error, message", [
    (lambda: (_t(3, 32, 32), _t(16, 3, 3, 3)), {}, ValueError,
     "conv2d: expected a 4-D input (N, C, H, W), got shape (3, 32, 32)"),
    (lambda: (_t(8, 3, 32, 32), _t(16, 3, 3)), {}, ValueError,
     "conv2d: expected a 4-D weight (out_channels, in_channels, KH, KW), got shape (16, 3, 3)"),
    (lambda: (_t(8, 3, 32, 32), _t(32, 16, 3, 3)), {}, ValueError,
     "conv2d: weight expects 16 input channels (weight shape (32, 16, 3, 3)), got input with "
     "3 channels, shape (8, 3, 32, 32)"),
    (lambda: (_t(1, 3, 2, 2), _t(4, 3, 5, 5)), {"padding": 1}, ValueError,
     "conv2d: kernel 5x5 is larger than the padded input 4x4"),
    (lambda: (_t(1, 3, 8, 8), _t(4, 3, 3, 3)), {"stride": 0}, ValueError,
     "conv2d: stride must be positive, got (0, 0)"),
    (lambda: (_t(1, 3, 8, 8), _t(4, 3, 3, 3)), {"padding": (1, -1)}, ValueError,
     "conv2d: padding must be non-negative, got (1, -1)"),
    (lambda: (_t(1, 3, 8, 8), _t(4, 3, 3, 3), _t(3)), {}, ValueError,
     "conv2d: expected a bias of shape (4,) (one per output channel), got shape (3,)"),
    (lambda: (_t(1, 3, 8, 8, dtype=numpy.int64), _t(4, 3, 3, 3)), {}, TypeError,
     "conv2d: expected a floating point input (float32 or float64), got dtype int64"),
    (lambda: (_t(1, 3, 8, 8), _t(4, 3, 3, 3, dtype=numpy.float64)), {}, TypeError,
     "conv2d: weight has dtype float64 but the input has dtype float32"),
    (lambda: (_t(1, 3, 8, 8), _t(4, 3, 3, 3)), {"stride": (1, 2, 3)}, TypeError,
     "conv2d: stride must be an int or a pair of ints (height, width), got (1, 2, 3)"),
])
def test_conv2d_errors_say_expected_and_actual(make, kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        conv2d(*make(), **kwargs)


@pytest.mark.parametrize("stride, padding, message", [
    (0, 0, "stride must be positive, got (0, 0)"),
    ((1, 2.0), 0, "stride must be an int or a pair of ints (height, width), got (1, 2.0)"),
    (1, -1, "padding must be non-negative, got (-1, -1)"),
    (1, 0, "kernel 3x3 is larger than the padded input 2x2 (input shape (1, 3, 2, 2), padding "
           "(0, 0))"),
])
def test_a_conv_window_is_checked_in_one_place_and_names_the_layer(stride, padding, message):
    """The layer (when it is made, or given an input), F.conv2d and the kernels all refuse a
    bad window with kernels/geometry.py's one message, each with its own name."""
    x = _t(1, 3, 2, 2)
    errors = (ValueError, TypeError)
    if "larger" not in message:
        with pytest.raises(errors, match=re.escape(f"Conv2d: {message}")):
            tinyres.nn.Conv2d(3, 4, 3, stride=stride, padding=padding)
    with pytest.raises(errors, match=re.escape(f"conv2d: {message}")):
        conv2d(x, _t(4, 3, 3, 3), stride=stride, padding=padding)
    with pytest.raises(errors, match=re.escape(f"im2col: {message}")):
        im2col.reference(x.data, 3, stride, padding)
    if "larger" in message:                       # a layer of a model names its path
        model = tinyres.nn.Sequential(tinyres.nn.Conv2d(3, 4, 3))
        with pytest.raises(ValueError, match=re.escape(f"Conv2d 0: {message}")):
            model(x)


def test_conv2d_errors_name_the_layer():
    with pytest.raises(ValueError, match=re.escape(
            "layer1.0.conv1: weight expects 16 input channels (weight shape (16, 16, 3, 3)), "
            "got input with 3 channels, shape (8, 3, 32, 32)")):
        conv2d(_t(8, 3, 32, 32), _t(16, 16, 3, 3), name="layer1.0.conv1")


# ----------------------------------------------------------------------------------------------
# PyTorch as an outside oracle (float32)
# ----------------------------------------------------------------------------------------------
@pytest.mark.torch
@pytest.mark.parametrize("stride, padding, bias", [
    (1, 1, True), (2, 1, False), ((2, 1), (0, 1), True), (3, 0, True)])
def test_conv2d_matches_torch(backend, rng, stride, padding, bias):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 9, 8)).astype(numpy.float32)
    w = rng.standard_normal((5, 3, 3, 2)).astype(numpy.float32)
    b = rng.standard_normal(5).astype(numpy.float32) if bias else None
    tensors = [Tensor(backend.asarray(a), requires_grad=True) for a in (x, w, b) if a is not None]
    y = conv2d(*tensors, stride=stride, padding=padding)
    gy = rng.standard_normal(y.shape).astype(numpy.float32)
    y.backward(Tensor(backend.asarray(gy)))

    reference = [torch.tensor(a, requires_grad=True) for a in (x, w, b) if a is not None]
    ty = torch.nn.functional.conv2d(*reference, stride=stride, padding=padding)
    ty.backward(torch.tensor(gy))
    numpy.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-4, atol=1e-4)
    for ours, theirs in zip(tensors, reference):
        numpy.testing.assert_allclose(host(ours.grad), theirs.grad.numpy(),
                                      rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------------------------
# Winograd's F(m x m, 3x3), m = 2 and 4, the readable twin of the fast path's 3x3 convolutions
# ----------------------------------------------------------------------------------------------
def readable_winograd():
    """tinyres/functional/winograd.py. A student copy of A2 leaves it out (it computes the
    convolution, the student's to write, another way: tinyres/course/copier.py), and there these
    tests are skipped; in the project itself it must import."""
    try:
        from tinyres import student_copy
    except ImportError:
        from tinyres.functional import winograd
        return winograd
    return pytest.importorskip("tinyres.functional.winograd", reason=(
        f"this {student_copy.ASSIGNMENT} copy leaves Winograd's convolution out"))


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 4), oc=st.integers(1, 4), m=st.sampled_from([2, 4]),
       tiles=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       padding=st.tuples(st.integers(0, 2), st.integers(0, 2)), seed=st.integers(0, 2**16))
def test_winograd_is_the_convolution_and_its_backward_the_adjoint(n, c, oc, m, tiles, padding,
                                                                  seed):
    """tinyres/functional/winograd.py gives im2col's numbers (float64) with F(2x2) and F(4x4),
    and its backward the gradients of the convolution."""
    winograd = readable_winograd()
    from tinyres.functional.conv import conv2d_backward, conv2d_forward
    rng = numpy.random.default_rng(seed)
    H, W = m * tiles[0] + 2 - 2 * padding[0], m * tiles[1] + 2 - 2 * padding[1]
    if H < 1 or W < 1:
        return
    x, w = rng.standard_normal((n, c, H, W)), rng.standard_normal((oc, c, 3, 3))
    y = winograd.winograd_conv2d_forward(x, w, padding, m)
    numpy.testing.assert_allclose(y, conv2d_forward.reference(x, w, (1, 1), padding),
                                  rtol=1e-10, atol=1e-10)
    gy = rng.standard_normal(y.shape)
    for got, want in zip(winograd.winograd_conv2d_backward(gy, x, w, padding, m),
                         conv2d_backward.reference(gy, x, w, (1, 1), padding)):
        numpy.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_winograd_refuses_a_tile_size_it_has_no_matrices_for():
    winograd = readable_winograd()
    x, w = numpy.zeros((1, 1, 6, 6)), numpy.zeros((1, 1, 3, 3))
    with pytest.raises(ValueError, match="tile size m must be one of \\[2, 4\\], got 3"):
        winograd.winograd_conv2d_forward(x, w, (0, 0), m=3)
