"""Each GPU kernel against its readable NumPy twin, on hypothesis-drawn tiny shapes.

Runs in the CUDA simulator (or on a real GPU with CuPy): see conftest.py. The simulator runs every
GPU thread as a Python thread, a few thousand per second, so the shapes are kept tiny (at most
~2,000 threads per launch: batch 1-2, channels 1-4, sizes up to 7, kernels 1-3, strides 1-2,
padding 0-1) and each test draws only a few examples.

Exact where the kernel only moves or compares values (im2col, max-pool forward on tie-free data);
rtol 1e-5 where it adds (col2im, the pooling scatter, the batch-norm sums, whose order differs).
Every float32 launch is also checked to use the argument types CI compiles to PTX.
"""
import numpy
import pytest
from hypothesis import assume, given, settings, strategies as st

from tinyres.functional import batchnorm, conv, pooling

FEW = settings(max_examples=10, deadline=None)
MAX_THREADS = 2000


@pytest.fixture(scope="session")
def gpu(xp):
    import tinyres.kernels.gpu as gpu
    return gpu


def host(a):
    """A NumPy copy of a kernel result (CuPy arrays come back from the GPU)."""
    return None if a is None else (a if isinstance(a, numpy.ndarray) else a.get())


def check_launches(gpu, launches, expected_kernels):
    """The kernels that ran are the expected ones, with the float32 types compiled in CI."""
    assert [k.__name__ for k, *_ in launches] == expected_kernels
    for kernel, types, blocks, threads in launches:
        assert types == gpu.FLOAT32_SIGNATURES[kernel], kernel.__name__
        assert blocks * threads <= MAX_THREADS + threads, "keep the simulated launches tiny"


def pair_or_int(draw, a, b):
    """(a, b) as an int where they are equal and a coin says so: the kernels take both."""
    return a if a == b and draw(st.booleans()) else (a, b)


