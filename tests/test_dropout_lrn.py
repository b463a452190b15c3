"""dropout and local_response_norm: gradients, the mask's seeding and scaling, a loop reference
for LRN's channel window, errors, and (where installed) agreement with PyTorch."""
import numpy
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tinyres import Tensor, gradcheck
from tinyres.functional.dropout import dropout
from tinyres.functional.lrn import local_response_norm

from helpers import host, leaf

SETTINGS = settings(max_examples=20, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


# ----------------------------------------------------------------------------------------------
# dropout
# ----------------------------------------------------------------------------------------------
@SETTINGS
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple),
       p=st.sampled_from([0.1, 0.5, 0.9]), noncontiguous=st.booleans(), seed=st.integers(0, 99))
def test_dropout_gradcheck(backend, shape, p, noncontiguous, seed):
    """The same int seed on every call draws the same mask, so gradcheck's repeated calls see
    one deterministic function."""
    data = numpy.random.default_rng(seed).standard_normal(shape)
    gradcheck(lambda x: dropout(x, p, rng=seed), [leaf(backend, data, noncontiguous)])


def test_dropout_scales_kept_units_and_backward_uses_the_same_mask(backend):
    x = leaf(backend, numpy.ones((200, 50), dtype=numpy.float32))
    y = dropout(x, p=0.2, rng=numpy.random.default_rng(0))
    assert y.dtype == numpy.float32 and y.device == x.device
    values = host(y)
    kept = values != 0
    numpy.testing.assert_allclose(values[kept], 1.0 / 0.8, rtol=1e-6)     # inverted dropout
    assert kept.mean() == pytest.approx(0.8, abs=0.02)
    assert values.mean() == pytest.approx(1.0, abs=0.03)                   # expectation kept
    y.backward(backend.asarray(numpy.full((200, 50), 3.0, dtype=numpy.float32)))
    numpy.testing.assert_allclose(host(x.grad), numpy.where(kept, 3.0 / 0.8, 0.0), rtol=1e-6)


def test_dropout_seeding(backend):
    x = Tensor(backend.asarray(numpy.ones((8, 16))))
    same = [host(dropout(x, 0.5, rng=3)) for _ in range(2)]
    numpy.testing.assert_array_equal(*same)
    generator = numpy.random.default_rng(3)
    first, second = host(dropout(x, 0.5, rng=generator)), host(dropout(x, 0.5, rng=generator))
    assert (first != second).any()                                 # a generator advances
    assert (host(dropout(x, 0.5)) != host(dropout(x, 0.5))).any()  # unseeded: fresh masks


def test_dropout_is_the_identity_in_eval_or_with_p_zero(backend):
    x = leaf(backend, numpy.arange(6.0).reshape(2, 3))
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x


def test_dropout_errors(backend):
    x = Tensor(backend.zeros((2, 3)))
    for p in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"dropout: p .* must be in \[0, 1\), got "
                           + str(p).replace(".", r"\.")):
            dropout(x, p)
    with pytest.raises(TypeError, match="dropout: rng must be None, an int seed or a generator"):
        dropout(x, 0.5, rng="seed")
    with pytest.raises(TypeError, match="dropout: expected a floating point input, got dtype"):
        dropout(Tensor(backend.zeros((2, 3), dtype="int64")), 0.5)


# ----------------------------------------------------------------------------------------------
# local response normalisation
# ----------------------------------------------------------------------------------------------
def lrn_loops(x, size, alpha, beta, k):
    """The definition, one channel at a time (host arrays)."""
    y = numpy.empty_like(x)
    channels = x.shape[1]
    for c in range(channels):
        window = range(max(0, c - size // 2), min(channels, c + (size - 1) // 2 + 1))
        energy = sum(x[:, j] ** 2 for j in window)
        y[:, c] = x[:, c] / (k + alpha / size * energy) ** beta
    return y


@SETTINGS
@given(n=st.integers(1, 3), c=st.integers(1, 6), hw=st.lists(st.integers(1, 4), min_size=1,
       max_size=2).map(tuple), size=st.integers(1, 6), alpha=st.sampled_from([1e-4, 0.3, 2.0]),
       beta=st.sampled_from([0.5, 0.75, 1.3]), k=st.sampled_from([1.0, 2.0]),
       noncontiguous=st.booleans(), seed=st.integers(0, 2**16))
def test_lrn_gradcheck_and_definition(backend, n, c, hw, size, alpha, beta, k, noncontiguous,
                                      seed):
    data = numpy.random.default_rng(seed).standard_normal((n, c) + hw)
    x = leaf(backend, data, noncontiguous)
    y = local_response_norm(x, size, alpha, beta, k)
    numpy.testing.assert_allclose(host(y), lrn_loops(data, size, alpha, beta, k), rtol=1e-12)
    gradcheck(lambda x: local_response_norm(x, size, alpha, beta, k), [x])


def test_lrn_errors(backend):
    with pytest.raises(ValueError, match=r"local_response_norm: expected an input of 3 or more "
                       r"dimensions .* got shape \(2, 3\)"):
        local_response_norm(Tensor(backend.zeros((2, 3))), 5)
    with pytest.raises(ValueError, match="size must be a positive int, got 0"):
        local_response_norm(Tensor(backend.zeros((2, 3, 4, 4))), 0)
    with pytest.raises(TypeError, match="floating point input, got dtype int64"):
        local_response_norm(Tensor(backend.zeros((2, 3, 4, 4), dtype="int64")), 3)


@pytest.mark.torch
@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_lrn_matches_pytorch(backend, rng, size):
    torch = pytest.importorskip("torch")
    x = (2 * rng.standard_normal((2, 7, 4, 3))).astype(numpy.float32)
    gy = rng.standard_normal(x.shape).astype(numpy.float32)
    mine, theirs = leaf(backend, x), torch.tensor(x, requires_grad=True)
    y = local_response_norm(mine, size, alpha=0.1, beta=0.75, k=2.0)
    ty = torch.nn.functional.local_response_norm(theirs, size, alpha=0.1, beta=0.75, k=2.0)
    assert y.dtype == numpy.float32
    numpy.testing.assert_allclose(host(y), ty.detach().numpy(), rtol=1e-5, atol=1e-6)
    y.backward(backend.asarray(gy))
    ty.backward(torch.tensor(gy))
    numpy.testing.assert_allclose(host(mine.grad), theirs.grad.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["dropout", "local_response_norm"])
def test_registered_cases_pass(backend, name):
    """The cases `tinyres gradcheck` runs for these ops."""
    from tinyres.course.checks import REGISTRY  # importing it registers every family's cases
    for _, fn, inputs in REGISTRY[name](numpy.random.default_rng(0)):
        gradcheck(fn, inputs)
