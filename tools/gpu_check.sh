#!/usr/bin/env bash
# The GPU check: everything tinyres can say about a real NVIDIA GPU, in one run of under 8
# minutes, on a machine where CuPy, numba-cuda, PyTorch (CUDA), pytest and hypothesis are already
# installed and nothing can be downloaded. Run it from a checkout:
#
#     tools/gpu_check.sh LOGDIR            (PYTHON=/path/to/python to choose the interpreter)
#
# Stages, each under its own time limit (so that one hang does not eat the others' time), each
# logging to LOGDIR/NN-stage.log; a summary at the end (also LOGDIR/summary.txt):
#
#   environment  versions, nvidia-smi, whether CuPy and PyTorch see a GPU, numba.cuda's mode
#   install      tinyres from this checkout with --no-deps (no index, no build isolation)
#   gpu-suite    tests/cudasim on the device: the numba-cuda kernels launched on the GPU on
#                CuPy arrays (TINYRES_BACKEND=cupy, the simulator off), ResNet-8 included
#   ptx          tests/test_gpu.py's PTX compiles for sm_75 and sm_90 (no GPU needed)
#   gradcheck    `tinyres gradcheck --backend cupy`: every registered op, float64, on the GPU
#   train        a few ResNet-20 training steps on cupy against the numpy path, same start
#   bench        `tinyres bench --paths cupy torch-cuda` (ResNet-20, batch 128)
#
# Where no GPU is visible the GPU stages are skipped, each with a line saying so: on a machine
# without one the script is a dry run of the others. Exit status: 0 when no stage failed, 1 when
# one failed or ran out of time, 2 for a wrong call.
set -uo pipefail

usage="usage: tools/gpu_check.sh LOGDIR   (a new or empty folder for the logs)"
if [[ $# -ne 1 || "$1" == -* ]]; then
    echo "gpu_check.sh: expected one argument, the folder for the logs; $usage" >&2
    exit 2
fi
logdir=$1
if [[ -e "$logdir" && ! -d "$logdir" ]]; then
    echo "gpu_check.sh: $logdir exists and is not a folder; give a new or empty folder" >&2
    exit 2
fi
if [[ -d "$logdir" && -n "$(ls -A "$logdir")" ]]; then
    echo "gpu_check.sh: $logdir already holds files (an earlier run's logs?); give a new or" \
         "empty folder, so that nothing is overwritten" >&2
    exit 2
fi
mkdir -p "$logdir" || { echo "gpu_check.sh: cannot make the folder $logdir" >&2; exit 2; }
logdir=$(cd "$logdir" && pwd)
cd "$(dirname "$0")/.." || exit 2
export python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null; then
    echo "gpu_check.sh: no Python interpreter '$python'; set PYTHON=/path/to/python" >&2
    exit 2
fi

# The whole run stays under 8 minutes: each stage gets its own limit, cut to what is left.
total_limit=470
start=$SECONDS
results=()
failed=0
number=0

# stage NAME LIMIT COMMAND...: run COMMAND under `timeout`, its output in LOGDIR/NN-NAME.log.
stage() {
    local name=$1 limit=$2
    shift 2
    number=$((number + 1))
    local log
    log=$(printf "%s/%02d-%s.log" "$logdir" "$number" "$name")
    local left=$((total_limit - (SECONDS - start)))
    if ((left < limit)); then limit=$left; fi
    if ((limit < 5)); then
        echo "skipped: the run's $total_limit s were spent before this stage" > "$log"
        results+=("$(printf "%-12s %-8s %5s  %s" "$name" "TIMEOUT" "-" "not started: no time left")")
        failed=1
        return
    fi
    echo "== $name (at most ${limit} s) -> $log"
    local began=$SECONDS status
    if [[ $(type -t "$1") == function ]]; then    # timeout runs programs: the function in a bash
        set -- bash -c "$(declare -f "$1"); $1"
    fi
    timeout --kill-after=5 "$limit" "$@" > "$log" 2>&1
    status=$?
    local took=$((SECONDS - began)) verdict
    case $status in
        0) verdict=pass ;;
        124|137) verdict=TIMEOUT; failed=1 ;;
        *) verdict=FAIL; failed=1 ;;
    esac
    results+=("$(printf "%-12s %-8s %4ss  %s" "$name" "$verdict" "$took" "$(tail -n 1 "$log")")")
}

# skip NAME REASON: a GPU stage that cannot run here, said in its log and in the summary.
skip() {
    number=$((number + 1))
    local log
    log=$(printf "%s/%02d-%s.log" "$logdir" "$number" "$1")
    echo "skipped: $2" > "$log"
    echo "== $1 skipped: $2"
    results+=("$(printf "%-12s %-8s %5s  %s" "$1" "skipped" "-" "$2")")
}

# The simulator must be off in every stage: numba.cuda reads the switch once, at import.
unset NUMBA_ENABLE_CUDASIM
export TINYRES_BACKEND=numpy

