"""What this process runs on, beside the backend and the dispatch door: the TINYRES_* variables
checked before any work starts, the engine options (--backend, --kernels, --threads) applied
before anything makes a tensor, and the versions and pieces `tinyres info` shows.
"""
import argparse
import importlib
import os
import platform
import sys
from pathlib import Path

import numpy

import tinyres
from tinyres import backend, dispatch
from tinyres.errors import UserError
from tinyres.options import number_in, thread_count


def check_environment():
    """The TINYRES_* variables, checked before any work starts (a typo in one would otherwise
    surface at the first convolution of a long run)."""
    choices = {"TINYRES_KERNELS": dispatch.KERNEL_CHOICES,
               "TINYRES_BACKEND": backend.BACKENDS, "TINYRES_DEBUG": ("0", "1")}
    for name, allowed in choices.items():
        value = os.environ.get(name, "")
        if value and value not in allowed:
            raise UserError(f"environment variable {name}={value!r}: expected one of "
                            f"{', '.join(allowed)} (or unset it)")
    checks = {"TINYRES_NUM_THREADS": thread_count,
              "TINYRES_COLLECTIVE_TIMEOUT": number_in(0, low_open=True)}
    for name, parse in checks.items():
        value = os.environ.get(name, "")
        if value:
            try:
                parse(value)
            except argparse.ArgumentTypeError as err:
                raise UserError(f"environment variable {name}={value!r}: {err} (or unset "
                                f"it)") from None


def set_engine(args):
    """Apply --backend, --kernels and --threads before anything makes a tensor."""
    if getattr(args, "backend", None):
        tinyres.set_backend(args.backend)
    if getattr(args, "kernels", None):
        dispatch.set_kernels(args.kernels)
    if getattr(args, "threads", None) is not None:
        tinyres.set_num_threads(args.threads)
    else:                                   # (check_environment has vetted TINYRES_NUM_THREADS)
        tinyres.get_num_threads()           # applies TINYRES_NUM_THREADS now, before any op


def version_of(module_name):
    try:
        module = importlib.import_module(module_name)
    except Exception as err:                              # absent, or present but broken
        return f"not available ({type(err).__name__})"
    return getattr(module, "__version__", "installed")


def gpu_visible():
    try:
        import cupy
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:
        return f"no ({type(err).__name__}: {err})" if "cupy" in sys.modules else "no (no CuPy)"
    return f"yes ({count} device{'s' if count != 1 else ''})" if count else "no"


def student_copy():
    """tinyres.student_copy, which `tinyres assignment make` writes into a course copy; else
    None."""
    try:
        from tinyres import student_copy
    except ImportError:
        return None
    return student_copy


def info_rows():
    """`tinyres info`'s table: (name, value) rows of versions, backend, kernels, GPU pieces."""
    copy = student_copy()
    kernels = dispatch.get_kernels()
    if copy and copy.KERNELS_OFF:
        kernels += f" (not in this copy: {', '.join(copy.KERNELS_OFF)}; the readable code runs)"
    return [
        ("tinyres", tinyres.__version__),
        *([("copy", f"{copy.describe()}; at {Path(tinyres.__file__).parent.parent}")]
          if copy else []),
        ("python", platform.python_version()),
        ("backend", tinyres.get_backend()),
        ("kernels", kernels),
        ("numpy", numpy.__version__),
        ("numba (CPU kernels)", version_of("numba")),
        ("numba-cuda (GPU kernels)", version_of("numba_cuda")),
        ("cupy", version_of("cupy")),
        ("GPU visible", gpu_visible()),
    ]
