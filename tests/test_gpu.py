"""The GPU path, checked on a machine without a GPU (see docs/gpu.md).

Three checks, each in a process of its own, because Numba decides between a real GPU and its CUDA
simulator once per process (this pytest process never imports numba.cuda at all):

  1. the GPU test suite (tests/cudasim) in Numba's CUDA simulator: every kernel against its
     NumPy twin, the ops and gradient checks on the 'cudasim' backend;
  2. every kernel compiled to PTX for real GPUs (compute capability 7.5 and 9.0) with the exact
     float32 argument types it is launched with (and for float64 on 7.5): this catches what the
     simulator lets through (type errors, Python that does not compile for a GPU);
  3. on a machine with CuPy and a GPU, the same suite as 1 on real CuPy arrays.
"""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow      # every check here runs a process of its own (minutes)

ROOT = Path(__file__).resolve().parents[1]
CCS = [(7, 5), (9, 0)]          # Turing (T4: Colab's free GPU) and Hopper (H100)
# float32 (training) for both; float64 (the gradient checks on a GPU) for one
COMPILES = [(cc, "float32") for cc in CCS] + [((7, 5), "float64")]


def environment(**changes):
    """This process's environment without the simulator switch, plus `changes`."""
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_ENABLE_CUDASIM",
                                                            "TINYRES_BACKEND")}
    env.update(changes)
    return env


def need_numba_cuda():
    if importlib.util.find_spec("numba") is None or importlib.util.find_spec("numba_cuda") is None:
        pytest.skip("the GPU kernels need numba and numba-cuda: pip install -e '.[dev]'")


