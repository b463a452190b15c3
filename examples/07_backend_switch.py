"""Example 7: the backend switch — the same training step on every backend this machine has.

Op code never names NumPy or CuPy: it asks the data (xp = get_array_module(x)). So one model runs
wherever its arrays live, and the fast kernels (Numba on the CPU, numba-cuda on a GPU) stand in
for the readable NumPy code through one door (tinyres.dispatch). This example runs one training
step (forward, cross-entropy, backward, SGD with momentum) from the same weights on the same
batch on:

    numpy, reference kernels   the readable code of tinyres/functional
    numpy, fast kernels        Numba twins, where tinyres.kernels.cpu and Numba are installed
    cupy                       an NVIDIA GPU, where CuPy sees one
    leakproof                  (without a GPU) arrays that refuse host NumPy calls, as CuPy's do
    cudasim                    (without a GPU, in a subprocess, at a tiny shape) the GPU kernels
                               run by Numba's CUDA simulator on the CPU

and compares the losses, logits, gradients and updated weights, and the time each took.

    python examples/07_backend_switch.py          # a few ResNet-20 steps per backend
    python examples/07_backend_switch.py --step   # pause between the steps
"""
import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy

import tinyres
import tinyres.functional as F
from tinyres import backend, dispatch, nn
from tinyres.models import resnet20
from tinyres.optim import SGD

from lesson import Lesson, table


def options(parser):
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per backend")
    parser.add_argument("--tiny-step-json", action="store_true",
                        help="(internal) run the tiny step here and print its results as JSON")


def tiny_model():
    """Every op with a GPU kernel, at sizes the CUDA simulator runs in seconds."""
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(4, 4, 3, padding=1, bias=False),
                         nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 3))


def tiny_batch():
    rng = numpy.random.default_rng(1)
    return (rng.standard_normal((2, 2, 4, 4)).astype(numpy.float32),
            numpy.array([0, 2], dtype=numpy.int64))


def one_step(make_model, images, labels, device, seed=0):
    """Build the model from `seed` on `device`, take one SGD step; return what it computed (as
    host arrays) and the seconds the step took."""
    tinyres.manual_seed(seed)
    model = make_model().to(device)
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = tinyres.tensor(images, device=device)
    y = tinyres.tensor(labels, device=device)
    start = time.perf_counter()
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    seconds = time.perf_counter() - start
    params = list(model.parameters())
    return {"loss": loss.item(), "logits": logits.numpy(),
            "first weight grad": backend.to_device(params[0].grad, "cpu"),
            "last weight grad": backend.to_device(params[-2].grad, "cpu"),
            "updated weights": numpy.concatenate([p.numpy().ravel() for p in params])}, seconds


def compare(reference, other):
    """|loss difference|, and for arrays max |a - b| / max |a| (relative to the array's scale:
    an element that is nearly zero does not blow the ratio up)."""
    def scaled(a, b):
        a, b = numpy.asarray(a, numpy.float64), numpy.asarray(b, numpy.float64)
        return float(numpy.abs(a - b).max() / max(numpy.abs(a).max(), 1e-30))
    return {key: (abs(reference[key] - other[key]) if key == "loss"
                  else scaled(reference[key], other[key])) for key in reference}


lesson = Lesson(__file__, __doc__, options)
args = lesson.args

if args.tiny_step_json:                      # the child process of the cudasim step
    images, labels = tiny_batch()
    result, seconds = one_step(tiny_model, images, labels, backend.default_device())
    print(json.dumps({"backend": tinyres.get_backend(), "seconds": seconds,
                      **{k: numpy.asarray(v).tolist() for k, v in result.items()}}))
    sys.exit(0)

# -------------------------------------------------------------------------------------------
lesson.step("what this machine has")
dispatch.set_kernels("fast")                 # is there a Numba twin for the CPU?
fast_cpu = dispatch.kernel_for("im2col", numpy.zeros((1, 1, 3, 3), numpy.float32)) is not None
simulator = all(importlib.util.find_spec(m) is not None for m in ("numba", "numba_cuda"))
try:
    backend.array_module("cuda")
    gpu = True
except backend.BackendError as err:
    gpu, why = False, str(err).split(". ")[0].split("; ")[0]
table(["backend / kernels", "available"],
      [("numpy, reference kernels", "yes"),
       ("numpy, fast kernels (Numba)", "yes" if fast_cpu else "no (tinyres.kernels.cpu or Numba "
                                                               "missing)"),
       ("cupy (GPU)", "yes" if gpu else f"no: {why}"),
       ("leakproof (pretend device)", "yes"),
       ("cudasim (GPU kernels, simulated)", "yes" if simulator else "no (numba-cuda missing)")])

