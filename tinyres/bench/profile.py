"""`tinyres bench --profile`: where a training step's time goes, op by op, and the floor of the
fast convolutions (their BLAS products alone, as the kernels chunk and share them)."""
import contextlib
import math
import statistics
import time

import numpy

import tinyres.functional as F
from tinyres import dispatch
from tinyres.autograd import Function
from tinyres.kernels.geometry import window_geometry

# ----------------------------------------------------------------------------------------------
# --profile: where a step's time goes
# ----------------------------------------------------------------------------------------------
CATEGORIES = (                       # (label, Function class names), first match wins
    ("conv", ("Conv2d",)),
    ("batch norm", ("BatchNormTrain", "BatchNormEval")),
    ("ReLU", ("ReLU",)),
    ("pooling", ("MaxPool2d", "AvgPool2d", "GlobalAvgPool2d", "AdaptiveAvgPool2d")),
    ("add + option-A shortcut", ("Add", "GetItem", "Pad")),
    ("linear + loss", ("Linear", "CrossEntropy", "LogSoftmax", "Reshape")),
)


def _category(name):
    for label, names in CATEGORIES:
        if name in names:
            return label
    return "other ops"


def _all_functions(cls=Function):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_functions(sub)


@contextlib.contextmanager
def op_timer(totals):
    """While inside, every Function's forward and backward adds its time to
    totals[(category, "forward" | "backward")]. The light instrumentation of --profile: the
    methods are wrapped for the duration of the block and restored after. A method that calls
    another wrapped one (Mean.forward calls Sum.forward) is counted once, as the outer one."""
    originals, running = [], []
    for cls in set(_all_functions()):
        for phase in ("forward", "backward"):
            if phase in cls.__dict__:
                method = cls.__dict__[phase]
                key = (_category(cls.__name__), phase)

                def timed(self, *args, _method=method, _key=key):
                    if running:                            # inside another timed op
                        return _method(self, *args)
                    running.append(_key)
                    start = time.perf_counter()
                    try:
                        return _method(self, *args)
                    finally:
                        totals[_key] = totals.get(_key, 0.0) + time.perf_counter() - start
                        running.pop()
                originals.append((cls, phase, method))
                setattr(cls, phase, timed)
    try:
        yield totals
    finally:
        for cls, phase, method in originals:
            setattr(cls, phase, method)


def profile_step(runner, steps):
    """[(label, median seconds per step)] for a tinyres runner: each op category's forward and
    backward, the optimizer, and the rest of the step (Python, the graph walk, allocation)."""
    runner.train_step()
    rows = {}
    for _ in range(steps):
        totals = {}
        dispatch.set_kernels(runner.kernels)
        start = time.perf_counter()
        with op_timer(totals):
            loss = F.cross_entropy(runner.model(runner.images), runner.labels)
            runner.optimizer.zero_grad()
            loss.backward()
            tick = time.perf_counter()
            runner.optimizer.step()
            totals[("SGD momentum update", "")] = time.perf_counter() - tick
            runner.sync()
        total = time.perf_counter() - start
        totals[("Python and graph overhead", "")] = total - sum(totals.values())
        totals[("whole step", "")] = total
        for key, seconds in totals.items():
            rows.setdefault(key, []).append(seconds)
    order = [(label, phase) for label, _ in CATEGORIES + (("other ops", ()),)
             for phase in ("forward", "backward")]
    order += [("SGD momentum update", ""), ("Python and graph overhead", ""), ("whole step", "")]
    table = []
    for label, phase in order:
        if (label, phase) in rows:
            table.append((f"{label} {phase}".strip(), statistics.median(rows[label, phase])))
    return table


def conv_calls(runner):
    """[(x shape, weight shape, stride, padding, input_grad)] of every conv in one training step
    of a tinyres runner: the forward calls (input_grad None) and the backward calls."""
    from tinyres.functional.conv import Conv2d
    calls = []
    forward, backward = Conv2d.forward, Conv2d.backward

    def recorded_forward(self, x, weight, bias=None):
        calls.append((x.shape, weight.shape, self.stride, self.padding, None))
        return forward(self, x, weight, bias)

    def recorded_backward(self, gy):
        calls.append((self.x.shape, self.weight.shape, self.stride, self.padding,
                      self.needs_input_grad[0]))
        return backward(self, gy)
    Conv2d.forward, Conv2d.backward = recorded_forward, recorded_backward
    try:
        runner.train_step()
    finally:
        Conv2d.forward, Conv2d.backward = forward, backward
    return calls


