"""The ops on the GPU backend ('cudasim', or 'cupy' on a GPU) against the numpy backend.

Here the GPU kernels are reached the way a learner's code reaches them: through
tinyres.functional and the dispatch door. Each test runs the same op, forward and backward, once
on the GPU backend and once on the numpy backend with the readable reference kernels, and holds
the two equal (float32 tolerance); it also checks that the GPU kernels really ran. Then the
gradient checks (float64, finite differences) run on the GPU backend.
"""
import os

import numpy
import pytest
from hypothesis import assume, given, settings, strategies as st

import tinyres
import tinyres.functional as F
from tinyres import dispatch
from tinyres.backend import to_device

GPU_BACKEND = os.environ.get("TINYRES_BACKEND")      # 'cudasim' or 'cupy' (see conftest.py)
FEW = settings(max_examples=6, deadline=None)


def run(backend, fn, inputs, seed=0):
    """fn(*inputs) on `backend`: (output, gradients of the float inputs), as host arrays.

    inputs are host arrays (made leaves with requires_grad) or anything else (passed as is). The
    loss is a random projection of the output, the same on both backends."""
    previous = tinyres.get_backend(), dispatch.get_kernels()
    tinyres.set_backend(backend)
    dispatch.set_kernels("reference")       # the numpy side: the readable NumPy code
    try:
        leaves = [tinyres.tensor(a, requires_grad=True) if isinstance(a, numpy.ndarray) else a
                  for a in inputs]
        out = fn(*leaves)
        direction = numpy.random.default_rng(seed).standard_normal(out.shape)
        (out * tinyres.tensor(direction.astype(out.dtype))).sum().backward()
        grads = [to_device(t.grad, "cpu") for t in leaves if isinstance(t, tinyres.Tensor)]
        return to_device(out.data, "cpu"), grads
    finally:
        tinyres.set_backend(previous[0])
        dispatch.set_kernels(previous[1])


def assert_backends_agree(fn, inputs, launches, kernels, rtol=1e-5, atol=1e-5):
    launches.clear()
    out, grads = run(GPU_BACKEND, fn, inputs)
    ran = {k.__name__ for k, *_ in launches}
    assert set(kernels) <= ran, f"expected the GPU kernels {kernels} to run, ran {sorted(ran)}"
    out_ref, grads_ref = run("numpy", fn, inputs)
    numpy.testing.assert_allclose(out, out_ref, rtol=rtol, atol=atol, err_msg="output")
    for i, (g, g_ref) in enumerate(zip(grads, grads_ref)):
        numpy.testing.assert_allclose(g, g_ref, rtol=rtol, atol=atol, err_msg=f"grad {i}")


def non_contiguous(x, transposed):
    """x itself, or the same values as a transposed view of a W-major copy."""
    if not transposed:
        return x
    return numpy.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)


# ----------------------------------------------------------------------------------------------
# Forward and backward equal the numpy backend's
# ----------------------------------------------------------------------------------------------
@FEW
@given(N=st.integers(1, 2), C=st.integers(1, 3), OC=st.integers(1, 3), H=st.integers(2, 6),
       W=st.integers(2, 6), K=st.integers(1, 3), S=st.integers(1, 2), P=st.integers(0, 1),
       bias=st.booleans(), transposed=st.booleans(), seed=st.integers(0, 2**31))
def test_conv2d_equals_the_numpy_backend(launches, N, C, OC, H, W, K, S, P, bias, transposed,
                                         seed):
    OH, OW = (H + 2 * P - K) // S + 1, (W + 2 * P - K) // S + 1
    assume(OH >= 1 and OW >= 1 and N * OH * OW * C * K * K <= 2000)
    rng = numpy.random.default_rng(seed)
    x = non_contiguous(rng.standard_normal((N, C, H, W)).astype(numpy.float32), transposed)
    w = rng.standard_normal((OC, C, K, K)).astype(numpy.float32)
    b = rng.standard_normal(OC).astype(numpy.float32)
    if bias:
        fn, inputs = (lambda x, w, b: F.conv2d(x, w, b, stride=S, padding=P)), [x, w, b]
    else:
        fn, inputs = (lambda x, w: F.conv2d(x, w, stride=S, padding=P)), [x, w]
    assert_backends_agree(fn, inputs, launches, ["im2col_kernel", "col2im_kernel"])


