"""The Numba CPU kernels (tinyres.kernels.cpu) against their readable NumPy twins, the gradient
checks on both paths ('fast' and 'reference').

Every kernel is held equal to its twin's `.reference` on shapes drawn by hypothesis: batch 1, odd
sizes, strides larger than the kernel, padding, non-contiguous inputs; float32 to float32
rounding, float64 (the gradient checks' type, which the kernels compile for too) more tightly.
"""
import threading

import numpy
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import tinyres
from tinyres import Tensor, dispatch, gradcheck
from tinyres.functional import activation, batchnorm as bn
from tinyres.functional import conv, pooling
from tinyres.functional import winograd as readable_winograd
from tinyres.kernels.geometry import window_geometry

cpu = pytest.importorskip("tinyres.kernels.cpu", reason="the CPU kernels need Numba")
from tinyres.kernels.cpu import conv_gemm, conv_winograd  # noqa: E402
from tinyres.kernels.cpu import winograd  # noqa: E402
from tinyres.kernels.cpu import layout  # noqa: E402
from tinyres.kernels.cpu.layout import kernel_array  # noqa: E402
from helpers import conv_configs, conv_output_shape  # noqa: E402

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def tolerance(dtype):
    return dict(rtol=2e-4, atol=2e-5) if dtype == numpy.float32 else dict(rtol=1e-10, atol=1e-12)


def conv_tolerance(dtype, expected):
    """tolerance(dtype) for a convolution's result `expected`, whose absolute part grows with its
    largest value: the Winograd routes' F(4x4) rounds float32 up to some 8e-6 of it (measured in
    tinyres/functional/winograd.py's docstring), so 1e-4 of it (1e-12 in float64)."""
    scale = float(numpy.abs(expected).max(initial=1.0))
    tol = tolerance(dtype)
    return dict(rtol=tol["rtol"], atol=max(tol["atol"], (1e-4 if dtype == numpy.float32
                                                         else 1e-12) * scale))


def made_noncontiguous(data):
    """The same values as a non-contiguous view (the last two axes swapped in memory, then
    swapped back), as an op meets after a transpose; 1-D data as a strided slice."""
    if data.ndim < 2:
        return numpy.repeat(data, 2)[::2]
    return numpy.ascontiguousarray(numpy.swapaxes(data, -1, -2)).swapaxes(-1, -2)


def made_channels_last(data):
    """The same (N, C, H, W) values with channels-last memory, as the fast path's activations."""
    return numpy.ascontiguousarray(data.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def made(rng, shape, dtype, noncontiguous, channels_last=False):
    """Random data of `shape`, optionally as a non-contiguous view, or (4-D) with channels-last
    memory."""
    data = rng.standard_normal(shape).astype(dtype)
    if channels_last and data.ndim == 4:
        return made_channels_last(data)
    return made_noncontiguous(data) if noncontiguous else data


def has_channels_last_memory(a):
    return a.transpose(0, 2, 3, 1).flags.c_contiguous


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
                        chunk_rows=st.sampled_from([1, 20, 1 << 20]),
                        x_channels_last=st.booleans(), gy_channels_last=st.booleans())


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
    monkeypatch.setattr(conv_gemm, "CHUNK_ROWS", cfg["chunk_rows"])
    rng = numpy.random.default_rng(seed)
    dtype = cfg["dtype"]
    x = made(rng, (cfg["n"], cfg["c"], cfg["h"], cfg["w"]), dtype, cfg["noncontiguous"],
             cfg["x_channels_last"])
    w = made(rng, (cfg["oc"], cfg["c"]) + cfg["kernel"], dtype, cfg["noncontiguous"])
    gy = made(rng, (cfg["n"], cfg["oc"]) + conv_output_shape(cfg), dtype, cfg["noncontiguous"],
              cfg["gy_channels_last"])
    args = (cfg["stride"], cfg["padding"])
    y = cpu.conv2d_forward(x, w, *args)
    expected = conv.conv2d_forward.reference(x, w, *args)
    assert y.dtype == dtype and y.shape == expected.shape and has_channels_last_memory(y)
    numpy.testing.assert_allclose(y, expected, **conv_tolerance(dtype, expected))
    gx, gw = cpu.conv2d_backward(gy, x, w, *args, input_grad)
    gx_ref, gw_ref = conv.conv2d_backward.reference(gy, x, w, *args, input_grad)
    numpy.testing.assert_allclose(gw, gw_ref, **conv_tolerance(dtype, gw_ref))
    assert gw.dtype == dtype and (gx is None) == (not input_grad)
    if input_grad:
        assert gx.dtype == dtype and gx.shape == x.shape and has_channels_last_memory(gx)
        numpy.testing.assert_allclose(gx, gx_ref, **conv_tolerance(dtype, gx_ref))


