"""The Numba CPU kernels (tinyres.kernels.cpu) against their readable NumPy twins, the gradient
checks on both paths ('fast' and 'reference'), and the installed wheel.

Every kernel is held equal to its twin's `.reference` on shapes drawn by hypothesis: batch 1, odd
sizes, strides larger than the kernel, padding, non-contiguous inputs; float32 to float32
rounding, float64 (the gradient checks' type, which the kernels compile for too) more tightly.
"""
import os
import shutil
import subprocess
import sys
import threading
import venv
from fractions import Fraction
from pathlib import Path

import numpy
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import tinyres
from tinyres import Tensor, dispatch, gradcheck
from tinyres.functional import activation, batchnorm as bn
from tinyres.functional import conv, pooling
from tinyres.models import get_model, summary

cpu = pytest.importorskip("tinyres.kernels.cpu", reason="the CPU kernels need Numba")
from tinyres.kernels.cpu import conv as cpu_conv  # noqa: E402
from tinyres.kernels.cpu import winograd  # noqa: E402
from helpers import conv_configs, conv_output_shape  # noqa: E402

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
REPO = Path(__file__).resolve().parents[1]


def tolerance(dtype):
    return dict(rtol=2e-4, atol=2e-5) if dtype == numpy.float32 else dict(rtol=1e-10, atol=1e-12)


def made_noncontiguous(data):
    """The same values as a non-contiguous view (the last two axes swapped in memory, then
    swapped back), as an op meets after a transpose; 1-D data as a strided slice."""
    if data.ndim < 2:
        return numpy.repeat(data, 2)[::2]
    return numpy.ascontiguousarray(numpy.swapaxes(data, -1, -2)).swapaxes(-1, -2)


def made(rng, shape, dtype, noncontiguous):
    """Random data of `shape`, optionally as a non-contiguous view."""
    data = rng.standard_normal(shape).astype(dtype)
    return made_noncontiguous(data) if noncontiguous else data


@pytest.fixture
def kernels():
    """Restore the kernel switch after a test that changes it."""
    previous = dispatch.get_kernels()
    yield
    dispatch.set_kernels(previous)


def test_the_door_routes_numpy_arrays_to_the_cpu_kernels(kernels):
    x = numpy.zeros((1, 1, 2, 2), numpy.float32)
    dispatch.set_kernels("fast")
    for name in cpu.__all__:
        assert dispatch.kernel_for(name, x) is getattr(cpu, name)
    dispatch.set_kernels("reference")
    assert dispatch.kernel_for("conv2d_forward", x) is None


# ----------------------------------------------------------------------------------------------
# conv: im2col, col2im, and the whole conv (forward, backward)
# ----------------------------------------------------------------------------------------------
def kernel_conv_configs():
    """Convs as tests/helpers.py draws them, larger, in both float types, and with the rows per
    chunk: 1 gives one image per chunk; 20 a few; 2**20 all at once."""
    return conv_configs(max_batch=5, max_channels=4, max_size=9, max_stride=4, max_padding=2,
                        dtype=st.sampled_from([numpy.float32, numpy.float64]),
                        chunk_rows=st.sampled_from([1, 20, 1 << 20]))


@SETTINGS
@given(cfg=kernel_conv_configs(), seed=st.integers(0, 2**16))
def test_im2col_and_col2im_equal_the_reference(cfg, seed):
    rng = numpy.random.default_rng(seed)
    x = made(rng, (cfg["n"], cfg["c"], cfg["h"], cfg["w"]), cfg["dtype"], cfg["noncontiguous"])
    args = (cfg["kernel"], cfg["stride"], cfg["padding"])
    numpy.testing.assert_array_equal(cpu.im2col(x, *args), conv.im2col.reference(x, *args))
    OH, OW = conv_output_shape(cfg)
    cols = made(rng, (cfg["n"] * OH * OW, cfg["c"] * cfg["kernel"][0] * cfg["kernel"][1]),
                cfg["dtype"], cfg["noncontiguous"])
    # the same additions in the same order: equal to the last bit
    numpy.testing.assert_array_equal(cpu.col2im(cols, x.shape, *args),
                                     conv.col2im.reference(cols, x.shape, *args))


