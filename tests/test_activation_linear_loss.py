"""relu, linear, flatten, log_softmax and cross_entropy: gradients on hypothesis-drawn shapes,
numerical stability, errors, and (where installed) agreement with PyTorch."""
import numpy
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tinyres import Tensor, gradcheck
from tinyres.functional.activation import relu
from tinyres.functional.linear import linear
from tinyres.ops import flatten
from tinyres.functional.loss import cross_entropy, log_softmax

from helpers import host, leaf

SETTINGS = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)


# ----------------------------------------------------------------------------------------------
# relu
# ----------------------------------------------------------------------------------------------
@SETTINGS
@given(shape=shapes, noncontiguous=st.booleans(), seed=st.integers(0, 2**16))
def test_relu_gradcheck(backend, shape, noncontiguous, seed):
    data = numpy.random.default_rng(seed).standard_normal(shape)
    data = numpy.sign(data) * (numpy.abs(data) + 1e-3)      # no value at the kink
    gradcheck(relu, [leaf(backend, data, noncontiguous)])


def test_relu_values_and_the_gradient_at_zero(backend):
    x = leaf(backend, numpy.array([-2.0, 0.0, 3.0], dtype=numpy.float32))
    y = relu(x)
    assert y.dtype == numpy.float32
    numpy.testing.assert_array_equal(host(y), [0.0, 0.0, 3.0])
    y.backward(backend.asarray(numpy.array([5.0, 6.0, 7.0], dtype=numpy.float32)))
    numpy.testing.assert_array_equal(host(x.grad), [0.0, 0.0, 7.0])   # 0 at the kink, as torch


# ----------------------------------------------------------------------------------------------
# linear and flatten
# ----------------------------------------------------------------------------------------------
@SETTINGS
@given(n=st.integers(1, 4), features=st.integers(1, 5), out=st.integers(1, 4),
       bias=st.booleans(), noncontiguous=st.booleans(), seed=st.integers(0, 2**16))
def test_linear_gradcheck(backend, n, features, out, bias, noncontiguous, seed):
    rng = numpy.random.default_rng(seed)
    x = leaf(backend, rng.standard_normal((n, features)), noncontiguous)
    w = leaf(backend, rng.standard_normal((out, features)), noncontiguous)
    if bias:
        gradcheck(linear, [x, w, leaf(backend, rng.standard_normal(out))])
    else:
        gradcheck(linear, [x, w])


def test_linear_is_x_times_w_transposed_plus_b(backend, rng):
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 4)), rng.standard_normal(5)
    y = linear(Tensor(backend.asarray(x)), Tensor(backend.asarray(w)), Tensor(backend.asarray(b)))
    assert y.shape == (2, 3, 5)
    numpy.testing.assert_allclose(host(y), x @ w.T + b, rtol=1e-12)
    gradcheck(linear, [leaf(backend, x), leaf(backend, w), leaf(backend, b)])


@SETTINGS
@given(shape=st.lists(st.integers(1, 3), min_size=2, max_size=4).map(tuple),
       start=st.integers(0, 3), noncontiguous=st.booleans())
def test_flatten(backend, shape, start, noncontiguous):
    start = start % len(shape)
    data = numpy.random.default_rng(0).standard_normal(shape)
    y = flatten(leaf(backend, data, noncontiguous), start)
    expected = data.reshape(shape[:start] + (-1,))
    numpy.testing.assert_array_equal(host(y), expected)
    gradcheck(lambda x: flatten(x, start), [leaf(backend, data, noncontiguous)])


