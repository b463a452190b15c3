"""`tinyres bench`: how long does one ResNet training step take, on every path, against PyTorch?

One training step is forward, cross-entropy, backward and an SGD-momentum update on one batch of
random images; one eval forward is the model in eval mode under no_grad. The paths raced:

    reference    tinyres on NumPy with the readable kernels (TINYRES_KERNELS=reference)
    fast         tinyres on NumPy with the Numba kernels of tinyres.kernels.cpu (the default)
    cupy         tinyres on a GPU (where CuPy sees one)
    torch        PyTorch on the CPU, the same network built here (where torch is installed)
    torch-cuda   PyTorch on the GPU (where it sees one)

Times drift from run to run on a shared machine, so the paths are timed *interleaved* in one
process (A B C A B C ...), each timed call after a short pause (see `race`), and compared by their
medians over the same stretch of time; the ratio column divides by PyTorch's median. Peak memory
is measured separately, in a fresh process per path (Python cannot see what BLAS and Numba
allocate, so tracemalloc would miss most of it): the resident set high-water mark (VmHWM) of
three training steps, above the resident size just before them (the libraries, the model, the
batch and the optimizer's state, after two warm-up steps and malloc_trim), the mark reset between
the two with /proc/self/clear_refs.

    tinyres bench                                  ResNet-20, batch 128, every available path
    tinyres bench --model resnet56 --steps 20      more depth, more steps
    tinyres bench --profile                        where a step's time goes, op by op
    tinyres bench --kernels                        each fast kernel against its reference twin

`--profile` times every Function's forward and backward (by wrapping them for the duration of the
profile, see `op_timer`), the optimizer, and calls the rest "Python and graph overhead".
"""
import argparse
import contextlib
import ctypes
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy

import tinyres
import tinyres.functional as F
from tinyres import backend, dispatch
from tinyres.autograd import Function, no_grad
from tinyres.models import get_model
from tinyres.optim import SGD

PATHS = ("reference", "fast", "cupy", "torch", "torch-cuda")


# ----------------------------------------------------------------------------------------------
# Threads: BLAS, Numba and PyTorch each have their own pool
# ----------------------------------------------------------------------------------------------
def set_threads(count):
    """Ask every thread pool in this process for `count` threads; returns what was set."""
    done = {"tinyres (BLAS, Numba, readable path)": tinyres.set_num_threads(count)}
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(count)
        done["torch"] = sys.modules["torch"].get_num_threads()
    return done


