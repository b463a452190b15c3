"""The one contract at the dispatch door: every op gives the same answer, or the same error, on
the reference path and on the fast path, for every data type.

Each kernel module declares the types it takes (DTYPES); tinyres.dispatch sends any other type to
the readable reference. So a float16 conv is float16 on both paths, and an int64 one fails with
the reference's error on both.
"""
import numpy
import pytest

import tinyres
from tinyres import dispatch
from tinyres.functional import activation, batchnorm, conv, pooling  # noqa: F401 (their twins)

DTYPES = (numpy.float16, numpy.float32, numpy.float64, numpy.int64)


def _values(rng, shape, dtype):
    data = rng.standard_normal(shape) * 3
    return data.astype(dtype)


def _max_pool_backward_args(rng, dtype):
    x = rng.standard_normal((2, 3, 5, 5))
    _, argmax = pooling.max_pool2d_forward.reference(x, 2, 2, 0)
    return _values(rng, argmax.shape, dtype), argmax, x.shape


# name -> the arguments of one call, made for a dtype (every op at the door, array-level)
CALLS = {
    "im2col": lambda rng, d: (_values(rng, (2, 3, 5, 4), d), 3, 1, 1),
    "col2im": lambda rng, d: (_values(rng, (2 * 5 * 4, 3 * 9), d), (2, 3, 5, 4), 3, 1, 1),
    "conv2d_forward": lambda rng, d: (_values(rng, (2, 3, 6, 6), d),
                                      _values(rng, (4, 3, 3, 3), d), (1, 1), (1, 1)),
    "conv2d_backward": lambda rng, d: (_values(rng, (2, 4, 6, 6), d),
                                       _values(rng, (2, 3, 6, 6), d),
                                       _values(rng, (4, 3, 3, 3), d), (1, 1), (1, 1)),
    "batch_norm_train_forward": lambda rng, d: (_values(rng, (4, 3, 2, 2), d),
                                                _values(rng, (3,), d), _values(rng, (3,), d),
                                                1e-5),
    "batch_norm_train_backward": lambda rng, d: (_values(rng, (4, 3, 2, 2), d),
                                                 _values(rng, (4, 3, 2, 2), d),
                                                 _values(rng, (3,), d),
                                                 numpy.abs(_values(rng, (3,), d)) + 1,
                                                 _values(rng, (3,), d)),
    "batch_norm_eval_forward": lambda rng, d: (_values(rng, (4, 3, 2, 2), d),
                                               _values(rng, (3,), d), _values(rng, (3,), d),
                                               _values(rng, (3,), d)),
    "max_pool2d_forward": lambda rng, d: (_values(rng, (2, 3, 5, 5), d), 2, 2, 0),
    "max_pool2d_backward": _max_pool_backward_args,
    "relu_forward": lambda rng, d: (_values(rng, (3, 7), d),),
    "relu_backward": lambda rng, d: (_values(rng, (3, 7), d), _values(rng, (3, 7), d)),
}


def _run(function, args):
    """('ok', outputs as a tuple) or ('error', type, message)."""
    try:
        out = function(*args)
    except Exception as err:  # noqa: BLE001 (the error itself is what is compared)
        return ("error", type(err), str(err))
    return ("ok", out if isinstance(out, tuple) else (out,))


def _same(fast, reference, dtype):
    assert fast[0] == reference[0], (fast, reference)
    if fast[0] == "error":
        assert fast[1:] == reference[1:]
        return
    assert len(fast[1]) == len(reference[1])
    tight = dtype == numpy.float64
    for a, b in zip(fast[1], reference[1]):
        if a is None or b is None:
            assert a is b
            continue
        assert a.dtype == b.dtype and a.shape == b.shape
        if numpy.issubdtype(a.dtype, numpy.floating):
            numpy.testing.assert_allclose(a.astype(numpy.float64), b.astype(numpy.float64),
                                          rtol=1e-9 if tight else 2e-3,
                                          atol=1e-9 if tight else 2e-3)
        else:
            numpy.testing.assert_array_equal(a, b)


@pytest.fixture
def restore_kernels():
    previous = dispatch.get_kernels()
    yield
    dispatch.set_kernels(previous)


def test_every_op_at_the_door_has_a_case():
    assert set(CALLS) == set(dispatch.TWINS)


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast")   # -inf as int64
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: numpy.dtype(d).name)
@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_op_gives_the_same_answer_or_error_on_both_paths(name, dtype, restore_kernels):
    args = CALLS[name](numpy.random.default_rng(0), dtype)
    results = {}
    for path in ("reference", "fast"):
        dispatch.set_kernels(path)
        results[path] = _run(dispatch.TWINS[name], args)
    _same(results["fast"], results["reference"], dtype)
    if dtype in (numpy.float16, numpy.float32, numpy.float64):
        assert results["reference"][0] == "ok"
        assert results["reference"][1][0].dtype == dtype         # a float type is kept


def _public_ops(x, w, gamma, beta):
    """Every public op that has a twin, forward and backward: (loss, its gradients)."""
    F = tinyres.functional
    y = F.conv2d(x, w, padding=1)
    y = F.batch_norm(y, None, None, gamma, beta, training=True)
    y = F.max_pool2d(F.relu(y), 2)
    loss = (y * y).sum()
    loss.backward()
    return loss.data, x.grad, w.grad, gamma.grad, beta.grad


@pytest.mark.parametrize("dtype", DTYPES[:3], ids=lambda d: numpy.dtype(d).name)
def test_the_public_ops_give_the_same_answers_on_both_paths(dtype, restore_kernels):
    rng = numpy.random.default_rng(1)
    arrays = (_values(rng, (2, 3, 6, 6), dtype), _values(rng, (4, 3, 3, 3), dtype) / 5,
              numpy.ones(4, dtype), numpy.zeros(4, dtype))
    results = {}
    for path in ("reference", "fast"):
        dispatch.set_kernels(path)
        tensors = [tinyres.tensor(a.copy(), requires_grad=True) for a in arrays]
        results[path] = ("ok", _public_ops(*tensors))
    _same(results["fast"], results["reference"], dtype)
    assert all(a.dtype == dtype for a in results["fast"][1])


def test_a_float16_conv_is_float16_on_the_fast_path(restore_kernels):
    """The case of the issue: the fast path used to raise 'expected float32 or float64'."""
    dispatch.set_kernels("fast")
    x = tinyres.tensor(numpy.ones((1, 2, 4, 4), numpy.float16))
    w = tinyres.tensor(numpy.ones((3, 2, 3, 3), numpy.float16))
    y = tinyres.functional.conv2d(x, w, padding=1)
    assert y.dtype == numpy.float16 and float(y.data[0, 0, 1, 1]) == 18.0