@FEW
@given(N=st.integers(1, 2), C=st.integers(1, 4), size=st.sampled_from([None, (1, 3), (3, 3)]),
       affine=st.booleans(), seed=st.integers(0, 2**31))
def test_batch_norm_equals_the_numpy_backend(launches, N, C, size, affine, seed):
    shape = (N, C) if size is None else (N, C) + size
    assume(numpy.prod(shape) // C > 1)
    rng = numpy.random.default_rng(seed)
    x = (3.0 + rng.standard_normal(shape)).astype(numpy.float32)
    w = rng.uniform(0.5, 2.0, C).astype(numpy.float32)
    b = rng.standard_normal(C).astype(numpy.float32)
    running = {}

    def fn(x, *params):
        # fresh running statistics for each backend, updated in place by the op
        xp = tinyres.get_array_module(x)
        stats = (xp.zeros(C, dtype=x.dtype), xp.ones(C, dtype=x.dtype))
        running[tinyres.get_backend()] = stats
        weight, bias = params if params else (None, None)
        return F.batch_norm(x, *stats, weight, bias, training=True)

    assert_backends_agree(fn, [x, w, b] if affine else [x], launches,
                          ["channel_sums_kernel", "channel_sums_kernel",
                           "batch_norm_apply_kernel", "channel_sums_kernel",
                           "batch_norm_backward_dx_kernel"])
    for got, want in zip(running[GPU_BACKEND], running["numpy"]):
        numpy.testing.assert_allclose(to_device(got, "cpu"), want, rtol=1e-5, atol=1e-6)


@FEW
@given(N=st.integers(1, 2), C=st.integers(1, 3), H=st.integers(2, 7), W=st.integers(2, 7),
       K=st.integers(2, 3), S=st.integers(1, 2), P=st.integers(0, 1), seed=st.integers(0, 2**31))
def test_max_pool2d_equals_the_numpy_backend(launches, N, C, H, W, K, S, P, seed):
    assume(P <= K // 2 and (H + 2 * P - K) // S + 1 >= 1 and (W + 2 * P - K) // S + 1 >= 1)
    rng = numpy.random.default_rng(seed)
    x = (rng.permutation(N * C * H * W).reshape(N, C, H, W) / 7.0).astype(numpy.float32)
    assert_backends_agree(lambda x: F.max_pool2d(x, K, S, P), [x], launches,
                          ["max_pool_forward_kernel", "max_pool_backward_kernel"], rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------
# Gradient checks (float64) on the GPU backend
# ----------------------------------------------------------------------------------------------
@pytest.fixture
def on_gpu_backend():
    previous = tinyres.get_backend()
    tinyres.set_backend(GPU_BACKEND)
    yield
    tinyres.set_backend(previous)


def leaf(rng, *shape):
    return tinyres.tensor(rng.standard_normal(shape), requires_grad=True)


# Every perturbed element costs two forward passes through the simulated kernels, so each check
# perturbs a random subset of a few elements per input (the report says which).
FEW_ELEMENTS = 4


def test_gradcheck_conv2d(on_gpu_backend, launches):
    rng = numpy.random.default_rng(1)
    x, w, b = leaf(rng, 1, 2, 4, 5), leaf(rng, 3, 2, 3, 3), leaf(rng, 3)
    tinyres.gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1), [x, w, b],
                      max_elements=FEW_ELEMENTS)
    assert {"im2col_kernel", "col2im_kernel"} <= {k.__name__ for k, *_ in launches}


def test_gradcheck_batch_norm(on_gpu_backend, launches):
    rng = numpy.random.default_rng(2)
    x, w, b = leaf(rng, 2, 2, 2, 3), leaf(rng, 2), leaf(rng, 2)
    tinyres.gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                      [x, w, b], max_elements=FEW_ELEMENTS)
    assert "batch_norm_backward_dx_kernel" in {k.__name__ for k, *_ in launches}