# ----------------------------------------------------------------------------------------------
# Winograd's F(2x2, 3x3) and F(4x4, 3x3): the fast path of 3x3 convs at stride 1
# (kernels/cpu/winograd.py)
# ----------------------------------------------------------------------------------------------
@st.composite
def winograd_configs(draw):
    """3x3 convs at stride 1, with output sizes multiples of 4 (F(4x4)), even only (F(2x2)) and
    odd (im2col's)."""
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    return dict(n=draw(st.integers(1, 5)), c=draw(st.integers(1, 5)), oc=draw(st.integers(1, 5)),
                h=draw(st.integers(max(1, 3 - 2 * padding[0]), 11)),
                w=draw(st.integers(max(1, 3 - 2 * padding[1]), 11)),
                kernel=(3, 3), stride=(1, 1), padding=padding,
                noncontiguous=draw(st.booleans()), channels_last=draw(st.booleans()),
                dtype=draw(st.sampled_from([numpy.float32, numpy.float64])),
                chunk_bytes=draw(st.sampled_from([1, 3000, 1 << 20])))


def tile_size_of(out_size):
    """The F(m x m) the route should take for an output of out_size (and the few channels the
    configs draw), None for im2col's."""
    if out_size[0] % 4 == 0 and out_size[1] % 4 == 0:
        return 4
    return 2 if out_size[0] % 2 == 0 and out_size[1] % 2 == 0 else None


def test_wide_convolutions_take_f2x2_where_f4x4_measured_slower():
    assert conv_winograd.tile_size((8, 8), conv_winograd.WIDE_CHANNELS) == 4
    assert conv_winograd.tile_size((8, 8), conv_winograd.WIDE_CHANNELS + 1) == 2
    assert conv_winograd.tile_size((8, 6), 16) == 2


def test_winograd_chunks_are_a_power_of_two_images():
    """So that 2 x 8 images are chunked as 16 are (data-parallel ranks round as one process);
    a batch smaller than the chunk is one chunk."""
    for shape in [(128, 32, 32, 16), (128, 16, 16, 32), (128, 8, 8, 64), (16, 12, 12, 3),
                  (5, 12, 12, 3)]:
        chunks = conv_winograd.tile_chunks(shape[0], shape[1:3], shape[3], 4)
        B = chunks[0][1]
        assert (B & (B - 1) == 0 or B == shape[0]) and all(b == B for _, b in chunks[:-1])
        assert [n0 for n0, _ in chunks] == list(range(0, shape[0], B))
        assert sum(images for _, images in chunks) == shape[0]


@SETTINGS
@given(cfg=winograd_configs(), seed=st.integers(0, 2**16), input_grad=st.booleans())
def test_winograd_conv_equals_the_reference(monkeypatch, cfg, seed, input_grad):
    monkeypatch.setattr(conv_winograd, "CHUNK_BYTES", cfg["chunk_bytes"])
    positions, input_transform = [], winograd.input_transform
    monkeypatch.setattr(winograd, "input_transform",
                        lambda padded, V, rows: positions.append(V.shape[0])
                        or input_transform(padded, V, rows))
    rng = numpy.random.default_rng(seed)
    dtype, args = cfg["dtype"], (cfg["stride"], cfg["padding"])
    x = made(rng, (cfg["n"], cfg["c"], cfg["h"], cfg["w"]), dtype, cfg["noncontiguous"],
             cfg["channels_last"])
    w = made(rng, (cfg["oc"], cfg["c"], 3, 3), dtype, cfg["noncontiguous"])
    y = cpu.conv2d_forward(x, w, *args)
    expected = conv.conv2d_forward.reference(x, w, *args)
    assert y.dtype == dtype and y.shape == expected.shape and has_channels_last_memory(y)
    numpy.testing.assert_allclose(y, expected, **conv_tolerance(dtype, expected))
    m = tile_size_of(y.shape[2:])                   # the route: F(4x4), F(2x2) or im2col
    if dtype == numpy.float64:
        m = None                                    # float64 keeps im2col's exactness
    assert set(positions) == (set() if m is None else {(m + 2) ** 2})
    gy = made(rng, y.shape, dtype, cfg["noncontiguous"], cfg["channels_last"])
    gx, gw = cpu.conv2d_backward(gy, x, w, *args, input_grad)
    gx_ref, gw_ref = conv.conv2d_backward.reference(gy, x, w, *args, input_grad)
    assert gw.dtype == dtype and gw.shape == w.shape and (gx is None) == (not input_grad)
    numpy.testing.assert_allclose(gw, gw_ref, **conv_tolerance(dtype, gw_ref))
    if input_grad:
        assert gx.dtype == dtype and gx.shape == x.shape and has_channels_last_memory(gx)
        numpy.testing.assert_allclose(gx, gx_ref, **conv_tolerance(dtype, gx_ref))