def test_linear_and_flatten_errors(backend):
    x = Tensor(backend.zeros((8, 32)))
    with pytest.raises(ValueError, match=r"Linear fc: expected input with 64 features \(N, 64\), "
                       r"got shape \(8, 32\)"):
        linear(x, Tensor(backend.zeros((10, 64))), name="Linear fc")
    with pytest.raises(ValueError, match=r"linear: weight must have shape \(out_features, "
                       r"in_features\), got shape \(32,\)"):
        linear(x, Tensor(backend.zeros(32)))
    with pytest.raises(ValueError, match=r"Linear fc: bias must have shape \(10,\)"):
        linear(x, Tensor(backend.zeros((10, 32))), Tensor(backend.zeros(3)), name="Linear fc")
    with pytest.raises(TypeError, match="floating point input, got dtype int64"):
        linear(Tensor(backend.zeros((8, 32), dtype="int64")), Tensor(backend.zeros((10, 32))))
    with pytest.raises(IndexError, match=r"dim 2 is out of range for a tensor with 2 dimensions"):
        flatten(x, 2)


@pytest.mark.torch
def test_linear_matches_pytorch(backend, rng):
    torch = pytest.importorskip("torch")
    x, w, b = (rng.standard_normal(s).astype(numpy.float32) for s in ((6, 7), (3, 7), (3,)))
    gy = rng.standard_normal((6, 3)).astype(numpy.float32)
    X, W, B = leaf(backend, x), leaf(backend, w), leaf(backend, b)
    linear(X, W, B).backward(backend.asarray(gy))
    tX, tW, tB = (torch.tensor(v, requires_grad=True) for v in (x, w, b))
    torch.nn.functional.linear(tX, tW, tB).backward(torch.tensor(gy))
    for mine, theirs in ((X, tX), (W, tW), (B, tB)):
        numpy.testing.assert_allclose(host(mine.grad), theirs.grad.numpy(), rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# log_softmax and cross_entropy
# ----------------------------------------------------------------------------------------------
@SETTINGS
@given(shape=shapes, axis=st.integers(-4, 3), noncontiguous=st.booleans(),
       seed=st.integers(0, 2**16))
def test_log_softmax_gradcheck(backend, shape, axis, noncontiguous, seed):
    axis = axis % len(shape)
    data = 3 * numpy.random.default_rng(seed).standard_normal(shape)
    y = log_softmax(leaf(backend, data, noncontiguous), dim=axis)
    numpy.testing.assert_allclose(numpy.exp(host(y)).sum(axis=axis), 1.0, rtol=1e-12)
    gradcheck(lambda x: log_softmax(x, dim=axis), [leaf(backend, data, noncontiguous)])


@SETTINGS
@given(n=st.integers(1, 5), classes=st.integers(1, 6), noncontiguous=st.booleans(),
       seed=st.integers(0, 2**16))
def test_cross_entropy_gradcheck(backend, n, classes, noncontiguous, seed):
    rng = numpy.random.default_rng(seed)
    logits = leaf(backend, 3 * rng.standard_normal((n, classes)), noncontiguous)
    target = Tensor(backend.asarray(rng.integers(0, classes, size=n)))
    gradcheck(lambda z: cross_entropy(z, target), [logits])


def test_cross_entropy_is_the_mean_negative_log_probability(backend, rng):
    z = rng.standard_normal((5, 4))
    t = numpy.array([0, 3, 1, 1, 2])
    loss = cross_entropy(Tensor(backend.asarray(z)), t)
    p = numpy.exp(z) / numpy.exp(z).sum(axis=1, keepdims=True)
    assert loss.shape == () and loss.item() == pytest.approx(-numpy.log(p[range(5), t]).mean())


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_stable_for_logits_of_1e4(backend, dtype):
    """exp(1e4) overflows; after subtracting the row's max the largest exponent is exp(0)."""
    z = leaf(backend, numpy.array([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4]], dtype=dtype))
    y = log_softmax(z)
    log2 = numpy.log(2.0)
    numpy.testing.assert_allclose(host(y), [[0.0, -1e4, -2e4], [-1e4 - log2, -log2, -log2]],
                                  rtol=1e-6)
    loss = cross_entropy(z, numpy.array([1, 2]))       # -log p: 1e4 and log 2, averaged
    assert numpy.isfinite(loss.item())
    assert loss.item() == pytest.approx((1e4 + numpy.log(2.0)) / 2, rel=1e-6)
    loss.backward()
    grad = host(z.grad)
    assert numpy.isfinite(grad).all()
    numpy.testing.assert_allclose(grad, [[0.5, -0.5, 0.0], [0.0, 0.25, -0.25]], atol=1e-6)