# -------------------------------------------------------------------------------------------
batch = lesson.pick(32, 4)
make = tiny_model if lesson.smoke else resnet20
lesson.step(f"one training step of {'a tiny net' if lesson.smoke else 'ResNet-20'} on "
            f"{batch} images, on each backend")
rng = numpy.random.default_rng(lesson.seed)
shape = (batch, 2, 4, 4) if lesson.smoke else (batch, 3, 32, 32)
images = rng.standard_normal(shape).astype(numpy.float32)
labels = rng.integers(0, 3 if lesson.smoke else 10, batch)

runs = [("numpy, reference", "cpu", "reference")]
if fast_cpu:
    runs.append(("numpy, fast (Numba)", "cpu", "fast"))
runs.append(("cupy (GPU)", "cuda", "fast") if gpu else ("leakproof", "leakproof", "reference"))
results, times = {}, {}
for label, device, kernels in runs:
    dispatch.set_kernels(kernels)
    one_step(make, images, labels, device)            # a first step: compiles, warms caches
    steps = [one_step(make, images, labels, device) for _ in range(lesson.pick(args.repeats, 1))]
    results[label] = steps[-1][0]
    times[label] = sorted(s for _, s in steps)[len(steps) // 2]
    print(f"{label:20s} loss {results[label]['loss']:.6f}   step {1e3 * times[label]:8.1f} ms "
          f"(median of {len(steps)})")
dispatch.set_kernels("fast")

# -------------------------------------------------------------------------------------------
lesson.step("are the results the same?")
reference = results["numpy, reference"]
others = list(results)[1:]
diffs = {label: compare(reference, results[label]) for label in others}
print("difference from 'numpy, reference' (loss: absolute; arrays: max |difference| / max |value|)")
table(["quantity"] + others, [(key,) + tuple(diffs[label][key] for label in others)
                              for key in reference])
print("float32 everywhere: kernels that add in another order differ by float32 round-off")
print("(float32 keeps ~7 digits); the leak-proof device runs the very same NumPy code, so it")
print("agrees exactly, and proves that no op called a host NumPy function on device data.")
fig, ax = lesson.figure(figsize=(6, 2.6))
ax.barh(list(times), [1e3 * t for t in times.values()])
ax.set_xlabel("milliseconds per training step")
ax.set_title(f"one step, {'tiny net' if lesson.smoke else 'ResNet-20'}, batch {batch}")
lesson.save(fig, "step_times.png")

# -------------------------------------------------------------------------------------------
if not gpu and simulator:
    lesson.step("the GPU kernels without a GPU: Numba's CUDA simulator, in a subprocess")
    print("The simulator is chosen when numba.cuda is first imported, so it needs a process of")
    print("its own: TINYRES_BACKEND=cudasim. It runs every GPU thread as a Python thread, so the")
    print("step is a tiny one: (2, 2, 4, 4) images through conv, BN, ReLU, max pool, conv, BN,")
    print("ReLU, global average pool and a linear layer: every op that has a GPU kernel.")
    env = dict(os.environ, TINYRES_BACKEND="cudasim", NUMBA_ENABLE_CUDASIM="1")
    env.pop("TINYRES_KERNELS", None)
    start = time.perf_counter()
    child = subprocess.run([sys.executable, __file__, "--tiny-step-json"], env=env,
                           capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - start
    if child.returncode != 0:
        print(f"the cudasim step failed (exit {child.returncode}):\n{child.stderr[-2000:]}")
        sys.exit(1)
    simulated = json.loads(child.stdout.strip().splitlines()[-1])
    dispatch.set_kernels("reference")
    tiny_images, tiny_labels = tiny_batch()
    numpy_result, numpy_seconds = one_step(tiny_model, tiny_images, tiny_labels, "cpu")
    dispatch.set_kernels("fast")
    sim = {k: (v if k == "loss" else numpy.asarray(v)) for k, v in simulated.items()
           if k in numpy_result}
    print(f"backend in the subprocess: {simulated['backend']}; the step took "
          f"{simulated['seconds']:.2f} s simulated ({wall:.1f} s with the process start) vs "
          f"{1e3 * numpy_seconds:.1f} ms on numpy")
    table(["cudasim vs numpy", "difference"],
          [(k, v) for k, v in compare(numpy_result, sim).items()])
    print("Same numbers: the hand-written GPU kernels compute what the readable code computes.")
    print("On a machine with a GPU, set TINYRES_BACKEND=cupy (or tinyres.set_backend('cupy')).")