def conv_products(x_shape, w_shape, stride, padding, input_grad):
    """The matrix products the fast convolution runs for one call: (chunks, products), where
    chunks are kernels/cpu/conv.py's (first image, images) and products(B) lists, for a chunk of
    B images, each numpy.matmul as (left operand's shape, right's, which of them the kernel
    passes transposed). Winograd's (m+2)^2 batched products for 3x3 filters at stride 1 (m the
    tile size conv_winograd.tile_size picks), im2col's otherwise; the backward (input_grad not
    None) multiplies for the weight gradient and, if input_grad, for the input gradient."""
    from tinyres.kernels.cpu import conv, conv_gemm, conv_winograd
    N, C = x_shape[:2]
    geometry = window_geometry("conv2d", x_shape, w_shape[2:], stride, padding)
    (KH, KW), (OH, OW) = geometry.kernel, geometry.out_size
    OC, forward = w_shape[0], input_grad is None
    if conv.route(geometry, numpy.float32) is conv_winograd:
        chunks = conv_winograd.tile_chunks(N, (OH, OW), max(C, OC), 4)  # float32
        m = conv_winograd.tile_size((OH, OW), max(C, OC))
        k2 = (m + 2) ** 2                                               # positions of a tile

        def products(B):
            T = B * OH * OW // (m * m)                                    # m x m output tiles
            if forward:
                return [((k2, T, C), (k2, C, OC), "right")]              # V @ U^T
            return ([((k2, OC, T), (k2, T, C), "left")]                   # dM^T @ V
                    + [((k2, T, OC), (k2, OC, C), "")] * bool(input_grad))   # dM @ U
    else:
        chunks, K, P = conv_gemm.row_chunks(N, OH * OW), C * KH * KW, OH * OW

        def products(B):
            if forward:
                return [((B * P, K), (K, OC), "right")]                  # rows @ W2^T
            return ([((OC, B * P), (B * P, K), "left")]                   # gy_rows^T @ rows
                    + [((B * P, OC), (OC, K), "")] * bool(input_grad))   # gy_rows @ W2
    return chunks, products


def conv_gemm_flops(calls):
    """Floating-point operations of one step's conv GEMMs (2 per multiply-add), as run."""
    flops = 0
    for call in calls:
        chunks, products = conv_products(*call)
        for _, B in chunks:
            for left, right, _ in products(B):
                flops += 2 * math.prod(left) * right[-1]
    return flops


def square_gemm_flops_per_second(size=1024, repeats=5):
    """What BLAS reaches on a square float32 product with the threads it has now: the speed
    the conv GEMMs' narrow shapes are measured against."""
    a = numpy.random.default_rng(0).standard_normal((size, size), dtype=numpy.float32)
    out = numpy.empty_like(a)
    numpy.matmul(a, a, out=out)                                     # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        numpy.matmul(a, a, out=out)
        times.append(time.perf_counter() - start)
    return 2 * size ** 3 / statistics.median(times)


def conv_gemm_time(calls, steps):
    """Median seconds per step of the fast convolutions' matrix products alone: for every conv
    call, the BLAS products of kernels/cpu/conv.py with the same shapes, the same chunks and the
    same sharing among threads, and nothing else (no transforms, no copies, no allocation: every
    thread's operands are made before the clock starts). The floor of the fast convolutions'
    route: however fast the rest becomes, a step cannot take less."""
    from tinyres.kernels.cpu.threads import num_threads, share
    rng = numpy.random.default_rng(0)

    def operand(shape, transposed):
        """A float32 array of `shape`, made as the kernel has it: transposed views where the
        kernel multiplies by a transposed array."""
        if not transposed:
            return rng.standard_normal(shape, dtype=numpy.float32)
        stored = rng.standard_normal(shape[:-2] + shape[:-3:-1], dtype=numpy.float32)
        return numpy.swapaxes(stored, -1, -2)

    def operands(products):
        return [(operand(left, "left" in which), operand(right, "right" in which),
                 numpy.empty(left[:-1] + right[-1:], numpy.float32))
                for left, right, which in products]

    jobs = []
    for call in calls:
        chunks, products = conv_products(*call)
        per_thread = [(operands(products(chunks[0][1])), operands(products(chunks[-1][1])))
                      for _ in range(min(num_threads(), len(chunks)))]   # (full, last chunk)
        jobs.append((chunks, per_thread))

    def run(chunks, per_thread):
        free = list(per_thread)                     # each thread takes one set (pop is atomic)

        def make_worker():
            full, last = free.pop()

            def products(i):
                for left, right, out in (last if chunks[i][1] != chunks[0][1] else full):
                    numpy.matmul(left, right, out=out)
            return products
        share(len(chunks), make_worker)

    times = []
    for _ in range(steps):
        start = time.perf_counter()
        for job in jobs:
            run(*job)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