@pytest.mark.parametrize("form", ["tensor", "device array", "host array", "list", "uint8"])
def test_cross_entropy_target_forms(backend, form):
    z = Tensor(backend.asarray(numpy.array([[1.0, 2.0], [3.0, 0.5]])))
    t = numpy.array([1, 0])
    target = {"tensor": Tensor(t), "device array": backend.asarray(t), "host array": t,
              "list": [1, 0], "uint8": t.astype(numpy.uint8)}[form]
    assert cross_entropy(z, target).item() == pytest.approx(cross_entropy(z, t).item())


def test_cross_entropy_and_log_softmax_errors(backend):
    z = Tensor(backend.zeros((4, 10)))
    with pytest.raises(TypeError, match="cross_entropy: target must hold integer class indices, "
                       "got dtype float32"):
        cross_entropy(z, numpy.zeros(4, dtype=numpy.float32))
    with pytest.raises(ValueError, match="cross_entropy: target holds class indices from -1 to "
                       "10, expected 0 to 9 for logits with 10 classes"):
        cross_entropy(z, numpy.array([-1, 0, 10, 3]))
    with pytest.raises(ValueError, match=r"cross_entropy: expected target of shape \(4,\), one "
                       r"class index per row of logits \(4, 10\), got shape \(3,\)"):
        cross_entropy(z, numpy.array([1, 2, 3]))
    with pytest.raises(ValueError, match=r"cross_entropy: expected logits of shape \(N, K\), got "
                       r"shape \(4, 10, 1\)"):
        cross_entropy(Tensor(backend.zeros((4, 10, 1))), numpy.zeros(4, dtype=int))
    with pytest.raises(TypeError, match="cross_entropy: expected floating point logits"):
        cross_entropy(Tensor(backend.zeros((4, 10), dtype="int32")), numpy.zeros(4, dtype=int))
    with pytest.raises(IndexError, match="log_softmax: dim 2 is out of range"):
        log_softmax(z, dim=2)


@pytest.mark.torch
def test_log_softmax_and_cross_entropy_match_pytorch(backend, rng):
    torch = pytest.importorskip("torch")
    z = (5 * rng.standard_normal((8, 10))).astype(numpy.float32)
    t = rng.integers(0, 10, size=8)
    gy = rng.standard_normal((8, 10)).astype(numpy.float32)
    mine, theirs = leaf(backend, z), torch.tensor(z, requires_grad=True)
    y, ty = log_softmax(mine, dim=1), torch.nn.functional.log_softmax(theirs, dim=1)
    numpy.testing.assert_allclose(host(y), ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    y.backward(backend.asarray(gy))
    ty.backward(torch.tensor(gy))
    numpy.testing.assert_allclose(host(mine.grad), theirs.grad.numpy(), rtol=1e-5, atol=1e-5)

    mine, theirs = leaf(backend, z), torch.tensor(z, requires_grad=True)
    loss, t_loss = cross_entropy(mine, t), torch.nn.functional.cross_entropy(theirs,
                                                                             torch.tensor(t))
    assert loss.dtype == numpy.float32
    assert loss.item() == pytest.approx(t_loss.item(), rel=1e-5)
    loss.backward()
    t_loss.backward()
    numpy.testing.assert_allclose(host(mine.grad), theirs.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["relu", "linear / flatten", "log_softmax / cross_entropy"])
def test_registered_cases_pass(backend, name):
    """The cases `tinyres gradcheck` runs for these ops."""
    from tinyres.course.checks import REGISTRY  # importing it registers every family's cases
    for _, fn, inputs in REGISTRY[name](numpy.random.default_rng(0)):
        gradcheck(fn, inputs)