# ----------------------------------------------------------------------------------------------
# The racers: each builds its model and batch, then runs one training step or one eval forward
# ----------------------------------------------------------------------------------------------
class TinyresRunner:
    """tinyres on NumPy (kernels 'reference' or 'fast') or CuPy."""

    def __init__(self, path, model_name, batch_size, seed=0):
        self.name = path
        self.kernels = "reference" if path == "reference" else "fast"
        self.device = "cuda" if path == "cupy" else "cpu"
        tinyres.manual_seed(seed)
        self.model = get_model(model_name).to(self.device)
        self.optimizer = SGD(self.model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        rng = numpy.random.default_rng(seed)
        images = rng.standard_normal((batch_size, 3, 32, 32)).astype(numpy.float32)
        labels = rng.integers(0, 10, batch_size)
        self.images = tinyres.Tensor(backend.to_device(images, self.device))
        self.labels = backend.to_device(labels, self.device)

    def train_step(self):
        dispatch.set_kernels(self.kernels)
        loss = F.cross_entropy(self.model(self.images), self.labels)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.sync()

    def eval_forward(self):
        dispatch.set_kernels(self.kernels)
        self.model.eval()
        with no_grad():
            self.model(self.images)
        self.model.train()
        self.sync()

    def sync(self):
        if self.device == "cuda":
            import cupy
            cupy.cuda.get_current_stream().synchronize()


def torch_cifar_resnet(depth, num_classes=10):
    """The same CIFAR ResNet in PyTorch: conv-BN-ReLU stem, three stages of basic blocks with the
    option-A shortcut (stride-2 subsampling, zero channels half before and half after), global
    average pool, linear. Built here so the race needs nothing but torch."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, in_channels, channels, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(channels)
            self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(channels)
            self.stride = stride
            self.pad = (channels - in_channels) // 2
            self.pad_after = channels - in_channels - self.pad

        def forward(self, x):
            out = torch.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            shortcut = x
            if self.stride > 1 or self.pad or self.pad_after:
                shortcut = nn.functional.pad(x[:, :, ::self.stride, ::self.stride],
                                             (0, 0, 0, 0, self.pad, self.pad_after))
            return torch.relu(out + shortcut)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            n = (depth - 2) // 6
            self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            layers, in_channels = [], 16
            for channels, stride in ((16, 1), (32, 2), (64, 2)):
                for b in range(n):
                    layers.append(Block(in_channels, channels, stride if b == 0 else 1))
                    in_channels = channels
            self.layers = nn.Sequential(*layers)
            self.fc = nn.Linear(64, num_classes)

        def forward(self, x):
            x = self.layers(torch.relu(self.bn1(self.conv1(x))))
            return self.fc(x.mean(dim=(2, 3)))

    return Net()


class TorchRunner:
    """PyTorch on the CPU or a GPU, with the same batch and optimizer settings."""

    def __init__(self, path, model_name, batch_size, seed=0):
        import torch
        self.torch, self.name = torch, path
        self.device = "cuda" if path == "torch-cuda" else "cpu"
        depth = int(model_name.replace("resnet", ""))
        torch.manual_seed(seed)
        self.model = torch_cifar_resnet(depth).to(self.device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9,
                                         weight_decay=1e-4)
        rng = numpy.random.default_rng(seed)
        self.images = torch.from_numpy(
            rng.standard_normal((batch_size, 3, 32, 32)).astype(numpy.float32)).to(self.device)
        self.labels = torch.from_numpy(rng.integers(0, 10, batch_size)).to(self.device)

    def train_step(self):
        loss = self.torch.nn.functional.cross_entropy(self.model(self.images), self.labels)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.sync()

    def eval_forward(self):
        self.model.eval()
        with self.torch.no_grad():
            self.model(self.images)
        self.model.train()
        self.sync()

    def sync(self):
        if self.device == "cuda":
            self.torch.cuda.synchronize()


def available_paths():
    """The paths this machine can run, each with a note where it cannot."""
    found, notes = [], {}
    found.append("reference")
    if dispatch._kernel_module("cpu") is not None:
        found.append("fast")
    else:
        notes["fast"] = "Numba is not installed (pip install 'tinyres[fast]')"
    try:
        backend._require_cupy()
        found.append("cupy")
    except backend.BackendError as err:
        notes["cupy"] = f"no GPU ({str(err).split(';')[0].split('.')[0]})"
    try:
        import torch
        found.append("torch")
        if torch.cuda.is_available():
            found.append("torch-cuda")
        else:
            notes["torch-cuda"] = "torch sees no GPU"
    except ImportError:
        notes["torch"] = "torch is not installed (the ratio column needs it)"
    return found, notes


def make_runner(path, model_name, batch_size):
    if path.startswith("torch"):
        return TorchRunner(path, model_name, batch_size)
    return TinyresRunner(path, model_name, batch_size)


# ----------------------------------------------------------------------------------------------
# Timing: interleaved rounds, medians
# ----------------------------------------------------------------------------------------------
SETTLE_SECONDS = 0.25   # a pause before each timed call: see `race`


def race(runners, what, steps, warmup):
    """{runner name: [seconds of each of `steps` timed calls]}, the runners taking turns.

    Each timed call comes after a short pause. Thread pools keep their threads spinning for a
    while after their work is done (OpenBLAS's for up to ~0.1 s, OpenMP's for less), and on a
    2-core machine those spinning threads would slow down whichever path runs next.
    """
    for runner in runners:
        for _ in range(warmup):
            getattr(runner, what)()
    times = {runner.name: [] for runner in runners}
    for _ in range(steps):
        for runner in runners:
            time.sleep(SETTLE_SECONDS)
            start = time.perf_counter()
            getattr(runner, what)()
            times[runner.name].append(time.perf_counter() - start)
    return times


# ----------------------------------------------------------------------------------------------
# Memory: a fresh process per path
# ----------------------------------------------------------------------------------------------
def _status_kb(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _return_free_memory():
    """Ask the C allocator to hand freed memory back to the OS (glibc's malloc_trim), so that
    the resident set counts what is in use, not what was used once."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def probe_memory(path, model_name, batch_size, threads, steps=3):
    """In THIS process (call it in a fresh one): build the path, run two warm-up steps, hand
    freed memory back to the OS, then run `steps` steps; returns {"before_mb": the resident set
    before the timed steps, "peak_mb": its high-water mark during them, "method"}."""
    set_threads(threads)
    runner = make_runner(path, model_name, batch_size)
    set_threads(threads)                                   # torch's pool exists only now
    runner.train_step()
    runner.train_step()
    _return_free_memory()
    try:
        with open("/proc/self/clear_refs", "w") as clear:  # reset VmHWM to the current RSS
            clear.write("5")
        before = _status_kb("VmRSS")
        for _ in range(steps):
            runner.train_step()
        peak = _status_kb("VmHWM")
        method = "VmHWM (reset by /proc/self/clear_refs) minus VmRSS before the steps"
    except OSError:
        import resource                                    # no reset: the peak since start
        before = _status_kb("VmRSS") if os.path.exists("/proc/self/status") else 0
        for _ in range(steps):
            runner.train_step()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        method = "ru_maxrss (since start) minus VmRSS before the steps"
    return {"before_mb": before / 1024, "peak_mb": peak / 1024, "method": method}


def measure_memory(path, model_name, batch_size, threads):
    """probe_memory in a fresh Python process; None if it failed."""
    command = [sys.executable, "-m", "tinyres.bench", "--probe-memory", path, "--model",
               model_name, "--batch-size", str(batch_size), "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------
# --profile: where a step's time goes
# ----------------------------------------------------------------------------------------------
CATEGORIES = (                       # (label, Function class names), first match wins
    ("conv", ("Conv2d",)),
    ("batch norm (+ fused ReLU)", ("BatchNormTrain", "BatchNormReLUTrain", "BatchNormEval")),
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
                      self.inputs[0].requires_grad))
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
    passes transposed). Winograd's 16 batched products for 3x3 filters at stride 1, im2col's
    otherwise; the backward (input_grad not None) multiplies for the weight gradient and, if
    input_grad, for the input gradient."""
    from tinyres.kernels.cpu import conv as cpu_conv
    (N, C, _, _), (KH, KW), stride, _, (OH, OW) = cpu_conv.geometry(
        "conv2d", x_shape, w_shape[2:], stride, padding)
    OC, forward = w_shape[0], input_grad is None
    if cpu_conv._winograd_applies(w_shape, stride, (OH, OW)):
        chunks = cpu_conv._winograd_chunks(N, OH, OW, max(C, OC), 4)     # float32

        def products(B):
            T = B * OH * OW // 4                                          # 2x2 output tiles
            if forward:
                return [((16, T, C), (16, C, OC), "right")]              # V @ U^T
            return ([((16, OC, T), (16, T, C), "left")]                   # dM^T @ V
                    + [((16, T, OC), (16, OC, C), "")] * bool(input_grad))   # dM @ U
    else:
        chunks, K, P = cpu_conv._chunks(N, OH * OW), C * KH * KW, OH * OW

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
        ("batch_norm_relu_train_forward", (x, ones, zeros, 1e-5)),
        ("batch_norm_relu_train_backward", (gy, relu_y, x, mean, inv_std, ones)),
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
    import importlib
    kind = "gpu" if device == "cuda" else "cpu"
    module = importlib.import_module(f"tinyres.kernels.{kind}")
    xp = backend.array_module(device)
    sync = (lambda: xp.cuda.get_current_stream().synchronize()) if device == "cuda" else (
        lambda: None)
    twins = _twins()
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


def _twins():
    """{name: routed function} for every @fast_twin in tinyres.functional."""
    from tinyres.functional import activation, batchnorm, conv, pooling
    twins = {}
    for module in (conv, batchnorm, activation, pooling):
        for value in vars(module).values():
            if callable(value) and hasattr(value, "reference"):
                twins[value.__name__] = value
    return twins


# ----------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------
def cpu_model():
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ms(seconds):
    return f"{seconds * 1000:8.1f} ms"


def format_table(batch_size, train, evals, memory, baseline):
    """The results table: times, ratio to the `baseline` path (PyTorch), images/s, memory."""
    lines = [f"{'path':<11} {'train step':>11} {'ratio':>6} {'img/s':>7}   {'eval fwd':>11} "
             f"{'ratio':>6} {'img/s':>7}   {'step memory':>11} {'ratio':>6} {'peak RSS':>9}"]
    base_train = statistics.median(train[baseline]) if baseline in train else None
    base_eval = statistics.median(evals[baseline]) if baseline in evals else None
    base_mem = memory.get(baseline)
    for path in train:
        t, e = statistics.median(train[path]), statistics.median(evals[path])
        tr = f"{t / base_train:5.2f}x" if base_train else "     -"
        er = f"{e / base_eval:5.2f}x" if base_eval else "     -"
        mem = memory.get(path)
        if mem:
            step_mb = mem["peak_mb"] - mem["before_mb"]
            mr = (f"{step_mb / (base_mem['peak_mb'] - base_mem['before_mb']):5.2f}x"
                  if base_mem else "     -")
            mem_text = f"{step_mb:8.0f} MB {mr} {mem['peak_mb']:6.0f} MB"
        else:
            mem_text = f"{'-':>11} {'-':>6} {'-':>9}"
        lines.append(f"{path:<11} {_ms(t):>11} {tr:>6} {batch_size / t:7.0f}   {_ms(e):>11} "
                     f"{er:>6} {batch_size / e:7.0f}   {mem_text}")
    return "\n".join(lines)


def run(args):
    """The `tinyres bench` command; returns an exit status."""
    found, notes = available_paths()
    paths = [p for p in (args.paths or found) if p in found]
    for p in args.paths or ():
        if p not in found:
            print(f"skipping {p}: {notes.get(p, 'not available here')}")
    if args.kernels:
        return _run_kernels(args, found)
    threads = args.threads or os.cpu_count()
    print(f"tinyres bench: {args.model}, batch {args.batch_size}, {threads} threads, "
          f"{args.steps} interleaved steps after {args.warmup} warm-up; "
          f"{datetime.date.today().isoformat()}, {cpu_model()}, {os.cpu_count()} CPUs")
    for path, note in notes.items():
        if path in PATHS and path not in found:
            print(f"  (no {path}: {note})")
    set_threads(threads)
    runners = [make_runner(p, args.model, args.batch_size) for p in paths]
    set_threads(threads)                                   # again: torch's pool exists now
    if args.profile:
        floor = None
        for runner in runners:
            if isinstance(runner, TinyresRunner):
                print(f"\nper-op breakdown of one training step, path '{runner.name}' "
                      f"(medians of {args.steps} steps):")
                rows = profile_step(runner, args.steps)
                total = rows[-1][1]
                for label, seconds in rows:
                    print(f"  {label:<40} {_ms(seconds)} {100 * seconds / total:6.1f} %")
                if runner.kernels == "fast" and runner.device == "cpu":
                    calls = conv_calls(runner)
                    floor = conv_gemm_time(calls, args.steps)
                    print(f"  {'(the conv GEMMs alone, same shapes)':<40} {_ms(floor)} "
                          f"{100 * floor / total:6.1f} %   the floor of the fast convs: their "
                          "BLAS products only, as the kernels chunk and share them")
                    print(f"  (those GEMMs run at {conv_gemm_flops(calls) / floor / 1e9:.0f} "
                          f"GFLOP/s; BLAS on square 1024 x 1024 products: "
                          f"{square_gemm_flops_per_second() / 1e9:.0f} GFLOP/s)")
        others = [r for r in runners if not isinstance(r, TinyresRunner)]
        for name, times in race(others, "train_step", args.steps, args.warmup).items():
            step = statistics.median(times)
            print(f"\n{name} whole training step, same run: {_ms(step).strip()}"
                  + (f"; the fast path's conv GEMMs alone take {floor / step:.0%} of it"
                     if floor else ""))
        return 0
    load_before = _load_average()
    train = race(runners, "train_step", args.steps, args.warmup)
    evals = race(runners, "eval_forward", args.steps, args.warmup)
    load_after = _load_average()
    memory = {}
    if not args.no_memory:
        for p in paths:
            if not p.endswith("cuda") and p != "cupy":
                memory[p] = measure_memory(p, args.model, args.batch_size, threads)
    print()
    print(format_table(args.batch_size, train, evals, memory,
                       "torch" if "torch" in paths else None))
    if memory:
        method = next((m["method"] for m in memory.values() if m), "-")
        print(f"\nstep memory: {method}, over 3 training steps after 2 warm-up steps and "
              "malloc_trim, one fresh process per path; peak RSS: the whole process's "
              "high-water mark during those steps.")
    print(f"load average (1 min) before / after the race: {load_before} / {load_after} "
          f"on {os.cpu_count()} CPUs (other processes slow down multi-threaded paths unevenly: "
          "compare runs made on an otherwise idle machine)")
    if "torch" not in found:
        print("\n(no PyTorch: install torch to get the ratio columns)")
    return 0


def _load_average():
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except (OSError, AttributeError):
        return "-"


def _run_kernels(args, found):
    devices = ["cpu"] + (["cuda"] if "cupy" in found else [])
    threads = args.threads or os.cpu_count()
    set_threads(threads)
    for device in devices:
        kind = "GPU kernels (tinyres.kernels.gpu) vs the references on CuPy built-ins" \
            if device == "cuda" else "CPU kernels (tinyres.kernels.cpu) vs the NumPy references"
        if device == "cpu" and "fast" not in found:
            print("no CPU kernels: Numba is not installed")
            continue
        print(f"{kind}, ResNet-20 first-stage shapes, batch {args.batch_size}, {threads} threads:")
        print(f"  {'twin':<32} {'reference':>11} {'kernel':>11} {'speed-up':>9}")
        for name, reference, kernel in time_kernels(device, args.batch_size):
            print(f"  {name:<32} {_ms(reference)} {_ms(kernel)} {reference / kernel:8.1f}x")
    if "cupy" not in found:
        print("\n(no GPU: the GPU kernels of tinyres.kernels.gpu are timed only where CuPy sees a "
              "GPU)")
    return 0


def add_arguments(parser):
    """The options of `tinyres bench` (shared by the CLI and `python -m tinyres.bench`)."""
    parser.add_argument("--model", default="resnet20",
                        choices=["resnet20", "resnet32", "resnet44", "resnet56", "resnet110"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for BLAS, Numba and PyTorch (default: all CPUs)")
    parser.add_argument("--steps", type=int, default=10,
                        help="timed steps per path (medians are reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per path first")
    parser.add_argument("--paths", nargs="+", choices=PATHS,
                        help="race only these paths (default: every available one)")
    parser.add_argument("--profile", action="store_true",
                        help="per-op breakdown of a training step instead of the race")
    parser.add_argument("--kernels", action="store_true",
                        help="time each fast kernel against its reference twin")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the peak-memory measurement (one process per path)")
    parser.add_argument("--probe-memory", metavar="PATH", help=argparse.SUPPRESS)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tinyres.bench", description=__doc__.split(
        "\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.probe_memory:
        print(json.dumps(probe_memory(args.probe_memory, args.model, args.batch_size,
                                      args.threads or os.cpu_count())))
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
