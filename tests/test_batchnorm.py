"""batch_norm: gradients in training and eval mode, the running-average rule, the sum trap,
float32 accuracy, errors, and (where installed) agreement with PyTorch."""
import numpy
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from tinyres import Tensor, gradcheck
from tinyres.backend import to_device
from tinyres.functional.batchnorm import (batch_norm, batch_norm_train_backward,
                                          batch_norm_train_forward)
from tinyres.functional.batchnorm_graph import batch_norm_graph

from helpers import host, leaf

SETTINGS = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def bn_shapes(draw, min_batch=2):
    """(N, C, H, W) or (N, C) with a few values per channel."""
    n, c = draw(st.integers(min_batch, 4)), draw(st.integers(1, 4))
    if draw(st.booleans()):
        return (n, c, draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    return (n, c)


def channel_axes(shape):
    return (0,) + tuple(range(2, len(shape)))


# ----------------------------------------------------------------------------------------------
# gradients
# ----------------------------------------------------------------------------------------------
@SETTINGS
@given(shape=bn_shapes(), affine=st.booleans(), noncontiguous=st.booleans(),
       seed=st.integers(0, 2**16))
def test_training_mode_gradcheck(backend, shape, affine, noncontiguous, seed):
    rng = numpy.random.default_rng(seed)
    data = rng.standard_normal(shape)
    # a channel whose few values nearly coincide has a huge 1/std: finite differences then
    # measure curvature, not the gradient. Such draws say nothing about the backward.
    assume(data.std(axis=channel_axes(shape)).min() > 0.05)
    x = leaf(backend, data, noncontiguous)
    c = shape[1]
    params = [leaf(backend, rng.standard_normal(c)), leaf(backend, rng.standard_normal(c))]
    mean, var = Tensor(numpy.zeros(c)), Tensor(numpy.ones(c))
    if affine:
        gradcheck(lambda x, w, b: batch_norm(x, mean, var, w, b, training=True), [x] + params)
    else:
        gradcheck(lambda x: batch_norm(x, None, None, None, None, training=True), [x])


@SETTINGS
@given(shape=bn_shapes(min_batch=1), noncontiguous=st.booleans(), seed=st.integers(0, 2**16))
def test_eval_mode_gradcheck(backend, shape, noncontiguous, seed):
    rng = numpy.random.default_rng(seed)
    c = shape[1]
    x = leaf(backend, rng.standard_normal(shape), noncontiguous)
    w, b = leaf(backend, rng.standard_normal(c)), leaf(backend, rng.standard_normal(c))
    mean, var = Tensor(rng.standard_normal(c)), Tensor(rng.uniform(0.5, 2.0, c))
    gradcheck(lambda x, w, b: batch_norm(x, mean, var, w, b, training=False), [x, w, b])


def test_the_sum_trap(backend, rng):
    """d/dx sum(BN(x)) is zero: each channel of x_hat sums to 0 whatever x is, so sum(BN(x)) =
    m * sum(bias). A gradient check that backpropagates all ones would pass any dx that sums to
    zero per channel; gradcheck projects on a random direction instead."""
    x = leaf(backend, rng.standard_normal((4, 3, 5, 5)))
    w, b = leaf(backend, rng.standard_normal(3)), leaf(backend, rng.standard_normal(3))
    batch_norm(x, None, None, w, b, training=True).sum().backward()
    numpy.testing.assert_allclose(host(x.grad), 0.0, atol=1e-12)
    numpy.testing.assert_allclose(host(w.grad), 0.0, atol=1e-12)     # sum of x_hat is 0
    numpy.testing.assert_allclose(host(b.grad), 100.0)                # m = 4*5*5 per channel
    x.grad = None
    projection = backend.asarray(rng.standard_normal((4, 3, 5, 5)))
    (batch_norm(x, None, None, w, b, training=True) * Tensor(projection)).sum().backward()
    assert numpy.abs(host(x.grad)).max() > 1e-2


@pytest.mark.parametrize("shape", [(3, 2, 4, 2), (5, 3)])
def test_training_backward_is_the_graph_of_primitive_ops(backend, rng, shape):
    """The closed-form backward equals autograd's chain rule through batch_norm_graph (mean,
    -, *, /, ** ops), for x, weight and bias, and the two forwards agree."""
    c = shape[1]
    data, w, b = rng.standard_normal(shape), rng.standard_normal(c), rng.standard_normal(c)
    g = backend.asarray(rng.standard_normal(shape))
    grads = []
    for norm in (lambda x, w, b: batch_norm(x, None, None, w, b, training=True),
                 batch_norm_graph):
        leaves = [leaf(backend, data), leaf(backend, w), leaf(backend, b)]
        y = norm(*leaves)
        y.backward(g)
        grads.append([host(y.data)] + [host(v.grad) for v in leaves])
    for closed, graph in zip(*grads):
        numpy.testing.assert_allclose(closed, graph, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# running statistics and the two modes
# ----------------------------------------------------------------------------------------------
def test_running_stats_follow_pytorchs_rule(backend, rng):
    data = rng.standard_normal((4, 3, 2, 5)) * 2.0 + 1.0
    mean0, var0 = rng.standard_normal(3), rng.uniform(0.5, 2.0, 3)
    running_mean, running_var = backend.asarray(mean0.copy()), backend.asarray(var0.copy())
    batch_norm(Tensor(backend.asarray(data)), running_mean, running_var, None, None, True,
               momentum=0.25)
    m = 4 * 2 * 5
    batch_mean = data.mean(axis=(0, 2, 3))
    unbiased = ((data - batch_mean[None, :, None, None]) ** 2).sum(axis=(0, 2, 3)) / (m - 1)
    numpy.testing.assert_allclose(host(running_mean), 0.75 * mean0 + 0.25 * batch_mean)
    numpy.testing.assert_allclose(host(running_var), 0.75 * var0 + 0.25 * unbiased)


def test_running_stats_as_tensors_are_updated_in_place(backend, rng):
    """A layer's buffers are Tensors: their arrays are updated, not replaced (so a state dict
    holding them sees the update), and keep their dtype."""
    x = Tensor(backend.asarray(rng.standard_normal((5, 2)).astype(numpy.float32)))
    mean, var = Tensor(backend.zeros(2, dtype="float32")), Tensor(backend.ones(2, dtype="float32"))
    arrays = mean.data, var.data
    batch_norm(x, mean, var, None, None, training=True)
    assert mean.data is arrays[0] and var.data is arrays[1]
    assert mean.dtype == numpy.float32 and var.dtype == numpy.float32
    assert numpy.abs(host(mean)).max() > 0


def test_eval_mode_uses_the_running_stats(backend, rng):
    data = rng.standard_normal((2, 3, 4, 4))
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    mean, var = rng.standard_normal(3), rng.uniform(0.5, 2.0, 3)
    before = mean.copy(), var.copy()
    y = batch_norm(Tensor(backend.asarray(data)), Tensor(mean), Tensor(var),
                   Tensor(backend.asarray(w)), Tensor(backend.asarray(b)), training=False)
    per = lambda v: v[None, :, None, None]      # noqa: E731
    expected = (data - per(mean)) / numpy.sqrt(per(var) + 1e-5) * per(w) + per(b)
    numpy.testing.assert_allclose(host(y), expected, rtol=1e-12)
    numpy.testing.assert_array_equal(mean, before[0])        # eval never updates the averages
    numpy.testing.assert_array_equal(var, before[1])


def test_training_output_is_normalised_and_keeps_dtype(backend, rng):
    x = Tensor(backend.asarray((rng.standard_normal((8, 4, 3, 3)) * 5 + 3).astype(numpy.float32)),
               requires_grad=True)
    y = batch_norm(x, None, None, None, None, training=True)
    assert y.dtype == numpy.float32 and y.device == x.device
    numpy.testing.assert_allclose(host(y).mean(axis=(0, 2, 3)), 0.0, atol=1e-6)
    numpy.testing.assert_allclose(host(y).var(axis=(0, 2, 3)), 1.0, rtol=1e-4)
    y.backward(backend.asarray(rng.standard_normal((8, 4, 3, 3)).astype(numpy.float32)))
    assert x.grad.dtype == numpy.float32


def test_float32_statistics_are_accurate_with_a_large_mean(rng):
    """Two-pass variance: |mean| >> std costs no accuracy (E[x^2] - E[x]^2 would lose it all)."""
    data = (100.0 + rng.standard_normal((32, 8, 16, 16))).astype(numpy.float32)
    y, mean, var, inv_std = batch_norm_train_forward(data, None, None, 1e-5)
    exact = data.astype(numpy.float64)
    numpy.testing.assert_allclose(mean, exact.mean(axis=(0, 2, 3)), rtol=1e-6)
    numpy.testing.assert_allclose(var, exact.var(axis=(0, 2, 3)), rtol=1e-4)
    expected = (exact - exact.mean(axis=(0, 2, 3), keepdims=True)) / numpy.sqrt(
        exact.var(axis=(0, 2, 3), keepdims=True) + 1e-5)
    numpy.testing.assert_allclose(y, expected, atol=1e-4)


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
@pytest.mark.parametrize("shape", [(4, 3, 5, 2), (6, 5)])
def test_array_twins_contract(rng, shape, dtype):
    """What a fast twin must return: the routed call (a kernel, once one exists) matches the
    readable reference; var is biased; weight None gives gweight None."""
    x = rng.standard_normal(shape).astype(dtype)
    w, b = rng.standard_normal(shape[1]).astype(dtype), rng.standard_normal(shape[1]).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == numpy.float32 else dict(rtol=1e-10, atol=1e-12)
    for weight in (w, None):
        fast = batch_norm_train_forward(x, weight, b, 1e-5)
        reference = batch_norm_train_forward.reference(x, weight, b, 1e-5)
        for got, want in zip(fast, reference):
            assert got.dtype == dtype
            numpy.testing.assert_allclose(got, want, **tol)
        numpy.testing.assert_allclose(reference[2], x.var(axis=channel_axes(shape)), **tol)
        _, mean, _, inv_std = reference
        fast = batch_norm_train_backward(gy, x, mean, inv_std, weight)
        reference = batch_norm_train_backward.reference(gy, x, mean, inv_std, weight)
        assert (fast[1] is None) == (reference[1] is None) == (weight is None)
        for got, want in zip(fast, reference):
            if want is not None:
                numpy.testing.assert_allclose(got, want, **tol)


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------
def test_errors_name_the_layer_and_the_shapes(backend):
    x4 = Tensor(backend.zeros((8, 3, 32, 32)))
    w16 = Tensor(backend.ones(16))
    with pytest.raises(ValueError, match=r"BatchNorm2d layer1\.0\.bn1: expected input with 16 "
                       r"channels \(N, 16, H, W\), got shape \(8, 3, 32, 32\)"):
        batch_norm(x4, None, None, w16, None, True, name="BatchNorm2d layer1.0.bn1")
    with pytest.raises(ValueError, match=r"batch_norm: expected input with 16 channels \(N, 16\)"
                       r", got shape \(8, 3\)"):
        batch_norm(Tensor(backend.zeros((8, 3))), backend.zeros(16), backend.ones(16), None,
                   None, False)
    with pytest.raises(ValueError, match=r"expected a 2-D \(N, C\) or 4-D \(N, C, H, W\) input, "
                       r"got shape \(2, 3, 4\)"):
        batch_norm(Tensor(backend.zeros((2, 3, 4))), None, None, None, None, True)
    with pytest.raises(ValueError, match=r"bn1: expected more than 1 value per channel when "
                       r"training, got input shape \(1, 16, 1, 1\)"):
        batch_norm(Tensor(backend.zeros((1, 16, 1, 1))), None, None, w16, None, True, name="bn1")
    with pytest.raises(TypeError, match="expected a floating point input, got dtype int64"):
        batch_norm(Tensor(backend.zeros((2, 3), dtype="int64")), None, None, None, None, True)
    with pytest.raises(ValueError, match="eval mode .* running_mean and running_var, but they "
                       "are None"):
        batch_norm(Tensor(backend.zeros((2, 3))), None, None, None, None, False)
    with pytest.raises(ValueError, match=r"weight must hold one value per channel, shape \(C,\), "
                       r"got shape \(3, 1\)"):
        batch_norm(Tensor(backend.zeros((2, 3))), None, None, Tensor(backend.ones((3, 1))),
                   None, True)


def test_running_stats_on_another_device_is_an_error():
    x = Tensor(to_device(numpy.zeros((2, 3)), "leakproof"))
    with pytest.raises(RuntimeError, match="bn: running_mean is on 'cpu' but the input is on "
                       "'leakproof'"):
        batch_norm(x, numpy.zeros(3), numpy.ones(3), None, None, True, name="bn")


# ----------------------------------------------------------------------------------------------
# PyTorch, where installed
# ----------------------------------------------------------------------------------------------
@pytest.mark.torch
@pytest.mark.parametrize("shape", [(8, 4, 5, 3), (16, 6)])
@pytest.mark.parametrize("affine", [True, False])
def test_matches_pytorch_train_then_eval(backend, rng, shape, affine):
    torch = pytest.importorskip("torch")
    c = shape[1]
    x = (rng.standard_normal(shape) * 3 + 2).astype(numpy.float32)
    gy = rng.standard_normal(shape).astype(numpy.float32)
    w, b = rng.standard_normal(c).astype(numpy.float32), rng.standard_normal(c).astype(
        numpy.float32)
    mean, var = Tensor(backend.zeros(c, dtype="float32")), Tensor(backend.ones(c, dtype="float32"))
    t_mean, t_var = torch.zeros(c), torch.ones(c)
    tol = dict(rtol=1e-4, atol=1e-5)
    for training in (True, True, False):          # two updates of the running stats, then eval
        X = leaf(backend, x)
        params = [leaf(backend, w), leaf(backend, b)] if affine else [None, None]
        y = batch_norm(X, mean, var, *params, training)
        y.backward(backend.asarray(gy))
        tX = torch.tensor(x, requires_grad=True)
        t_params = [torch.tensor(v, requires_grad=True) for v in (w, b)] if affine else [None] * 2
        ty = torch.nn.functional.batch_norm(tX, t_mean, t_var, *t_params, training=training,
                                            momentum=0.1, eps=1e-5)
        ty.backward(torch.tensor(gy))
        numpy.testing.assert_allclose(host(y), ty.detach().numpy(), **tol)
        numpy.testing.assert_allclose(host(X.grad), tX.grad.numpy(), **tol)
        numpy.testing.assert_allclose(host(mean), t_mean.numpy(), **tol)
        numpy.testing.assert_allclose(host(var), t_var.numpy(), **tol)
        if affine:
            for p, tp in zip(params, t_params):
                numpy.testing.assert_allclose(host(p.grad), tp.grad.numpy(), rtol=1e-4, atol=1e-4)
        x = x * 0.5 - 1.0                            # another batch


@pytest.mark.parametrize("name", ["batch_norm (training)", "batch_norm + ReLU (training)",
                                  "batch_norm (eval)"])
def test_registered_cases_pass(backend, name):
    """The cases `tinyres gradcheck` runs for batch norm."""
    from tinyres.course.checks import REGISTRY  # importing it registers every family's cases
    for _, fn, inputs in REGISTRY[name](numpy.random.default_rng(0)):
        gradcheck(fn, inputs)