@st.composite
def windows(draw, pool=False):
    """x's shape, kernel, stride, padding, and whether x is a non-contiguous view. Pooling
    windows keep padding <= kernel // 2 (as the op requires: no window lies all in padding)."""
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 4))
    H, W = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    KH, KW = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    SH, SW = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    PH, PW = draw(st.integers(0, 1)), draw(st.integers(0, 1))
    OH, OW = (H + 2 * PH - KH) // SH + 1, (W + 2 * PW - KW) // SW + 1
    assume(OH >= 1 and OW >= 1 and N * OH * OW * C * KH * KW <= MAX_THREADS)
    assume(not pool or (PH <= KH // 2 and PW <= KW // 2))
    return dict(shape=(N, C, H, W), kernel=pair_or_int(draw, KH, KW),
                stride=pair_or_int(draw, SH, SW), padding=pair_or_int(draw, PH, PW),
                out=(OH, OW), transposed=draw(st.booleans()), seed=draw(st.integers(0, 2**31)))


def make_input(xp, case, values=None, dtype=numpy.float32):
    """The input on the device, C-contiguous or (when case['transposed']) a transposed view."""
    N, C, H, W = case["shape"]
    rng = numpy.random.default_rng(case["seed"])
    data = rng.standard_normal((N, C, H, W)) if values is None else values
    data = data.astype(dtype)
    if case["transposed"]:                   # same values, W-major memory: not C-contiguous
        return data, xp.asarray(numpy.ascontiguousarray(data.transpose(0, 1, 3, 2))).transpose(
            0, 1, 3, 2)
    return data, xp.asarray(data)


# ----------------------------------------------------------------------------------------------
# im2col / col2im
# ----------------------------------------------------------------------------------------------
@FEW
@given(case=windows(), dtype=st.sampled_from([numpy.float32, numpy.float64]))
def test_im2col_equals_the_reference_exactly(xp, gpu, launches, case, dtype):
    launches.clear()                         # (one list for all examples of a hypothesis test)
    x_host, x = make_input(xp, case, dtype=dtype)
    args = (case["kernel"], case["stride"], case["padding"])
    cols = gpu.im2col(x, *args)
    expected = conv.im2col.reference(x_host, *args)
    assert host(cols).dtype == dtype
    numpy.testing.assert_array_equal(host(cols), expected)
    if dtype == numpy.float32:
        check_launches(gpu, launches, ["im2col_kernel"])


@FEW
@given(case=windows(), dtype=st.sampled_from([numpy.float32, numpy.float64]))
def test_col2im_equals_the_reference(xp, gpu, launches, case, dtype):
    launches.clear()
    N, C, H, W = case["shape"]
    (OH, OW), (KH, KW) = case["out"], numpy.broadcast_to(case["kernel"], 2)
    rng = numpy.random.default_rng(case["seed"])
    cols_host = rng.standard_normal((N * OH * OW, C * KH * KW)).astype(dtype)
    args = (case["shape"], case["kernel"], case["stride"], case["padding"])
    x = gpu.col2im(xp.asarray(cols_host), *args)
    expected = conv.col2im.reference(cols_host, *args)
    assert host(x).shape == (N, C, H, W) and host(x).dtype == dtype
    numpy.testing.assert_allclose(host(x), expected, rtol=1e-5, atol=1e-6)
    if dtype == numpy.float32:
        check_launches(gpu, launches, ["col2im_kernel"])


def test_col2im_is_the_adjoint_of_im2col(xp, gpu):
    """<im2col(x), y> = <x, col2im(y)>, on the GPU kernels alone (overlapping 3x3 windows)."""
    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((1, 2, 5, 4))
    cols = gpu.im2col(xp.asarray(x), 3, 1, 1)
    y = rng.standard_normal(cols.shape)
    back = gpu.col2im(xp.asarray(y), x.shape, 3, 1, 1)
    assert numpy.isclose((host(cols) * y).sum(), (x * host(back)).sum(), rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# max pool
# ----------------------------------------------------------------------------------------------
@FEW
@given(case=windows(pool=True), dtype=st.sampled_from([numpy.float32, numpy.float64]))
def test_max_pool_forward_equals_the_reference_exactly_on_tie_free_data(xp, gpu, launches, case,
                                                                       dtype):
    launches.clear()
    N, C, H, W = case["shape"]
    rng = numpy.random.default_rng(case["seed"])
    distinct = rng.permutation(N * C * H * W).reshape(N, C, H, W) - N * C * H * W / 2
    x_host, x = make_input(xp, case, values=distinct, dtype=dtype)
    args = (case["kernel"], case["stride"], case["padding"])
    y, argmax = gpu.max_pool2d_forward(x, *args)
    y_ref, argmax_ref = pooling.max_pool2d_forward.reference(x_host, *args)
    numpy.testing.assert_array_equal(host(y), y_ref)
    numpy.testing.assert_array_equal(host(argmax), argmax_ref)
    assert host(argmax).dtype == numpy.int64
    if dtype == numpy.float32:
        check_launches(gpu, launches, ["max_pool_forward_kernel"])


def test_max_pool_forward_ties_nan_and_infinity_as_the_reference(xp, gpu):
    """Ties go to the first in scan order, NaN wins, an all -inf window points at a real pixel."""
    x = numpy.array([[[[1, 1, 0, 2],
                       [1, 0, 2, 2],
                       [numpy.nan, 3, -numpy.inf, -numpy.inf],
                       [3, 3, -numpy.inf, -numpy.inf]]]], dtype=numpy.float32)
    for args in ((2, 2, 0), (3, 1, 1), (2, 1, 1)):
        y, argmax = gpu.max_pool2d_forward(xp.asarray(x), *args)
        y_ref, argmax_ref = pooling.max_pool2d_forward.reference(x, *args)
        numpy.testing.assert_array_equal(host(y), y_ref)
        numpy.testing.assert_array_equal(host(argmax), argmax_ref)


@FEW
@given(case=windows(pool=True), dtype=st.sampled_from([numpy.float32, numpy.float64]))
def test_max_pool_backward_equals_the_reference(xp, gpu, launches, case, dtype):
    launches.clear()
    N, C, H, W = case["shape"]
    rng = numpy.random.default_rng(case["seed"])
    x_host = rng.permutation(N * C * H * W).reshape(N, C, H, W).astype(dtype)
    _, argmax = pooling.max_pool2d_forward.reference(
        x_host, case["kernel"], case["stride"], case["padding"])
    gy_host = rng.standard_normal(argmax.shape).astype(dtype)
    gx = gpu.max_pool2d_backward(xp.asarray(gy_host), xp.asarray(argmax), x_host.shape)
    expected = pooling.max_pool2d_backward.reference(gy_host, argmax, x_host.shape)
    assert host(gx).shape == (N, C, H, W) and host(gx).dtype == dtype
    numpy.testing.assert_allclose(host(gx), expected, rtol=1e-5, atol=1e-6)
    if dtype == numpy.float32:
        check_launches(gpu, launches, ["max_pool_backward_kernel"])


# ----------------------------------------------------------------------------------------------
# batch norm
# ----------------------------------------------------------------------------------------------
@st.composite
def batches(draw):
    """x (N, C) or (N, C, H, W) with more than one value per channel, an offset (the two-pass
    variance must not lose it), weight/bias or None, a seed."""
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 4))
    shape = (N, C) if draw(st.booleans()) else (N, C, draw(st.integers(1, 7)),
                                                  draw(st.integers(1, 7)))
    assume(numpy.prod(shape) // C > 1)
    return dict(shape=shape, offset=draw(st.sampled_from([0.0, 30.0])),
                affine=draw(st.sampled_from(["both", "weight", "bias", "none"])),
                transposed=len(shape) == 4 and draw(st.booleans()),
                seed=draw(st.integers(0, 2**31)))


def batch_inputs(xp, case, dtype):
    rng = numpy.random.default_rng(case["seed"])
    shape, C = case["shape"], case["shape"][1]
    x_host = (case["offset"] + rng.standard_normal(shape)).astype(dtype)
    x = xp.asarray(x_host)
    if case["transposed"]:
        x = xp.asarray(numpy.ascontiguousarray(x_host.transpose(0, 1, 3, 2))).transpose(0, 1, 3, 2)
    weight = rng.uniform(0.5, 2.0, C).astype(dtype) if case["affine"] in ("both", "weight") \
        else None
    bias = rng.standard_normal(C).astype(dtype) if case["affine"] in ("both", "bias") else None
    return rng, x_host, x, weight, bias


def on_device(xp, a):
    return None if a is None else xp.asarray(a)


@FEW
@given(case=batches(), dtype=st.sampled_from([numpy.float32, numpy.float64]))
def test_batch_norm_forward_equals_the_reference(xp, gpu, launches, case, dtype):
    launches.clear()
    _, x_host, x, weight, bias = batch_inputs(xp, case, dtype)
    out = gpu.batch_norm_train_forward(x, on_device(xp, weight), on_device(xp, bias), 1e-5)
    expected = batchnorm.batch_norm_train_forward.reference(x_host, weight, bias, 1e-5)
    for name, got, want in zip(("y", "mean", "var", "inv_std"), out, expected):
        assert host(got).shape == want.shape and host(got).dtype == dtype, name
        numpy.testing.assert_allclose(host(got), want, rtol=1e-5, atol=1e-5, err_msg=name)
    if dtype == numpy.float32:
        check_launches(gpu, launches, ["channel_sums_kernel", "channel_sums_kernel",
                                       "batch_norm_apply_kernel"])


@FEW
@given(case=batches(), dtype=st.sampled_from([numpy.float32, numpy.float64]))
def test_batch_norm_backward_equals_the_reference(xp, gpu, launches, case, dtype):
    launches.clear()
    rng, x_host, x, weight, _ = batch_inputs(xp, case, dtype)
    _, mean, _, inv_std = batchnorm.batch_norm_train_forward.reference(x_host, weight, None, 1e-5)
    gy_host = rng.standard_normal(x_host.shape).astype(dtype)
    out = gpu.batch_norm_train_backward(xp.asarray(gy_host), x, xp.asarray(mean),
                                        xp.asarray(inv_std), on_device(xp, weight))
    expected = batchnorm.batch_norm_train_backward.reference(gy_host, x_host, mean, inv_std,
                                                              weight)
    # a sum that cancels is only as accurate as its terms are large: sum |gy| per channel
    terms = numpy.abs(gy_host).sum(axis=(0,) + tuple(range(2, gy_host.ndim))).max()
    for name, got, want, atol in zip(("gx", "gweight", "gbias"), out, expected,
                                     (1e-5, 1e-6 * terms, 1e-6 * terms)):
        if want is None:
            assert got is None, name
            continue
        assert host(got).shape == want.shape and host(got).dtype == dtype, name
        numpy.testing.assert_allclose(host(got), want, rtol=1e-5, atol=atol, err_msg=name)
    if dtype == numpy.float32:
        check_launches(gpu, launches, ["channel_sums_kernel", "batch_norm_backward_dx_kernel"])


# ----------------------------------------------------------------------------------------------
# the launch helper and bad input
# ----------------------------------------------------------------------------------------------
def test_launch_configuration(gpu):
    from tinyres.kernels.gpu import launch
    assert launch.blocks_for(1) == 1 and launch.blocks_for(128) == 1
    assert launch.blocks_for(129) == 2 and launch.blocks_for(0) == 0
    assert launch.REDUCE_THREADS & (launch.REDUCE_THREADS - 1) == 0     # a power of two


def test_bad_input_is_named(xp, gpu):
    with pytest.raises(TypeError, match=r"im2col \(GPU kernel\): expected float32 or float64"):
        gpu.im2col(xp.zeros((1, 1, 3, 3), dtype=numpy.int32), 2)
    with pytest.raises(ValueError, match="im2col: kernel 4x4 is larger than the padded input 3x3"):
        gpu.im2col(xp.zeros((1, 1, 3, 3), dtype=numpy.float32), 4)
    with pytest.raises(TypeError, match="kernel_size must be an int or a pair"):
        gpu.max_pool2d_forward(xp.zeros((1, 1, 3, 3), dtype=numpy.float32), (2, 2, 2), 1, 0)
    with pytest.raises(TypeError, match="GPU kernels take NumPy arrays .* or CuPy arrays"):
        gpu.im2col([[1.0]], 1)