def test_gradcheck_max_pool2d(on_gpu_backend, launches):
    rng = numpy.random.default_rng(3)
    # distinct values, far apart compared with the finite-difference step: no ties to flip
    x = tinyres.tensor(rng.permutation(2 * 5 * 5).reshape(1, 2, 5, 5) / 10.0, requires_grad=True)
    tinyres.gradcheck(lambda x: F.max_pool2d(x, 3, 2, 1), [x], max_elements=FEW_ELEMENTS)
    assert "max_pool_backward_kernel" in {k.__name__ for k, *_ in launches}


def test_gradcheck_residual_block(on_gpu_backend):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + x): the identity shortcut of a basic block."""
    rng = numpy.random.default_rng(4)
    x = leaf(rng, 2, 2, 3, 3)
    w1, w2 = leaf(rng, 2, 2, 3, 3), leaf(rng, 2, 2, 3, 3)

    def block(x, w1, w2):
        h = F.relu(F.batch_norm(F.conv2d(x, w1, padding=1), None, None, None, None, True))
        return F.relu(F.batch_norm(F.conv2d(h, w2, padding=1), None, None, None, None, True) + x)

    tinyres.gradcheck(block, [x, w1, w2], max_elements=2)


# ----------------------------------------------------------------------------------------------
# A whole network
# ----------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("TINYRES_SLOW") != "1" and GPU_BACKEND == "cudasim",
                    reason="ResNet-8 in the CUDA simulator takes minutes (its 240 batch-norm "
                           "channels are 240 simulated blocks); run with TINYRES_SLOW=1")
def test_resnet8_forward_backward_equals_the_numpy_backend(launches):
    """ResNet-8 (CIFAR layout, n = 1) on a 2x3x8x8 batch: the loss, every gradient and the
    batch-norm running statistics equal the numpy backend's (float32 tolerance)."""
    from tinyres.backend import default_device
    from tinyres.models.cifar_resnet import cifar_resnet

    rng = numpy.random.default_rng(0)
    x, target = rng.standard_normal((2, 3, 8, 8)).astype(numpy.float32), numpy.array([3, 8])
    previous = tinyres.get_backend(), dispatch.get_kernels()
    results = {}
    try:
        tinyres.set_backend("numpy")
        model = cifar_resnet(8, input_size=8)
        initial = model.state_dict()
        for backend in ("numpy", GPU_BACKEND):
            tinyres.set_backend(backend)
            dispatch.set_kernels("reference")
            model.to(default_device())
            model.load_state_dict(initial)
            model.zero_grad()
            launches.clear()
            loss = F.cross_entropy(model(tinyres.tensor(x)), target)
            loss.backward()
            grads = {name: to_device(p.grad, "cpu") for name, p in model.named_parameters()}
            results[backend] = loss.item(), grads, model.state_dict()
    finally:
        tinyres.set_backend(previous[0])
        dispatch.set_kernels(previous[1])

    assert {"im2col_kernel", "col2im_kernel", "channel_sums_kernel", "batch_norm_apply_kernel",
            "batch_norm_backward_dx_kernel"} <= \
        {k.__name__ for k, *_ in launches}
    (loss, grads, state), (loss_ref, grads_ref, state_ref) = results[GPU_BACKEND], results["numpy"]
    assert numpy.isclose(loss, loss_ref, rtol=1e-5)
    for name, g_ref in grads_ref.items():
        numpy.testing.assert_allclose(grads[name], g_ref, rtol=1e-4,
                                      atol=1e-5 * numpy.abs(g_ref).max(), err_msg=name)
    for name, value in state_ref.items():
        numpy.testing.assert_allclose(state[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
