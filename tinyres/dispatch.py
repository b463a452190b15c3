"""Floor 2: the one door from ops to fast kernels.

Each op's readable NumPy version lives in its `functional` file. Some have a fast twin in
`kernels/` (installed as `tinyres.kernels`): a Numba CPU kernel in `tinyres.kernels.cpu`, a
numba-cuda GPU kernel in `tinyres.kernels.gpu`, under the *same name and signature*. Marking the
reference with ``@fast_twin("im2col")`` lets this door pick, at each call:

    data on a GPU (CuPy), or the 'cudasim' backend  -> the GPU kernel, if there is one
    data on the CPU and kernels set to 'fast'       -> the Numba kernel, if Numba imports
    otherwise (or no twin exists)                   -> the readable reference

``tinyres.set_kernels("reference")`` (or TINYRES_KERNELS=reference) forces the readable path on
the CPU, which is how a learner steps through the NumPy code and how tests hold the twins equal.
"""
import functools
import importlib
import os

from tinyres import backend

KERNEL_CHOICES = ("fast", "reference")
_kernels = None


def set_kernels(choice):
    """'fast' (Numba kernels on the CPU where Numba imports) or 'reference' (plain NumPy)."""
    global _kernels
    if choice not in KERNEL_CHOICES:
        raise ValueError(f"unknown kernels {choice!r}; expected one of {', '.join(KERNEL_CHOICES)}")
    _kernels = choice


def get_kernels():
    if _kernels is None:
        set_kernels(os.environ.get("TINYRES_KERNELS", "fast") or "fast")
    return _kernels


@functools.lru_cache(maxsize=None)
def _kernel_module(kind):
    """tinyres.kernels.cpu or .gpu, or None where its compiler (numba / numba-cuda) is missing."""
    try:
        return importlib.import_module(f"tinyres.kernels.{kind}")
    except ImportError:
        return None


def kernel_for(name, array):
    """The fast twin of `name` for this array under the current settings, or None."""
    device = backend.device_of(array)
    if device == "cuda" or (device == "cpu" and backend.get_backend() == "cudasim"):
        module = _kernel_module("gpu")
    elif device == "cpu" and get_kernels() == "fast":
        module = _kernel_module("cpu")
    else:
        module = None
    return getattr(module, name, None) if module is not None else None


def fast_twin(name):
    """Mark a readable reference function whose fast twin in kernels/ is called `name`."""
    def decorate(reference):
        @functools.wraps(reference)
        def route(array, *args, **kwargs):
            kernel = kernel_for(name, array)
            return (kernel or reference)(array, *args, **kwargs)
        route.reference = reference          # tests call both and hold them equal
        return route
    return decorate
