"""The autograd core: the graph walk, accumulation, no_grad, retain_graph, dtypes, errors."""
import traceback

import numpy
import pytest

import tinyres
from tinyres import Function, Tensor, tensor


def leaf(data, dtype=numpy.float64):
    return tensor(numpy.asarray(data, dtype=dtype), requires_grad=True)


def test_a_tensor_used_twice_accumulates_both_gradients(backend):
    x = leaf([1.0, 2.0, 3.0])
    y = x * x + x                       # x feeds two ops: Mul (twice) and Add
    y.sum().backward()
    numpy.testing.assert_allclose(x.grad.get() if backend.__name__ == "leakproof" else x.grad,
                                  2 * numpy.array([1.0, 2.0, 3.0]) + 1)


def test_diamond_graph_sums_both_paths():
    #      a
    #    /   \
    #   b=2a  c=a^2
    #    \   /
    #     d = b*c = 2a^3   -> dd/da = 6a^2
    a = leaf([0.5, -1.5])
    b, c = a * 2.0, a ** 2
    (b * c).sum().backward()
    numpy.testing.assert_allclose(a.grad, 6 * numpy.array([0.5, -1.5]) ** 2)


def test_deep_chain_is_walked_in_topological_order():
    x = leaf([0.3])
    y = x
    for _ in range(200):                 # deep, but no recursion: the walk uses a heap
        y = y * 1.01 + x * 0.0
    y.backward(numpy.ones(1))
    numpy.testing.assert_allclose(x.grad, [1.01 ** 200])


def test_gradients_accumulate_across_backward_calls_until_zeroed():
    x = leaf([1.0, 2.0])
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    numpy.testing.assert_allclose(x.grad, [6.0, 6.0])
    x.zero_grad()
    assert x.grad is None


def test_broadcasting_is_undone_in_backward():
    x, b = leaf(numpy.ones((4, 3))), leaf(numpy.zeros((1, 3)))
    (x + b).sum().backward()
    assert b.grad.shape == (1, 3)
    numpy.testing.assert_allclose(b.grad, [[4.0, 4.0, 4.0]])


def test_no_grad_records_no_graph_and_saves_nothing():
    x = leaf([1.0, 2.0])
    with tinyres.no_grad():
        y = x * x
    assert y.creator is None and not y.requires_grad
    assert tinyres.is_grad_enabled()


def test_backward_twice_needs_retain_graph():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()                               # allowed: the first call retained the graph
    numpy.testing.assert_allclose(x.grad, [4.0, 8.0])
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()


def test_saved_arrays_are_released_after_backward():
    x = leaf(numpy.ones(3))
    y = x * x
    creator = y.creator
    y.sum().backward()
    assert creator.released and not hasattr(creator, "a")


def test_backward_on_non_scalar_needs_grad():
    y = leaf([1.0, 2.0]) * 2.0
    with pytest.raises(RuntimeError, match="scalar output.*shape \\(2,\\)"):
        y.backward()
    y.backward(numpy.array([1.0, 0.5]))


def test_backward_grad_of_wrong_shape_is_refused():
    y = leaf([1.0, 2.0]) * 2.0
    with pytest.raises(ValueError, match="grad has shape \\(3,\\), expected \\(2,\\)"):
        y.backward(numpy.ones(3))


def test_backward_without_requires_grad_says_why():
    with pytest.raises(RuntimeError, match="does not require grad"):
        (tensor([1.0]) * 2.0).backward()


def test_dtype_rules():
    assert tensor([1.0, 2.0]).dtype == numpy.float32            # Python floats: float32
    assert tensor(numpy.ones(2)).dtype == numpy.float64          # float64 arrays stay float64
    assert tensor([1, 2]).dtype.kind == "i"                      # integers stay integers
    x = tensor([1.0, 2.0])
    assert (x * 2.0).dtype == numpy.float32 and (2.0 - x).dtype == numpy.float32
    assert (1.0 / tensor(numpy.ones(2)) ** 2).dtype == numpy.float64


def test_requires_grad_on_integers_is_refused():
    with pytest.raises(TypeError, match="floating point data, got dtype int64"):
        tensor(numpy.array([1, 2], dtype=numpy.int64), requires_grad=True)


def test_reversed_operators_with_scalars_and_arrays():
    x = leaf([2.0, 4.0])
    y = (1.0 - x) * 3.0 + 8.0 / x + numpy.array([1.0, 1.0]) * x
    y.sum().backward()
    numpy.testing.assert_allclose(x.grad, -3.0 - 8.0 / numpy.array([4.0, 16.0]) + 1.0)


def test_detach_cuts_the_graph():
    x = leaf([1.0])
    y = (x * 2.0).detach() * x
    y.backward(numpy.ones(1))
    numpy.testing.assert_allclose(x.grad, [2.0])


def test_comparisons_make_masks_without_gradient():
    x = leaf([-1.0, 2.0])
    mask = x > 0.0
    assert mask.dtype == bool and not mask.requires_grad
    numpy.testing.assert_array_equal(mask.data, [False, True])