@SETTINGS
@given(cfg=winograd_configs(), seed=st.integers(0, 2**16))
def test_the_winograd_route_equals_its_readable_twin(cfg, seed):
    """kernels/cpu/conv_winograd.py against tinyres/functional/winograd.py, the algorithm
    written out in NumPy with the same m: forward, input and weight gradients, on every shape
    it takes, from NCHW or channels-last memory."""
    rng = numpy.random.default_rng(seed)
    dtype, padding = cfg["dtype"], cfg["padding"]
    x = made(rng, (cfg["n"], cfg["c"], cfg["h"], cfg["w"]), dtype, cfg["noncontiguous"],
             cfg["channels_last"])
    w = made(rng, (cfg["oc"], cfg["c"], 3, 3), dtype, cfg["noncontiguous"])
    geometry = window_geometry("conv2d", x.shape, (3, 3), 1, padding)
    m = tile_size_of(geometry.out_size)
    if m is None:
        assert not conv_winograd.applies(geometry)
        return
    assert conv_winograd.tile_size(geometry.out_size, max(cfg["c"], cfg["oc"])) == m
    y = conv_winograd.forward(kernel_array(x), w, geometry)
    expected = readable_winograd.winograd_conv2d_forward(x, w, padding, m)
    assert y.dtype == dtype
    numpy.testing.assert_allclose(y, expected, **conv_tolerance(dtype, expected))
    gy = made(rng, y.shape, dtype, cfg["noncontiguous"], cfg["channels_last"])
    gx, gw = conv_winograd.backward(kernel_array(gy), kernel_array(x), w, geometry, True)
    gx_twin, gw_twin = readable_winograd.winograd_conv2d_backward(gy, x, w, padding, m)
    numpy.testing.assert_allclose(gx, gx_twin, **conv_tolerance(dtype, gx_twin))
    numpy.testing.assert_allclose(gw, gw_twin, **conv_tolerance(dtype, gw_twin))