@SETTINGS
@given(cfg=kernel_conv_configs(), seed=st.integers(0, 2**16), input_grad=st.booleans())
def test_conv2d_forward_and_backward_equal_the_reference(monkeypatch, cfg, seed, input_grad):
    monkeypatch.setattr(cpu_conv, "CHUNK_ROWS", cfg["chunk_rows"])
    rng = numpy.random.default_rng(seed)
    dtype = cfg["dtype"]
    x = made(rng, (cfg["n"], cfg["c"], cfg["h"], cfg["w"]), dtype, cfg["noncontiguous"])
    w = made(rng, (cfg["oc"], cfg["c"]) + cfg["kernel"], dtype, cfg["noncontiguous"])
    gy = made(rng, (cfg["n"], cfg["oc"]) + conv_output_shape(cfg), dtype, cfg["noncontiguous"])
    args = (cfg["stride"], cfg["padding"])
    y = cpu.conv2d_forward(x, w, *args)
    expected = conv.conv2d_forward.reference(x, w, *args)
    assert y.dtype == dtype and y.shape == expected.shape and y.flags.c_contiguous
    numpy.testing.assert_allclose(y, expected, **tolerance(dtype))
    gx, gw = cpu.conv2d_backward(gy, x, w, *args, input_grad)
    gx_ref, gw_ref = conv.conv2d_backward.reference(gy, x, w, *args, input_grad)
    numpy.testing.assert_allclose(gw, gw_ref, **tolerance(dtype))
    assert gw.dtype == dtype and (gx is None) == (not input_grad)
    if input_grad:
        assert gx.dtype == dtype and gx.shape == x.shape
        numpy.testing.assert_allclose(gx, gx_ref, **tolerance(dtype))


# ----------------------------------------------------------------------------------------------
# Winograd's F(2x2, 3x3): the fast path of 3x3 convs at stride 1 (kernels/cpu/winograd.py)
# ----------------------------------------------------------------------------------------------
@st.composite
def winograd_configs(draw):
    """3x3 convs at stride 1, mostly with even output sizes (Winograd's), some odd (im2col's)."""
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    return dict(n=draw(st.integers(1, 5)), c=draw(st.integers(1, 5)), oc=draw(st.integers(1, 5)),
                h=draw(st.integers(max(1, 3 - 2 * padding[0]), 11)),
                w=draw(st.integers(max(1, 3 - 2 * padding[1]), 11)),
                kernel=(3, 3), stride=(1, 1), padding=padding,
                noncontiguous=draw(st.booleans()),
                dtype=draw(st.sampled_from([numpy.float32, numpy.float64])),
                chunk_bytes=draw(st.sampled_from([1, 3000, 1 << 20])))


@SETTINGS
@given(cfg=winograd_configs(), seed=st.integers(0, 2**16), input_grad=st.booleans())
def test_winograd_conv_equals_the_reference(monkeypatch, cfg, seed, input_grad):
    monkeypatch.setattr(cpu_conv, "WINOGRAD_CHUNK_BYTES", cfg["chunk_bytes"])
    taken, input_transform = [], winograd.input_transform
    monkeypatch.setattr(winograd, "input_transform",
                        lambda *args: taken.append(1) or input_transform(*args))
    rng = numpy.random.default_rng(seed)
    dtype, args = cfg["dtype"], (cfg["stride"], cfg["padding"])
    x = made(rng, (cfg["n"], cfg["c"], cfg["h"], cfg["w"]), dtype, cfg["noncontiguous"])
    w = made(rng, (cfg["oc"], cfg["c"], 3, 3), dtype, cfg["noncontiguous"])
    y = cpu.conv2d_forward(x, w, *args)
    expected = conv.conv2d_forward.reference(x, w, *args)
    assert y.dtype == dtype and y.shape == expected.shape and y.flags.c_contiguous
    numpy.testing.assert_allclose(y, expected, **tolerance(dtype))
    assert bool(taken) == (y.shape[2] % 2 == 0 and y.shape[3] % 2 == 0)
    gy = made(rng, y.shape, dtype, cfg["noncontiguous"])
    gx, gw = cpu.conv2d_backward(gy, x, w, *args, input_grad)
    gx_ref, gw_ref = conv.conv2d_backward.reference(gy, x, w, *args, input_grad)
    assert gw.dtype == dtype and gw.shape == w.shape and (gx is None) == (not input_grad)
    numpy.testing.assert_allclose(gw, gw_ref, **tolerance(dtype))
    if input_grad:
        assert gx.dtype == dtype and gx.shape == x.shape
        numpy.testing.assert_allclose(gx, gx_ref, **tolerance(dtype))