# shellcheck disable=SC2329  # (run by `stage`, through bash -c)
environment() {
    echo "checkout: $(git rev-parse HEAD 2>/dev/null || echo 'not a git checkout')"
    echo "machine: $(uname -a)"
    grep -m1 "model name" /proc/cpuinfo 2>/dev/null
    if command -v nvidia-smi >/dev/null; then nvidia-smi; else echo "nvidia-smi: not found"; fi
    "$python" - <<'EOF'
import importlib, sys
print("python", sys.version.split()[0], sys.executable)
for name in ("numpy", "numba", "numba_cuda", "cupy", "torch", "pytest", "hypothesis"):
    try:
        module = importlib.import_module(name)
        print(f"{name:<11} {getattr(module, '__version__', '?')}")
    except Exception as error:
        print(f"{name:<11} not importable: {type(error).__name__}: {error}")
try:
    import cupy
    count = cupy.cuda.runtime.getDeviceCount()
    names = [cupy.cuda.runtime.getDeviceProperties(i)["name"].decode() for i in range(count)]
    print("cupy sees", count, "GPU(s):", ", ".join(names))
except Exception as error:
    print("cupy sees no GPU:", type(error).__name__, error)
try:
    import torch
    print("torch.cuda.is_available():", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
except Exception as error:
    print("torch: not importable:", error)
try:
    import numba
    from numba import cuda
    print("numba.cuda simulator:", bool(numba.config.ENABLE_CUDASIM),
          "| GPU available to numba.cuda:", cuda.is_available())
except Exception as error:
    print("numba.cuda: not importable:", error)
EOF
}

gpu_reason() {
    # Empty when CuPy sees a GPU and numba.cuda runs for real; else why not, in one line.
    "$python" - <<'EOF' 2>/dev/null || echo "CuPy or numba.cuda does not import"
try:
    import cupy
    if cupy.cuda.runtime.getDeviceCount() < 1:
        raise RuntimeError("no device")
except Exception as error:
    print(f"no GPU visible to CuPy ({type(error).__name__}: {error})".splitlines()[0])
    raise SystemExit
import numba
from numba import cuda
if numba.config.ENABLE_CUDASIM or not cuda.is_available():
    print("numba.cuda cannot reach the GPU (simulator on, or no driver)")
EOF
}

# shellcheck disable=SC2329  # (run by `stage`, through bash -c)
train_check() {
    "$python" - <<'EOF'
"""A few ResNet-20 training steps (batch 32, SGD with momentum, a small learning rate: the
paths are compared, not the training) on the cupy backend against the numpy path (the fast CPU
kernels), from the same weights on the same batches: the losses of every step and the weights
after the last agree to float32 tolerance, or this fails."""
import time
import numpy
import tinyres
import tinyres.functional as F
from tinyres import dispatch
from tinyres.backend import default_device, to_device
from tinyres.models.cifar_resnet import cifar_resnet
from tinyres.optim import SGD

STEPS, BATCH = 3, 32
rng = numpy.random.default_rng(0)
batches = [(rng.standard_normal((BATCH, 3, 32, 32)).astype(numpy.float32),
            rng.integers(0, 10, BATCH)) for _ in range(STEPS)]
tinyres.set_backend("numpy")
tinyres.manual_seed(0)
initial = cifar_resnet(20).state_dict()
results = {}
for backend in ("numpy", "cupy"):
    tinyres.set_backend(backend)
    dispatch.set_kernels("fast")
    model = cifar_resnet(20)
    model.to(default_device())
    model.load_state_dict(initial)
    optimizer = SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    losses, began = [], time.perf_counter()
    for x, target in batches:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(tinyres.tensor(x)), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    took = time.perf_counter() - began
    weights = {name: to_device(value, "cpu") for name, value in model.state_dict().items()}
    results[backend] = losses, weights
    print(f"{backend:<6} losses {' '.join(f'{v:.6f}' for v in losses)}  ({took:.2f} s, "
          "the first step compiles)")
(losses, weights), (losses_ref, weights_ref) = results["cupy"], results["numpy"]
loss_error = max(abs(a - b) / abs(b) for a, b in zip(losses, losses_ref))
# over the model's largest weight: a weight near 0 (a batch-norm bias after a few steps) differs
# by float32 rounding that is large beside itself and small beside the model's weights
floats = [k for k, w in weights_ref.items() if w.dtype.kind == "f"]
largest = max(float(numpy.abs(weights_ref[k]).max()) for k in floats)
weight_error = max(float(numpy.abs(weights[k] - weights_ref[k]).max()) for k in floats) / largest
print(f"largest relative loss difference {loss_error:.2e}; largest weight difference, over the "
      f"model's largest weight, {weight_error:.2e}")
if loss_error > 1e-3 or weight_error > 1e-3:
    raise SystemExit(f"cupy and numpy differ by more than 1e-3 (loss {loss_error:.2e}, "
                     f"weights {weight_error:.2e})")
print(f"cupy agrees with numpy over {STEPS} ResNet-20 steps: loss {loss_error:.1e}, weights "
      f"{weight_error:.1e}")
EOF
}

echo "GPU check of tinyres, logs under $logdir"
stage environment 30 environment
stage install 45 "$python" -m pip install --no-deps --no-build-isolation --no-index \
    --disable-pip-version-check -e .
reason=$(gpu_reason)
if [[ -z "$reason" ]]; then
    stage gpu-suite 150 env TINYRES_BACKEND=cupy TINYRES_SLOW=1 "$python" -m pytest \
        tests/cudasim -q -rs -p no:cacheprovider -W ignore::DeprecationWarning
else
    skip gpu-suite "$reason"
fi
stage ptx 45 "$python" -m pytest tests/test_gpu.py -q -rs -p no:cacheprovider \
    -k "ptx or float64 or signature"
if [[ -z "$reason" ]]; then
    stage gradcheck 75 "$python" -m tinyres gradcheck --backend cupy
    stage train 45 train_check
    stage bench 80 "$python" -m tinyres bench --paths cupy torch-cuda --steps 5 --warmup 2 \
        --no-memory
else
    for name in gradcheck train bench; do skip "$name" "$reason"; done
fi

{
    echo "tinyres GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ), $((SECONDS - start)) s in all"
    echo "stage        result   time  last line of its log"
    printf "%s\n" "${results[@]}"
    if ((failed)); then echo "some stage FAILED or ran out of time: read its log"; fi
    if [[ -n "$reason" ]]; then echo "GPU stages skipped: $reason"; fi
} | tee "$logdir/summary.txt"
exit $failed