def run_gpu_suite(env):
    process = subprocess.run([sys.executable, "-m", "pytest", "tests/cudasim", "-q",
                              "-W", "ignore::DeprecationWarning"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    if process.returncode != 0:
        pytest.fail(f"the GPU suite failed (TINYRES_BACKEND={env['TINYRES_BACKEND']}):\n"
                    f"{process.stdout}\n{process.stderr}", pytrace=False)
    print(process.stdout)


# ----------------------------------------------------------------------------------------------
# 1. the simulator
# ----------------------------------------------------------------------------------------------
@pytest.mark.cudasim
def test_gpu_suite_in_the_cuda_simulator():
    need_numba_cuda()
    # TINYRES_SLOW=1: CI also runs ResNet-8 forward/backward in the simulator (about 2-3 minutes)
    run_gpu_suite(environment(NUMBA_ENABLE_CUDASIM="1", TINYRES_BACKEND="cudasim",
                              TINYRES_SLOW="1"))


# ----------------------------------------------------------------------------------------------
# 2. PTX for real GPUs
# ----------------------------------------------------------------------------------------------
PTX_SCRIPT = r"""
import json, sys
report = {"missing": [], "results": {}, "without_signature": [], "float64": []}
from numba import cuda, float32, float64, types
try:
    from numba.cuda.cudadrv import nvvm
    nvvm.NVVM()
except Exception as error:
    report["missing"].append(
        "NVVM (libnvvm, from a CUDA toolkit's nvvm/ folder or the pip package "
        f"'cuda-toolkit[nvvm]'; set CUDA_HOME to the toolkit): {error}")
try:
    from numba.cuda.cudadrv import nvrtc
    supported = nvrtc.get_supported_ccs()
except Exception as error:
    report["missing"].append(f"NVRTC (pip install nvidia-cuda-nvrtc): {error}")
if report["missing"]:
    print(json.dumps(report))
    sys.exit(0)

def as_float64(t):
    # the same signature for float64 data (the gradient checks' type)
    if isinstance(t, types.Array) and t.dtype == float32:
        return types.Array(float64, t.ndim, t.layout)
    return float64 if t == float32 else t

import tinyres.kernels.gpu as gpu
from numba.cuda.dispatcher import CUDADispatcher
for kernel, signature in gpu.FLOAT32_SIGNATURES.items():
    for cc, dtype in COMPILES:
        key = f"{kernel.__name__} sm_{cc[0]}{cc[1]} {dtype}"
        if tuple(cc) not in supported:
            report["results"][key] = f"this NVRTC cannot target sm_{cc[0]}{cc[1]}"
            continue
        if dtype == "float64":
            signature = tuple(as_float64(t) for t in signature)
        try:
            ptx, _ = cuda.compile_ptx(kernel.py_func, signature, cc=tuple(cc))
        except Exception as error:
            report["results"][key] = f"{type(error).__name__}: {error}"
            continue
        target = f".target sm_{cc[0]}{cc[1]}"
        report["results"][key] = "ok" if target in ptx else f"the PTX has no '{target}' line"
        if dtype == "float32" and ".f64" in ptx and kernel.__name__ not in report["float64"]:
            report["float64"].append(kernel.__name__)
for module in (gpu.conv, gpu.pooling, gpu.batchnorm):
    for name, value in vars(module).items():
        if (isinstance(value, CUDADispatcher) and not value.targetoptions.get("device")
                and value not in gpu.FLOAT32_SIGNATURES):
            report["without_signature"].append(f"{module.__name__}.{name}")
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def ptx_report():
    """Compile every kernel for every CC in one fresh process (real-GPU mode, no GPU needed)."""
    need_numba_cuda()
    env = environment()
    if "CUDA_HOME" not in env and Path("/usr/local/cuda/nvvm").is_dir():
        env["CUDA_HOME"] = "/usr/local/cuda"
    process = subprocess.run([sys.executable, "-c", f"COMPILES = {COMPILES!r}\n" + PTX_SCRIPT],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if process.returncode != 0:
        pytest.fail(f"the PTX compile process failed:\n{process.stdout}\n{process.stderr}",
                    pytrace=False)
    report = json.loads(process.stdout.strip().splitlines()[-1])
    if report["missing"]:
        pytest.skip("cannot compile PTX here; missing: " + "; ".join(report["missing"]))
    return report


@pytest.mark.parametrize("cc, dtype", COMPILES,
                         ids=[f"sm_{a}{b}-{dtype}" for (a, b), dtype in COMPILES])
def test_every_kernel_compiles_to_ptx(ptx_report, cc, dtype):
    suffix = f" sm_{cc[0]}{cc[1]} {dtype}"
    results = {k[:-len(suffix)]: v for k, v in ptx_report["results"].items() if k.endswith(suffix)}
    assert results, "no kernels were compiled"
    failed = {name: result for name, result in results.items() if result != "ok"}
    assert not failed, "\n".join(f"{name}: {result}" for name, result in failed.items())


def test_only_the_reductions_compute_in_float64(ptx_report):
    """A bare Python float (2.0 rather than float32(2.0)) makes Numba compute in float64, many
    times slower on most GPUs; the PTX shows it. Only the batch-norm sums use float64, on
    purpose (kernels/gpu/batchnorm.py explains why)."""
    assert set(ptx_report["float64"]) == {"channel_sums_kernel"}


def test_every_kernel_declares_its_float32_signature(ptx_report):
    assert not ptx_report["without_signature"], (
        f"kernels missing from FLOAT32_SIGNATURES (so never compiled to PTX in CI): "
        f"{ptx_report['without_signature']}")


# ----------------------------------------------------------------------------------------------
# 3. a real GPU
# ----------------------------------------------------------------------------------------------
@pytest.mark.cupy
def test_gpu_suite_on_a_real_gpu_with_cupy():
    need_numba_cuda()
    try:
        import cupy
    except Exception as error:           # not installed, or its CUDA libraries are broken
        pytest.skip(f"CuPy is not importable ({error}); on a GPU machine: "
                    "pip install -e '.[cuda12]' (or '.[cuda13]')")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:
        pytest.skip(f"CuPy is installed but no GPU is visible ({error})")
    if count == 0:
        pytest.skip("CuPy is installed but no GPU is visible")
    run_gpu_suite(environment(TINYRES_BACKEND="cupy"))