def split_columns(grid):
    """(B, H, W, C) -> (B, H, 2, W/2, C), column w at [w % 2, w // 2]: the kernels' layout."""
    B, H, W, C = grid.shape
    return numpy.ascontiguousarray(grid.reshape(B, H, W // 2, 2, C).transpose(0, 1, 3, 2, 4))


def tiles(grid, size):
    """Every size x size tile of grid (B, H, W, C), 2 apart: (B*TH*TW, size, size, C)."""
    B, H, W, C = grid.shape
    return numpy.array([grid[b, 2 * i:2 * i + size, 2 * j:2 * j + size]
                        for b in range(B) for i in range((H - size) // 2 + 1)
                        for j in range((W - size) // 2 + 1)])


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), b=st.integers(1, 3), th=st.integers(1, 3),
       tw=st.integers(1, 3), c=st.integers(1, 4))
def test_winograd_transforms_are_the_matrices_and_their_adjoints(seed, b, th, tw, c):
    """Each kernel is its matrix product (B^T d B, A^T m A) tile by tile, and each adjoint
    kernel satisfies <K u, v> = <u, K^T v> (float64: exact up to rounding)."""
    rng = numpy.random.default_rng(seed)
    BT, AT = winograd.BT, winograd.AT
    T, H, W = b * th * tw, 2 * th, 2 * tw                   # output H x W, input (H+2) x (W+2)
    d = rng.standard_normal((b, H + 2, W + 2, c))
    V = numpy.empty((16, T, c))
    winograd.input_transform(split_columns(d), V, numpy.empty((4, 2, tw + 1, c)))
    expected = numpy.einsum("pi,tijc,qj->pqtc", BT, tiles(d, 4), BT).reshape(16, T, c)
    numpy.testing.assert_allclose(V, expected, rtol=1e-12, atol=1e-12)
    M = rng.standard_normal((16, T, c))
    y = numpy.empty((b, H, 2, tw, c))
    winograd.output_transform(M, y, numpy.empty((2, 4, tw, c)))
    expected = numpy.einsum("ip,tpqc,jq->tijc", AT, M.reshape(4, 4, T, c).transpose(2, 0, 1, 3),
                            AT)                             # (T, 2, 2, c): each tile's outputs
    numpy.testing.assert_allclose(tiles(y.transpose(0, 1, 3, 2, 4).reshape(b, H, W, c), 2),
                                  expected, rtol=1e-12, atol=1e-12)
    # adjoints
    dV = rng.standard_normal((16, T, c))
    gpadded = numpy.zeros((b, H + 2, 2, tw + 1, c))
    winograd.input_transform_adjoint(dV, gpadded, numpy.empty((4, 4, tw, c)))
    assert numpy.isclose(numpy.vdot(V, dV), numpy.vdot(split_columns(d), gpadded), rtol=1e-12)
    gy = rng.standard_normal((b, H, 2, tw, c))
    dM = numpy.empty((16, T, c))
    winograd.output_transform_adjoint(gy, dM, numpy.empty((4, 2, tw, c)))
    assert numpy.isclose(numpy.vdot(y, gy), numpy.vdot(M, dM), rtol=1e-12)


def test_winograd_filter_transform_and_its_adjoint():
    rng = numpy.random.default_rng(0)
    g, gU = rng.standard_normal((5, 3, 3, 3)), rng.standard_normal((16, 5, 3))
    U = winograd.filter_transform(g)
    expected = numpy.einsum("pa,ocab,qb->pqoc", winograd.G, g, winograd.G).reshape(16, 5, 3)
    numpy.testing.assert_allclose(U, expected, rtol=1e-12)
    assert numpy.isclose(numpy.vdot(U, gU), numpy.vdot(g, winograd.filter_transform_backward(gU)),
                         rtol=1e-12)


def test_the_readable_conv_is_one_call_on_the_whole_batch_on_this_thread(monkeypatch, kernels):
    """The readable conv is the lesson: im2col once on all N images, on the calling thread (a
    learner's breakpoint lands where they are), for the forward and for the backward."""
    calls = []
    unfold = conv.im2col

    def spy(x, *args):
        calls.append((x.shape[0], threading.current_thread() is threading.main_thread()))
        return unfold(x, *args)
    monkeypatch.setattr(conv, "im2col", spy)
    dispatch.set_kernels("reference")
    x = tinyres.tensor(numpy.ones((64, 16, 32, 32), numpy.float32), requires_grad=True)
    w = tinyres.tensor(numpy.ones((16, 16, 3, 3), numpy.float32), requires_grad=True)
    tinyres.functional.conv2d(x, w, padding=1).sum().backward()
    assert calls == [(64, True), (64, True)]


def test_conv_kernels_raise_as_the_reference():
    x = numpy.zeros((1, 1, 2, 2), numpy.float32)
    with pytest.raises(ValueError, match="give no output positions"):
        cpu.im2col(x, 3)
    with pytest.raises(TypeError, match="float32 or float64"):
        cpu.im2col(x.astype(numpy.int64), 1)


# ----------------------------------------------------------------------------------------------
# batch norm, with and without the fused ReLU
# ----------------------------------------------------------------------------------------------
@st.composite
def bn_configs(draw):
    four_d = draw(st.booleans())
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 5)))
    if four_d:
        shape += (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    elif shape[0] == 1:
        shape = (2, shape[1])                       # training needs 2+ values per channel
    return dict(shape=shape, affine=draw(st.booleans()), noncontiguous=draw(st.booleans()),
                dtype=draw(st.sampled_from([numpy.float32, numpy.float64])),
                offset=draw(st.sampled_from([0.0, 50.0])))


def bn_inputs(cfg, seed):
    rng = numpy.random.default_rng(seed)
    dtype, shape, C = cfg["dtype"], cfg["shape"], cfg["shape"][1]
    x = made(rng, shape, dtype, cfg["noncontiguous"]) + dtype(cfg["offset"])
    gy = made(rng, shape, dtype, cfg["noncontiguous"])
    weight = rng.standard_normal(C).astype(dtype) if cfg["affine"] else None
    bias = rng.standard_normal(C).astype(dtype) if cfg["affine"] else None
    return x, gy, weight, bias


def assert_all_close(got, want, dtype):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.dtype == dtype and a.shape == b.shape
            numpy.testing.assert_allclose(a, b, **tolerance(dtype))


@SETTINGS
@given(cfg=bn_configs(), seed=st.integers(0, 2**16), relu=st.booleans())
def test_batch_norm_kernels_equal_the_reference(cfg, seed, relu):
    x, gy, weight, bias = bn_inputs(cfg, seed)
    dtype = cfg["dtype"]
    if relu:
        forward, backward = bn.batch_norm_relu_train_forward, bn.batch_norm_relu_train_backward
    else:
        forward, backward = bn.batch_norm_train_forward, bn.batch_norm_train_backward
    fast = getattr(cpu, forward.__name__)(x, weight, bias, 1e-5)
    reference = forward.reference(x, weight, bias, 1e-5)
    assert_all_close(fast, reference, dtype)
    y, mean, _, inv_std = reference
    saved = (y,) if relu else ()                    # the fused backward reads the ReLU's output
    fast = getattr(cpu, backward.__name__)(gy, *saved, x, mean, inv_std, weight)
    assert_all_close(fast, backward.reference(gy, *saved, x, mean, inv_std, weight), dtype)


@SETTINGS
@given(cfg=bn_configs(), seed=st.integers(0, 2**16))
def test_batch_norm_eval_kernel_equals_the_reference(cfg, seed):
    x, _, weight, bias = bn_inputs(cfg, seed)
    rng = numpy.random.default_rng(seed)
    mean = rng.standard_normal(x.shape[1]).astype(cfg["dtype"])
    scale = rng.uniform(0.5, 2.0, x.shape[1]).astype(cfg["dtype"])
    fast = cpu.batch_norm_eval_forward(x, mean, scale, bias)
    assert_all_close([fast], [bn.batch_norm_eval_forward.reference(x, mean, scale, bias)],
                     cfg["dtype"])


def test_batch_norm_statistics_survive_a_large_mean():
    """The float64 sums about a shift lose nothing when |mean| >> std (float32 data)."""
    rng = numpy.random.default_rng(0)
    x = (1000.0 + rng.standard_normal((64, 3, 8, 8))).astype(numpy.float32)
    _, mean, var, _ = cpu.batch_norm_train_forward(x, None, None, 1e-5)
    exact = x.astype(numpy.float64)
    numpy.testing.assert_allclose(mean, exact.mean(axis=(0, 2, 3)), rtol=1e-7)
    numpy.testing.assert_allclose(var, exact.var(axis=(0, 2, 3)), rtol=1e-5)


def test_fused_batch_norm_relu_is_relu_of_batch_norm(kernels, rng):
    """batch_norm(..., relu=True): the same values, gradients and running statistics as
    relu(batch_norm(...)), on both paths."""
    x = rng.standard_normal((4, 3, 5, 5)).astype(numpy.float32)
    gy = rng.standard_normal((4, 3, 5, 5)).astype(numpy.float32)
    for choice in ("fast", "reference"):
        dispatch.set_kernels(choice)
        results = []
        for fused in (True, False):
            xt = Tensor(x.copy(), requires_grad=True)
            w = Tensor(numpy.full(3, 1.5, numpy.float32), requires_grad=True)
            b = Tensor(numpy.full(3, 0.2, numpy.float32), requires_grad=True)
            mean, var = numpy.zeros(3, numpy.float32), numpy.ones(3, numpy.float32)
            if fused:
                y = tinyres.functional.batch_norm(xt, w, b, mean, var, True, relu=True)
            else:
                y = tinyres.functional.relu(tinyres.functional.batch_norm(xt, w, b, mean, var,
                                                                          True))
            y.backward(gy)
            results.append([y.data, xt.grad, w.grad, b.grad, mean, var])
        for fused, separate in zip(*results):
            numpy.testing.assert_allclose(fused, separate, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# ReLU
# ----------------------------------------------------------------------------------------------
@SETTINGS
@given(shape=st.lists(st.integers(1, 7), min_size=1, max_size=4), seed=st.integers(0, 2**16),
       noncontiguous=st.booleans(), dtype=st.sampled_from([numpy.float32, numpy.float64]),
       pieces=st.sampled_from([3, 1 << 18]))
def test_relu_kernels_equal_the_reference(monkeypatch, shape, seed, noncontiguous, dtype, pieces):
    """Bit for bit, NaN and infinities included (a NaN stays NaN; gy * 0 keeps NaN * 0 = NaN)."""
    monkeypatch.setattr(cpu.elementwise, "PIECE", pieces)
    rng = numpy.random.default_rng(seed)
    x, gy = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    x.flat[0], gy.flat[-1] = numpy.nan, numpy.inf
    if noncontiguous:
        x, gy = (made_noncontiguous(a) for a in (x, gy))
    y = cpu.relu_forward(x)
    assert y.dtype == dtype and y.shape == x.shape
    numpy.testing.assert_array_equal(y, activation.relu_forward.reference(x))
    with numpy.errstate(invalid="ignore"):                  # inf * 0
        numpy.testing.assert_array_equal(cpu.relu_backward(gy, y),
                                         activation.relu_backward.reference(gy, y))


# ----------------------------------------------------------------------------------------------
# max pooling
# ----------------------------------------------------------------------------------------------
@st.composite
def pool_configs(draw):
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
    return dict(
        shape=(draw(st.integers(1, 3)), draw(st.integers(1, 3)),
               draw(st.integers(kernel[0], 8)), draw(st.integers(kernel[1], 8))),
        kernel=kernel, stride=(draw(st.integers(1, 4)), draw(st.integers(1, 4))),
        padding=padding, noncontiguous=draw(st.booleans()),
        dtype=draw(st.sampled_from([numpy.float32, numpy.float64])),
        ties=draw(st.booleans()), specials=draw(st.booleans()))


@SETTINGS
@given(cfg=pool_configs(), seed=st.integers(0, 2**16))
def test_max_pool_kernels_equal_the_reference(cfg, seed):
    """Values, argmax (ties: the first maximum; NaN and -inf as the reference) and the
    scatter-add backward, bit for bit."""
    rng = numpy.random.default_rng(seed)
    x = made(rng, cfg["shape"], cfg["dtype"], cfg["noncontiguous"])
    if cfg["ties"]:
        x = numpy.round(x)                              # few distinct values: many ties
    if cfg["specials"]:
        x = x.copy()
        x.reshape(-1)[rng.integers(0, x.size, 3)] = [numpy.nan, -numpy.inf, -numpy.inf]
    args = (cfg["kernel"], cfg["stride"], cfg["padding"])
    y, argmax = cpu.max_pool2d_forward(x, *args)
    y_ref, argmax_ref = pooling.max_pool2d_forward.reference(x, *args)
    assert y.dtype == cfg["dtype"] and argmax.dtype == numpy.int64
    numpy.testing.assert_array_equal(y, y_ref)
    numpy.testing.assert_array_equal(argmax, argmax_ref)
    gy = made(rng, y.shape, cfg["dtype"], cfg["noncontiguous"])
    numpy.testing.assert_array_equal(cpu.max_pool2d_backward(gy, argmax, x.shape),
                                     pooling.max_pool2d_backward.reference(gy, argmax, x.shape))


# ----------------------------------------------------------------------------------------------
# The op-level gradient checks (float64 through the Numba kernels), on both paths
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("choice", ["fast", "reference"])
@pytest.mark.parametrize("family", ["conv", "pool", "batch_norm"])
def test_registered_gradchecks_pass_on_both_paths(kernels, choice, family):
    import tinyres.checks  # noqa: F401  (registers every family's cases)
    from tinyres.gradcheck import REGISTRY
    dispatch.set_kernels(choice)
    names = [name for name in REGISTRY if family in name]
    assert names
    for name in names:
        for _, fn, inputs in REGISTRY[name](numpy.random.default_rng(0)):
            gradcheck(fn, inputs)


@settings(max_examples=10, deadline=None)
@given(cfg=kernel_conv_configs(), seed=st.integers(0, 2**16),
       choice=st.sampled_from(["fast", "reference"]))
def test_conv_and_fused_batch_norm_relu_gradcheck(cfg, seed, choice):
    previous = dispatch.get_kernels()
    dispatch.set_kernels(choice)
    try:
        rng = numpy.random.default_rng(seed)
        x = Tensor(made(rng, (cfg["n"], cfg["c"], cfg["h"], cfg["w"]), numpy.float64,
                        cfg["noncontiguous"]), requires_grad=True)
        w = Tensor(rng.standard_normal((cfg["oc"], cfg["c"]) + cfg["kernel"]),
                   requires_grad=True)
        gamma = Tensor(rng.uniform(0.5, 1.5, cfg["oc"]), requires_grad=True)
        beta = Tensor(rng.standard_normal(cfg["oc"]), requires_grad=True)

        def conv_bn_relu(x, w, gamma, beta):
            y = tinyres.functional.conv2d(x, w, stride=cfg["stride"], padding=cfg["padding"])
            if y.shape[0] * y.shape[2] * y.shape[3] < 2:
                return y                            # too few values for batch statistics
            return tinyres.functional.batch_norm(y, gamma, beta, None, None, True, relu=True)
        gradcheck(conv_bn_relu, [x, w, gamma, beta])
    finally:
        dispatch.set_kernels(previous)


# ----------------------------------------------------------------------------------------------
# The wheel: kernels/ installs as tinyres.kernels, never as a top-level `kernels`
# ----------------------------------------------------------------------------------------------
def test_the_wheel_installs_the_kernels_inside_tinyres(tmp_path):
    """Build the wheel from a clean copy of the sources, install it into a fresh venv (which sees
    this interpreter's numpy and numba), import tinyres.kernels.cpu from it."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc")
    for name in ("tinyres", "kernels"):
        shutil.copytree(REPO / name, source / name, ignore=skip)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(wheels)], check=True, cwd=tmp_path)
    wheel = next(wheels.glob("tinyres-*.whl"))

    environment = tmp_path / "venv"
    venv.create(environment, system_site_packages=True, with_pip=False)
    python = str(environment / "bin" / "python")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    # the venv runs this interpreter's pip (a system site package); no network needed
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                   check=True, cwd=tmp_path, env=env)
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.run([python, "-c", purelib], check=True, capture_output=True,
                               text=True, env=env).stdout.strip())
    assert (site / "tinyres" / "kernels" / "cpu" / "__init__.py").is_file()
    assert (site / "tinyres" / "kernels" / "gpu" / "__init__.py").is_file()
    assert not (site / "kernels").exists(), "a top-level `kernels` package was installed"
    # every package of the source tree is in the wheel
    for init in list((REPO / "tinyres").rglob("__init__.py")):
        package = init.parent.relative_to(REPO)
        if "__pycache__" not in package.parts:
            assert (site / package / "__init__.py").is_file(), f"{package} missing from the wheel"
    for init in (REPO / "kernels").rglob("__init__.py"):
        package = Path("tinyres") / init.parent.relative_to(REPO)
        assert (site / package / "__init__.py").is_file(), f"{package} missing from the wheel"

    probe = ("import tinyres, tinyres.kernels.cpu as k, importlib.util; "
             "print(tinyres.__file__); print(k.__file__); "
             "print(importlib.util.find_spec('kernels'))")
    done = subprocess.run([python, "-c", probe], check=True, capture_output=True,
                          text=True, cwd=tmp_path, env=env)
    tinyres_file, kernels_file, top_level = done.stdout.split("\n")[:3]
    assert tinyres_file.startswith(str(site)) and kernels_file.startswith(str(site))
    assert top_level == "None"


# ----------------------------------------------------------------------------------------------
# The benchmark's machinery (nothing is timed against a threshold here)
# ----------------------------------------------------------------------------------------------
def test_bench_profile_accounts_for_the_step_and_restores_the_ops():
    from tinyres import bench
    from tinyres.functional.conv import Conv2d
    forward, backward = Conv2d.forward, Conv2d.backward
    runner = bench.TinyresRunner("fast", "resnet20", batch_size=2)
    rows = dict(bench.profile_step(runner, steps=1))
    assert Conv2d.forward is forward and Conv2d.backward is backward
    assert rows["conv forward"] > 0 and rows["conv backward"] > 0
    assert rows["batch norm (+ fused ReLU) forward"] > 0 and rows["SGD momentum update"] > 0
    parts = sum(seconds for label, seconds in rows.items() if label != "whole step")
    assert parts == pytest.approx(rows["whole step"])
    table = bench.format_table(2, {"fast": [0.2], "torch": [0.1]}, {"fast": [0.1], "torch": [0.1]},
                               {}, "torch")
    assert "2.00x" in table and "1.00x" in table


def test_bench_records_every_conv_of_a_step_for_the_gemm_floor():
    """ResNet-20 has 19 convolutions (the stem, 2 per block in 9 blocks): each is called once
    forward and once backward, and the stem's backward needs no input gradient."""
    from tinyres import bench
    from tinyres.functional.conv import Conv2d
    forward, backward = Conv2d.forward, Conv2d.backward
    runner = bench.TinyresRunner("fast", "resnet20", batch_size=2)
    calls = bench.conv_calls(runner)
    assert Conv2d.forward is forward and Conv2d.backward is backward
    forwards = [c for c in calls if c[4] is None]
    backwards = [c for c in calls if c[4] is not None]
    assert len(forwards) == len(backwards) == 19
    assert forwards[0][:2] == ((2, 3, 32, 32), (16, 3, 3, 3))
    assert [c[4] for c in backwards].count(False) == 1            # the stem: no gx
    assert bench.conv_gemm_time(calls, steps=1) > 0
    # 2 flops per multiply-add, 3 products per conv (forward, weight and input gradients) but
    # no input gradient for the stem; Winograd's F(2x2, 3x3) does 16 multiply-adds per 2x2
    # output tile where a 3x3 filter does 36: 4/9 of them, for every conv but the two at stride 2
    rows = [row for row in summary(get_model("resnet20"), (3, 32, 32), show=False).rows
            if row.kind == "Conv2d"]
    products = [2] + [3] * (len(rows) - 1)
    at_stride_2 = [i > 0 and row.output_shape[-1] < rows[i - 1].output_shape[-1]
                   for i, row in enumerate(rows)]
    assert at_stride_2.count(True) == 2
    share = [Fraction(1) if stride_2 else Fraction(4, 9) for stride_2 in at_stride_2]
    expected = sum(2 * 2 * row.macs * n * f for row, n, f in zip(rows, products, share))
    assert bench.conv_gemm_flops(calls) == expected
