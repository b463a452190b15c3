"""`tinyres bench --kernels`: each fast kernel against its readable twin, at ResNet-20's shapes."""
import importlib
import statistics
import time

import numpy

from tinyres import backend, dispatch


# ----------------------------------------------------------------------------------------------
# --kernels: each fast kernel against its readable twin, at the shapes of ResNet-20
# ----------------------------------------------------------------------------------------------
def kernel_cases(xp, batch_size, dtype=numpy.float32):
    """(name, args) for every twin, with arrays shaped as in ResNet-20's first stage."""
    rng = numpy.random.default_rng(0)

    def array(*shape):
        return xp.asarray(rng.standard_normal(shape).astype(dtype))

    N = batch_size
    x, w, gy = array(N, 16, 32, 32), array(16, 16, 3, 3), array(N, 16, 32, 32)
    ones, zeros = xp.ones(16, dtype=dtype), xp.zeros(16, dtype=dtype)
    mean, inv_std = x.mean(axis=(0, 2, 3)), 1.0 / xp.sqrt(x.var(axis=(0, 2, 3)) + 1e-5)
    relu_y = xp.maximum(x, 0)
    pooled = x[:, :, ::2, ::2]
    argmax = xp.asarray(rng.integers(0, 32 * 32, (N, 16, 16, 16)))
    return [
        ("im2col", (x, 3, 1, 1)),
        ("col2im", (array(N * 32 * 32, 16 * 9), x.shape, 3, 1, 1)),
        ("conv2d_forward", (x, w, (1, 1), (1, 1))),
        ("conv2d_backward", (gy, x, w, (1, 1), (1, 1), True)),
        ("batch_norm_train_forward", (x, ones, zeros, 1e-5)),
        ("batch_norm_train_backward", (gy, x, mean, inv_std, ones)),
        ("batch_norm_eval_forward", (x, mean, inv_std, zeros)),
        ("relu_forward", (x,)),
        ("relu_backward", (gy, relu_y)),
        ("max_pool2d_forward", (x, 3, 2, 1)),
        ("max_pool2d_backward", (xp.ascontiguousarray(pooled), argmax, x.shape)),
    ]


def time_kernels(device, batch_size, repeats=7):
    """[(name, reference seconds, kernel seconds)]: medians, kernel and reference interleaved.
    On 'cpu' the kernels are tinyres.kernels.cpu's; on 'cuda' tinyres.kernels.gpu's, against
    the references run by CuPy's built-in operations."""
    kind = "gpu" if device == "cuda" else "cpu"
    module = importlib.import_module(f"tinyres.kernels.{kind}")
    xp = backend.array_module(device)
    sync = (lambda: xp.cuda.get_current_stream().synchronize()) if device == "cuda" else (
        lambda: None)
    twins = dispatch.TWINS
    rows = []
    previous = dispatch.get_kernels()
    dispatch.set_kernels("reference")                      # references call references inside
    try:
        for name, args in kernel_cases(xp, batch_size):
            kernel = getattr(module, name, None)
            if kernel is None or name not in twins:
                continue
            reference = twins[name].reference
            kernel(*args), reference(*args)                # compile / warm up
            sync()
            times = {"reference": [], "kernel": []}
            for _ in range(repeats):
                for label, fn in (("reference", reference), ("kernel", kernel)):
                    start = time.perf_counter()
                    fn(*args)
                    sync()
                    times[label].append(time.perf_counter() - start)
            rows.append((name, statistics.median(times["reference"]),
                         statistics.median(times["kernel"])))
    finally:
        dispatch.set_kernels(previous)
    return rows