def split_columns(grid, m):
    """(B, H, W, C) -> (B, H, m, W/m + 1, C), column w at [w % m, w // m], the slots past W
    zero: the kernels' layout of a padded chunk (W = m * tiles + 2)."""
    B, H, W, C = grid.shape
    wide = numpy.zeros((B, H, m * ((W - 2) // m + 1), C))
    wide[:, :, :W] = grid
    return numpy.ascontiguousarray(wide.reshape(B, H, -1, m, C).transpose(0, 1, 3, 2, 4))


def tiles(grid, size, step):
    """Every size x size tile of grid (B, H, W, C), step apart: (B*TH*TW, size, size, C)."""
    B, H, W, C = grid.shape
    return numpy.array([grid[b, step * i:step * i + size, step * j:step * j + size]
                        for b in range(B) for i in range((H - size) // step + 1)
                        for j in range((W - size) // step + 1)])


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), m=st.sampled_from([2, 4]), b=st.integers(1, 3),
       th=st.integers(1, 3), tw=st.integers(1, 3), c=st.integers(1, 4))
def test_winograd_transforms_are_the_matrices_and_their_adjoints(seed, m, b, th, tw, c):
    """Each kernel is its matrix product (B^T d B, A^T z A) tile by tile, for m = 2 and 4, and
    each adjoint kernel satisfies <K u, v> = <u, K^T v> (float64: exact up to rounding)."""
    rng = numpy.random.default_rng(seed)
    BT, AT, k = winograd.BT[m], winograd.AT[m], m + 2
    T, H, W = b * th * tw, m * th, m * tw                   # output H x W, input (H+2) x (W+2)
    d = rng.standard_normal((b, H + 2, W + 2, c))
    V = numpy.empty((k * k, T, c))
    winograd.input_transform(split_columns(d, m), V, numpy.empty((k, m, tw + 1, c)))
    expected = numpy.einsum("pi,tijc,qj->pqtc", BT, tiles(d, k, m), BT).reshape(k * k, T, c)
    numpy.testing.assert_allclose(V, expected, rtol=1e-12, atol=1e-12)
    M = rng.standard_normal((k * k, T, c))
    y = numpy.empty((b, H, W, c))                           # channels last
    winograd.output_transform(M, y, numpy.empty((m, k, tw, c)))
    expected = numpy.einsum("ip,tpqc,jq->tijc", AT, M.reshape(k, k, T, c).transpose(2, 0, 1, 3),
                            AT)                             # (T, m, m, c): each tile's outputs
    numpy.testing.assert_allclose(tiles(y, m, m), expected, rtol=1e-12, atol=1e-12)
    # adjoints
    dV = rng.standard_normal((k * k, T, c))
    gpadded = numpy.zeros(split_columns(d, m).shape)
    winograd.input_transform_adjoint(dV, gpadded, numpy.empty((k, k, tw, c)))
    assert numpy.isclose(numpy.vdot(V, dV), numpy.vdot(split_columns(d, m), gpadded),
                         rtol=1e-12)
    gy = rng.standard_normal((b, H, W, c))
    dM = numpy.empty((k * k, T, c))
    winograd.output_transform_adjoint(gy, dM, numpy.empty((k, m, tw, c)))
    assert numpy.isclose(numpy.vdot(y, gy), numpy.vdot(M, dM), rtol=1e-12)


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("m", [2, 4])
def test_winograd_filter_transform_and_its_adjoint(m, dtype):
    """U = G g G^T of every filter, in both layouts the convolutions read, from a strided weight,
    in the weight's dtype; and the backward is its adjoint."""
    rng = numpy.random.default_rng(0)
    k = m + 2
    g = rng.standard_normal((5, 6, 3, 3))[:, ::2].astype(dtype)        # (5, 3, 3, 3), strided
    gU = rng.standard_normal((k * k, 5, 3)).astype(dtype)
    expected = numpy.einsum("pa,ocab,qb->pqoc", winograd.G[m], g.astype(numpy.float64),
                            winograd.G[m]).reshape(k * k, 5, 3)
    tolerance = 1e-6 if dtype == numpy.float32 else 1e-12
    U = winograd.filter_transform(g, m)
    U_T = winograd.filter_transform(g, m, out_channels_first=False)
    assert U.dtype == U_T.dtype == dtype and U_T.shape == (k * k, 3, 5)
    numpy.testing.assert_allclose(U, expected, rtol=tolerance, atol=tolerance)
    numpy.testing.assert_allclose(U_T, expected.transpose(0, 2, 1), rtol=tolerance,
                                  atol=tolerance)
    gweight = winograd.filter_transform_backward(gU)
    assert gweight.dtype == dtype and gweight.shape == g.shape and gweight.flags.c_contiguous
    assert numpy.isclose(numpy.vdot(U.astype(numpy.float64), gU),
                         numpy.vdot(g.astype(numpy.float64), gweight), rtol=tolerance)


@pytest.mark.parametrize("route", ["winograd", "gemm"])
def test_scratch_buffers_kept_between_convolutions_keep_their_zero_border(route):
    """The threads' scratch buffers outlive a convolution (layout.scratch). Two convolutions whose
    padded chunks have one shape but other paddings (H 8 padded by 1, H 10 by 0) must not share
    one: the unpadded one writes where the other's zero border is."""
    rng = numpy.random.default_rng(0)
    stride = 1 if route == "winograd" else 2
    padded_by_1 = rng.standard_normal((4, 3, 8, 8)).astype(numpy.float32)
    unpadded = rng.standard_normal((4, 3, 10, 10)).astype(numpy.float32) + 10.0
    w = rng.standard_normal((5, 3, 3, 3)).astype(numpy.float32)
    before = tinyres.get_num_threads()
    tinyres.set_num_threads(1)                    # every chunk on this thread, one set of buffers
    try:
        for x, padding in ((padded_by_1, 1), (unpadded, 0), (padded_by_1, 1)):
            y = cpu.conv2d_forward(x, w, stride, padding)
            expected = conv.conv2d_forward.reference(x, w, stride, padding)
            numpy.testing.assert_allclose(y, expected, **conv_tolerance(numpy.float32, expected))
    finally:
        tinyres.set_num_threads(before)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), m=st.sampled_from([1, 2, 4]), n=st.integers(1, 3),
       c=st.integers(1, 5), h=st.integers(1, 5), w=st.integers(1, 9),
       padding=st.tuples(st.integers(0, 2), st.integers(0, 2)), channels_last=st.booleans(),
       dtype=st.sampled_from([numpy.float32, numpy.float64]), data=st.data())
def test_padded_chunks_with_columns_split_by_phase(seed, m, n, c, h, w, padding, channels_last,
                                                   dtype, data):
    """layout.to_padded puts pixel (h, w) of image n0 + b at padded[b, PH + h, PW + w], or with
    the columns split by phase at [b, PH + h, (PW + w) % m, (PW + w) // m], the border left zero;
    from_padded takes the inside back out into either layout, the other images untouched."""
    rng = numpy.random.default_rng(seed)
    x = made(rng, (n, c, h, w), dtype, False, channels_last)
    B = data.draw(st.integers(1, n))
    n0 = data.draw(st.integers(0, n - B))
    (PH, PW), Wp = padding, w + 2 * padding[1]
    Wm = -(-Wp // m)                                        # columns a phase
    full = numpy.zeros((B, h + 2 * PH, m * Wm, c), dtype)  # the padded chunk, columns unsplit
    full[:, PH:PH + h, PW:PW + w] = x[n0:n0 + B].transpose(0, 2, 3, 1)
    if m == 1:
        padded, expected = numpy.zeros((B, h + 2 * PH, Wp, c), dtype), full
    else:
        padded = numpy.zeros((B, h + 2 * PH, m, Wm, c), dtype)
        expected = full.reshape(B, h + 2 * PH, Wm, m, c).transpose(0, 1, 3, 2, 4)
    layout.to_padded(x, n0, PH, PW, padded)
    numpy.testing.assert_array_equal(padded, expected)
    out = made(rng, x.shape, dtype, False, channels_last) * 0
    layout.from_padded(padded, n0, PH, PW, out)
    numpy.testing.assert_array_equal(out[n0:n0 + B], x[n0:n0 + B])
    assert not out[:n0].any() and not out[n0 + B:].any()


@pytest.mark.parametrize("dtype, routes", [(numpy.float32, {"winograd"}),
                                           (numpy.float64, {"gemm"})])
def test_float64_convolutions_take_im2col_and_float32_ones_winograd(monkeypatch, dtype, routes):
    """A 3x3 conv at stride 1 with 8x8 outputs (Winograd's F(4x4) shape), forward and backward:
    float32 by Winograd, float64 (the gradient checks' type) by im2col + GEMM, exact to the
    reference's rounding."""
    taken = set()
    for name, module in (("winograd", conv_winograd), ("gemm", conv_gemm)):
        for step in ("forward", "backward"):
            original = getattr(module, step)
            monkeypatch.setattr(module, step, lambda *args, name=name, original=original:
                                taken.add(name) or original(*args))
    rng = numpy.random.default_rng(0)
    x, gy = (rng.standard_normal((2, 16, 8, 8)).astype(dtype) for _ in range(2))
    w = (rng.standard_normal((16, 16, 3, 3)) / 12).astype(dtype)
    y = cpu.conv2d_forward(x, w, 1, 1)
    gx, gw = cpu.conv2d_backward(gy, x, w, 1, 1)
    assert taken == routes
    if dtype == numpy.float64:
        for got, want in zip((y, gx, gw), (conv.conv2d_forward.reference(x, w, 1, 1),)
                             + conv.conv2d_backward.reference(gy, x, w, 1, 1)):
            # im2col's sums in another order: a few units of the last place, where F(4x4)'s
            # transforms are some ten times further off
            assert numpy.abs(got - want).max() <= 2e-15 * numpy.abs(want).max()


@pytest.mark.parametrize("choice", ["fast", "reference"])
@pytest.mark.parametrize("size, padding", [((8, 8), 1), ((6, 4), 1), ((8, 6), 0), ((7, 7), 1)])
def test_float64_numeric_gradient_through_conv_relu_pool_agrees_to_1e_8(kernels, choice, size,
                                                                          padding):
    """What teaching material tells a learner to expect of a float64 gradient check, on both
    paths: central differences with a step of 1e-5 through conv + ReLU + 2x2 max-pool agree
    with the backward to 1e-8 of the gradient's size, at every element. The convs are the
    shapes of Winograd's F(4x4) (8x8 outputs), F(2x2) (6x4, and 6x4 unpadded from 8x6) and
    im2col's (7x7)."""
    dispatch.set_kernels(choice)
    rng = numpy.random.default_rng(sum(size) + padding)
    x = Tensor(rng.standard_normal((2, 3) + size), requires_grad=True)
    w = Tensor(rng.standard_normal((4, 3, 3, 3)) / 3, requires_grad=True)

    def conv_relu_pool(x, w):
        return tinyres.functional.max_pool2d(
            tinyres.functional.relu(tinyres.functional.conv2d(x, w, padding=padding)), 2)
    direction = Tensor(rng.standard_normal(conv_relu_pool(x, w).shape))
    (conv_relu_pool(x, w) * direction).sum().backward()
    size_of_gradient = max(float(numpy.abs(x.grad).max()), float(numpy.abs(w.grad).max()))
    gradcheck(conv_relu_pool, [x, w], eps=1e-5, rtol=1e-8, atol=1e-8 * size_of_gradient)


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
    x = tinyres.tensor(numpy.ones((8, 4, 16, 16), numpy.float32), requires_grad=True)
    w = tinyres.tensor(numpy.ones((4, 4, 3, 3), numpy.float32), requires_grad=True)
    tinyres.functional.conv2d(x, w, padding=1).sum().backward()
    assert calls == [(8, True), (8, True)]


def test_conv_kernels_raise_as_the_reference():
    x = numpy.zeros((1, 1, 2, 2), numpy.float32)
    with pytest.raises(ValueError, match="im2col: kernel 3x3 is larger than the padded input 2x2"):
        cpu.im2col(x, 3)
    with pytest.raises(TypeError, match="float32 or float64"):
        cpu.im2col(x.astype(numpy.int64), 1)


# ----------------------------------------------------------------------------------------------
# batch norm
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
                x_channels_last=draw(st.booleans()), gy_channels_last=draw(st.booleans()),
                dtype=draw(st.sampled_from([numpy.float32, numpy.float64])),
                offset=draw(st.sampled_from([0.0, 50.0])),
                rows_per_block=draw(st.sampled_from([1, 5, 4096])))


def bn_inputs(cfg, seed):
    rng = numpy.random.default_rng(seed)
    dtype, shape, C = cfg["dtype"], cfg["shape"], cfg["shape"][1]
    x = made(rng, shape, dtype, cfg["noncontiguous"], cfg["x_channels_last"])
    x += dtype(cfg["offset"])                                        # in place: keeps the layout
    gy = made(rng, shape, dtype, cfg["noncontiguous"], cfg["gy_channels_last"])
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
@given(cfg=bn_configs(), seed=st.integers(0, 2**16))
def test_batch_norm_kernels_equal_the_reference(monkeypatch, cfg, seed):
    monkeypatch.setattr(cpu.batchnorm, "ROWS_PER_BLOCK", cfg["rows_per_block"])
    x, gy, weight, bias = bn_inputs(cfg, seed)
    dtype = cfg["dtype"]
    fast = cpu.batch_norm_train_forward(x, weight, bias, 1e-5)
    reference = bn.batch_norm_train_forward.reference(x, weight, bias, 1e-5)
    assert_all_close(fast, reference, dtype)
    if x.ndim == 4 and has_channels_last_memory(x):         # the next layer gets what it wants
        assert has_channels_last_memory(fast[0])
    _, mean, _, inv_std = reference
    fast = cpu.batch_norm_train_backward(gy, x, mean, inv_std, weight)
    assert_all_close(fast, bn.batch_norm_train_backward.reference(gy, x, mean, inv_std, weight),
                     dtype)


@SETTINGS
@given(cfg=bn_configs(), seed=st.integers(0, 2**16))
def test_batch_norm_eval_kernel_equals_the_reference(monkeypatch, cfg, seed):
    monkeypatch.setattr(cpu.batchnorm, "ROWS_PER_BLOCK", cfg["rows_per_block"])
    x, _, weight, bias = bn_inputs(cfg, seed)
    rng = numpy.random.default_rng(seed)
    mean = rng.standard_normal(x.shape[1]).astype(cfg["dtype"])
    scale = rng.uniform(0.5, 2.0, x.shape[1]).astype(cfg["dtype"])
    fast = cpu.batch_norm_eval_forward(x, mean, scale, bias)
    assert_all_close([fast], [bn.batch_norm_eval_forward.reference(x, mean, scale, bias)],
                     cfg["dtype"])


@pytest.mark.parametrize("channels_last", [False, True])
def test_batch_norm_statistics_survive_a_large_mean(channels_last):
    """The float64 sums about a shift lose nothing when |mean| >> std (float32 data)."""
    rng = numpy.random.default_rng(0)
    x = (1000.0 + rng.standard_normal((64, 3, 8, 8))).astype(numpy.float32)
    if channels_last:
        x = made_channels_last(x)
    _, mean, var, _ = cpu.batch_norm_train_forward(x, None, None, 1e-5)
    exact = x.astype(numpy.float64)
    numpy.testing.assert_allclose(mean, exact.mean(axis=(0, 2, 3)), rtol=1e-7)
    numpy.testing.assert_allclose(var, exact.var(axis=(0, 2, 3)), rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# ReLU
# ----------------------------------------------------------------------------------------------
@SETTINGS
@given(shape=st.lists(st.integers(1, 7), min_size=1, max_size=4), seed=st.integers(0, 2**16),
       layout=st.sampled_from(["C", "swapped", "channels last", "mixed"]),
       dtype=st.sampled_from([numpy.float32, numpy.float64]), pieces=st.sampled_from([3, 1 << 18]))
def test_relu_kernels_equal_the_reference(monkeypatch, shape, seed, layout, dtype, pieces):
    """Bit for bit, NaN and infinities included (a NaN stays NaN; gy * 0 keeps NaN * 0 = NaN),
    in every memory layout; the output keeps its input's."""
    monkeypatch.setattr(cpu.elementwise, "PIECE", pieces)
    rng = numpy.random.default_rng(seed)
    x, gy = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    x.flat[0], gy.flat[-1] = numpy.nan, numpy.inf
    if layout == "swapped":
        x, gy = (made_noncontiguous(a) for a in (x, gy))
    elif layout in ("channels last", "mixed") and x.ndim == 4:
        x = made_channels_last(x)
        gy = made_channels_last(gy) if layout == "channels last" else gy
    y = cpu.relu_forward(x)
    assert y.dtype == dtype and y.shape == x.shape
    if x.ndim == 4 and has_channels_last_memory(x):
        assert has_channels_last_memory(y)
    numpy.testing.assert_array_equal(y, activation.relu_forward.reference(x))
    with numpy.errstate(invalid="ignore"):                  # inf * 0
        gx = cpu.relu_backward(gy, y)
        numpy.testing.assert_array_equal(gx, activation.relu_backward.reference(gy, y))
    if y.ndim == 4 and has_channels_last_memory(y):          # the activations' layout wins
        assert has_channels_last_memory(gx)


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
    from tinyres.course.checks import REGISTRY  # importing it registers every family's cases
    dispatch.set_kernels(choice)
    names = [name for name in REGISTRY if family in name]
    assert names
    for name in names:
        for _, fn, inputs in REGISTRY[name](numpy.random.default_rng(0)):
            gradcheck(fn, inputs)


@settings(max_examples=10, deadline=None)
@given(cfg=kernel_conv_configs(), seed=st.integers(0, 2**16),
       choice=st.sampled_from(["fast", "reference"]))
def test_conv_batch_norm_relu_gradcheck(cfg, seed, choice):
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
            return tinyres.functional.relu(
                tinyres.functional.batch_norm(y, None, None, gamma, beta, True))
        gradcheck(conv_bn_relu, [x, w, gamma, beta])
    finally:
        dispatch.set_kernels(previous)
