"""Every basic op passes gradcheck (float64) on hypothesis-drawn shapes, on every backend,
including broadcasting, size-1 axes and non-contiguous inputs."""
import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyres
from tinyres import ops
from tinyres.backend import array_module
from tinyres.gradcheck import gradcheck

SETTINGS = settings(max_examples=20, deadline=None)
shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)


def make(rng, shape, positive=False, noncontiguous=False):
    """A float64 leaf on the current backend; optionally a transposed (non-contiguous) view."""
    data = rng.standard_normal(shape[::-1] if noncontiguous else shape)
    if positive:
        data = numpy.abs(data) + 0.5
    array = array_module().asarray(data)
    if noncontiguous:
        array = array.transpose()
    return tinyres.tensor(array, requires_grad=True)


def broadcast_partner(draw_bits, shape):
    """A shape that broadcasts against `shape`: some axes set to 1, some leading axes dropped."""
    drop = draw_bits[0] % (len(shape) + 1)
    return tuple(1 if bit else n for bit, n in zip(draw_bits[1:], shape))[drop:]


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@given(shape=shapes, bits=st.lists(st.booleans(), min_size=4, max_size=4),
       drop=st.integers(0, 3), noncontiguous=st.booleans())
@SETTINGS
def test_binary_ops_with_broadcasting(backend, op, shape, bits, drop, noncontiguous):
    rng = numpy.random.default_rng(len(shape))
    other = tuple(1 if b else n for b, n in zip(bits, shape))[drop % (len(shape) + 1):]
    a = make(rng, shape, noncontiguous=noncontiguous)
    b = make(rng, other, positive=(op == "div"))
    gradcheck(getattr(ops, op), [a, b])
    gradcheck(getattr(ops, op), [b, a]) if op != "div" else gradcheck(
        lambda b, a: b / (a * a + 1.0), [b, a])


@given(shape=shapes, exponent=st.sampled_from([2, 3, 0.5, -1.0]), noncontiguous=st.booleans())
@SETTINGS
def test_unary_ops(backend, shape, exponent, noncontiguous):
    x = make(numpy.random.default_rng(1), shape, positive=True, noncontiguous=noncontiguous)
    gradcheck(lambda x: -(x ** exponent) + x.exp() + x.log(), [x])


@given(m=st.integers(1, 4), k=st.integers(1, 4), n=st.integers(1, 4), batch=st.integers(0, 2),
       vector=st.sampled_from(["none", "left", "right"]))
@SETTINGS
def test_matmul(backend, m, k, n, batch, vector):
    rng = numpy.random.default_rng(2)
    a_shape = (k,) if vector == "left" else (batch,) * (batch > 0) + (m, k)
    b_shape = (k,) if vector == "right" else (k, n)
    gradcheck(ops.matmul, [make(rng, a_shape), make(rng, b_shape)])


@given(shape=shapes, data=st.data(), keepdims=st.booleans(), noncontiguous=st.booleans())
@SETTINGS
def test_reductions(backend, shape, data, keepdims, noncontiguous):
    axis = data.draw(st.sampled_from([None] + list(range(len(shape)))))
    x = make(numpy.random.default_rng(3), shape, noncontiguous=noncontiguous)
    gradcheck(lambda x: x.sum(dim=axis, keepdim=keepdims), [x])
    gradcheck(lambda x: x.mean(dim=axis, keepdim=keepdims), [x])
    if axis is None:
        gradcheck(lambda x: x.max(), [x])
    else:
        gradcheck(lambda x: x.max(dim=axis, keepdim=keepdims).values, [x])
        gradcheck(lambda x: x.min(axis, keepdims).values, [x])


def test_max_gives_the_gradient_to_one_of_tied_elements(backend):
    x = tinyres.tensor(array_module().asarray(numpy.ones((2, 3))), requires_grad=True)
    x.max(dim=1).values.sum().backward()
    grad = x.grad.get() if hasattr(x.grad, "get") else x.grad
    numpy.testing.assert_array_equal(grad, [[1, 0, 0], [1, 0, 0]])


@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=4).map(tuple),
       data=st.data(), noncontiguous=st.booleans())
@SETTINGS
def test_shape_ops(backend, shape, data, noncontiguous):
    x = make(numpy.random.default_rng(4), shape, noncontiguous=noncontiguous)
    axes = data.draw(st.permutations(range(len(shape))))
    gradcheck(lambda x: x.permute(*axes).reshape(-1) * 1.0, [x])


@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple), data=st.data())
@SETTINGS
def test_strided_slicing_and_fancy_indexing(backend, shape, data):
    x = make(numpy.random.default_rng(5), shape)
    index = tuple(slice(data.draw(st.integers(0, n - 1)), None, data.draw(st.integers(1, 3)))
                  for n in shape)
    gradcheck(lambda x: x[index], [x])
    rows = data.draw(st.lists(st.integers(0, shape[0] - 1), min_size=1, max_size=5))
    gradcheck(lambda x: x[array_module().asarray(numpy.array(rows))], [x])   # repeats add up


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple), data=st.data())
@SETTINGS
def test_pad(backend, shape, data):
    widths = [(data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in shape]
    gradcheck(lambda x: ops.pad(x, widths), [make(numpy.random.default_rng(6), shape)])


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple), data=st.data())
@SETTINGS
def test_concatenate(backend, shape, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    rng = numpy.random.default_rng(7)
    parts = [make(rng, shape[:axis] + (data.draw(st.integers(1, 3)),) + shape[axis + 1:])
             for _ in range(data.draw(st.integers(1, 3)))]
    gradcheck(lambda *xs: ops.concatenate(xs, axis=axis), parts)


def test_option_a_shortcut_ops_compose(backend):
    """The parameter-free shortcut of the CIFAR ResNets: subsample by 2, zero-pad channels."""
    x = make(numpy.random.default_rng(8), (2, 4, 6, 6))
    report = gradcheck(lambda x: ops.pad(x[:, :, ::2, ::2], ((0, 0), (2, 2), (0, 0), (0, 0))), [x])
    assert report.checked == x.numel()


def test_pow_refuses_tensor_exponents():
    x = tinyres.tensor([1.0, 2.0])
    with pytest.raises(TypeError, match="exponent must be a Python number"):
        x ** x