def test_item_numpy_and_repr():
    x = tensor([[1.5]])
    assert x.item() == 1.5
    assert isinstance(x.numpy(), numpy.ndarray)
    assert "tensor([[1.5]], dtype=float32)" == repr(x)
    # PyTorch's layout: commas between the elements, the rows aligned under the first
    assert repr(tensor(numpy.arange(4).reshape(2, 2))) == ("tensor([[0, 1],\n"
                                                           "        [2, 3]], dtype=int64)")
    with pytest.raises(ValueError, match="one element"):
        tensor([1.0, 2.0]).item()


def test_shape_errors_name_the_op_and_shapes():
    with pytest.raises(ValueError, match=r"Add on inputs of shapes \(2, 3\), \(4,\)"):
        tensor(numpy.ones((2, 3))) + tensor(numpy.ones(4))
    with pytest.raises(ValueError, match=r"cannot reshape .* \(2, 3\) .* to \(4,\)"):
        tensor(numpy.ones((2, 3))).reshape(4)


class StudentOp(Function):
    """An op whose forward fails on the learner's own line."""

    def forward(self, x):
        raise ValueError("my forward does not handle this shape")   # the learner's line


def test_an_error_in_forward_keeps_the_learners_line_in_the_traceback():
    with pytest.raises(ValueError) as caught:
        StudentOp()(tensor(numpy.ones((2, 3))))
    text = "".join(traceback.format_exception(caught.type, caught.value, caught.tb))
    assert 'raise ValueError("my forward does not handle this shape")' in text
    assert "StudentOp on inputs of shapes (2, 3)" in text


def test_graph_outputs_are_not_kept_alive_by_the_graph():
    import gc
    import weakref
    x = leaf(numpy.ones(3))
    y = x * 2.0
    probe = weakref.ref(y * 3.0)          # an output nobody holds
    gc.collect()
    assert probe() is None
    assert isinstance(y, Tensor)


def _peak_arrays_of_forward(depth, n=1 << 16):
    """Peak memory of `depth` layers of relu(y + 1), in units of one activation array."""
    import tracemalloc
    import tinyres.functional as F
    x = leaf(numpy.ones(n), dtype=numpy.float32)
    tracemalloc.start()
    try:
        y = x
        for _ in range(depth):
            y = F.relu(y + 1.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert y.requires_grad
    return peak / (4 * n)


@pytest.mark.parametrize("kernels", ["reference", "fast"])
def test_the_graph_keeps_only_what_backward_saved(kernels):
    # Each layer makes two arrays: the sum y + 1 (its Add saves nothing) and relu's output (saved
    # by ReLU for its backward). Only the second may outlive the layer: a graph that held its
    # inputs would keep both, two arrays per layer.
    previous = tinyres.get_kernels()
    tinyres.set_kernels(kernels)
    try:
        _peak_arrays_of_forward(4)                                 # compile / warm up first
        per_layer = (_peak_arrays_of_forward(48) - _peak_arrays_of_forward(16)) / 32
    finally:
        tinyres.set_kernels(previous)
    assert 0.9 < per_layer < 1.2, per_layer


def test_a_dropped_intermediate_is_freed_but_backward_still_works():
    import weakref
    x = leaf([1.0, -2.0, 3.0])
    s = x * 3.0
    dropped = weakref.ref(s)
    y = tinyres.functional.relu(s)
    del s
    assert dropped() is None                   # ReLU saved its output, not its input Tensor
    y.sum().backward()
    numpy.testing.assert_allclose(x.grad, [3.0, 0.0, 3.0])


def test_python_scalars_alone_make_a_tensor():
    """Add()(1.0, 2.0) raised AttributeError: 'NoneType' (issue 27)."""
    from tinyres.ops import Add, Mul
    y = Add()(1.0, 2.0)
    assert isinstance(y, Tensor) and y.item() == 3.0 and y.dtype == numpy.float32
    assert Mul()(2, 3).item() == 6 and not y.requires_grad


def test_each_op_knows_its_layer():
    model = tinyres.nn.Sequential(tinyres.nn.Conv2d(3, 4, 3, padding=1),
                                  tinyres.nn.BatchNorm2d(4), tinyres.nn.ReLU())
    model._set_path("layer1.0")
    y = model(tensor(numpy.zeros((1, 3, 4, 4), dtype=numpy.float32)))
    relu = y.creator
    norm = relu.input_edges[0].creator
    conv = norm.input_edges[0].creator
    assert (relu.layer, norm.layer, conv.layer) == ("ReLU layer1.0.2", "BatchNorm2d layer1.0.1",
                                                    "Conv2d layer1.0.0")
    assert (y * 2).creator.layer is None                   # made outside any layer


def test_an_error_note_names_the_layer():
    class Broken(tinyres.nn.Module):
        def forward(self, x):
            return x @ tensor(numpy.ones((5, 2)))

    with pytest.raises(ValueError) as error:
        Broken()(tensor(numpy.ones((3, 4))))
    text = "".join(traceback.format_exception(error.value))
    assert "MatMul on inputs of shapes (3, 4), (5, 2) in Broken" in text
