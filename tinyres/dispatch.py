"""Floor 2: the one door from ops to fast kernels.

Each op's readable NumPy version lives in its `functional` file. Some have a fast twin in
`kernels/` (installed as `tinyres.kernels`): a Numba CPU kernel in `tinyres.kernels.cpu`, a
numba-cuda GPU kernel in `tinyres.kernels.gpu`, under the *same name and signature*. Marking the
reference with ``@fast_twin("im2col")`` lets this door pick, at each call:

    data on a GPU (CuPy), or the 'cudasim' backend  -> the GPU kernel, if there is one
    data on the CPU and kernels set to 'fast'       -> the Numba kernel, if Numba imports
    otherwise (or no twin exists)                   -> the readable reference

One contract holds at this door: each kernel module declares the data types it takes (its
DTYPES, float32 and float64 today), and data of any other type (float16, say) goes to the
readable reference, on every path. So an op gives the same answer, or the same error, whichever
path runs it (tests/test_dispatch.py holds every op to that on every dtype).

``tinyres.set_kernels("reference")`` (or TINYRES_KERNELS=reference) forces the readable path on
the CPU, which is how tests hold the twins equal; ``with tinyres.reference_kernels():`` does so
for one block (the twin of ``no_grad``), which is how a learner steps through the NumPy code: a
breakpoint in functional/conv.py's conv2d_backward fires inside the block, never outside it
while the fast kernels run.

The other knob of the fast path is its thread count. The readable path runs on the calling
thread (its matrix products in BLAS, which has threads of its own); the CPU kernels share a job
among Numba's thread count (kernels/cpu/threads.py). ``tinyres.set_num_threads(n)`` (or
TINYRES_NUM_THREADS, read the first time an op passes this door) sets both, as
``torch.set_num_threads`` does.
"""
import contextlib
import functools
import importlib
import os
import sys

from tinyres import backend
from tinyres.kernels.blas import blas_threads, set_blas_threads

KERNEL_CHOICES = ("fast", "reference")
TWINS = {}                              # name -> the routed reference, every op at this door
_kernels = None
_threads_from_environment = True        # TINYRES_NUM_THREADS not yet read


def set_kernels(choice):
    """'fast' (Numba kernels on the CPU where Numba imports) or 'reference' (plain NumPy)."""
    global _kernels
    if choice not in KERNEL_CHOICES:
        raise ValueError(f"unknown kernels {choice!r}; expected one of {', '.join(KERNEL_CHOICES)}")
    _kernels = choice


@contextlib.contextmanager
def reference_kernels():
    """Within this block every op on the CPU runs its readable reference (as
    ``set_kernels("reference")``), the setting before it restored after."""
    global _kernels
    previous = get_kernels()
    _kernels = "reference"
    try:
        yield
    finally:
        _kernels = previous


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


def fast_kernels_available():
    """Whether the fast CPU kernels can run here (Numba imports). Where they cannot, every op
    takes the readable path whatever set_kernels says; the benchmark asks to know its paths."""
    return _kernel_module("cpu") is not None


def set_num_threads(count):
    """Use `count` threads (>= 1) from now on: for BLAS's matrix products and for the fast
    kernels (Numba's thread count, at most NUMBA_NUM_THREADS). Returns the count."""
    global _threads_from_environment
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"set_num_threads: expected a positive int, got {count!r}")
    _threads_from_environment = False    # an explicit call wins over the environment
    set_blas_threads(count)
    if fast_kernels_available():
        import numba
        numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
    return count


def get_num_threads():
    """How many threads the fast kernels share a job among (BLAS's count where Numba is
    missing)."""
    _read_thread_setting()
    if fast_kernels_available():
        import numba
        return numba.get_num_threads()
    return blas_threads()


def _read_thread_setting():
    """Apply TINYRES_NUM_THREADS, once, unless set_num_threads was called first."""
    global _threads_from_environment
    if not _threads_from_environment:
        return
    _threads_from_environment = False
    setting = os.environ.get("TINYRES_NUM_THREADS", "")
    if setting:
        if not setting.isdigit() or int(setting) < 1:
            raise ValueError(f"TINYRES_NUM_THREADS: expected a positive whole number, "
                             f"got {setting!r}")
        set_num_threads(int(setting))


def kernel_for(name, array):
    """The fast twin of `name` for this array under the current settings and its dtype, or
    None (then the reference runs)."""
    _read_thread_setting()
    device = backend.device_of(array)
    if device == "cuda" or (device == "cpu" and backend.get_backend() == "cudasim"):
        module = _kernel_module("gpu")
    elif device == "cpu" and get_kernels() == "fast":
        module = _kernel_module("cpu")
    else:
        return None
    kernel = getattr(module, name, None) if module is not None else None
    if kernel is None or array.dtype not in sys.modules[kernel.__module__].DTYPES:
        return None                          # no twin, or data of a type it does not take
    return kernel


def fast_twin(name):
    """Mark a readable reference function whose fast twin in kernels/ is called `name`."""
    def decorate(reference):
        @functools.wraps(reference)
        def route(array, *args, **kwargs):
            kernel = kernel_for(name, array)
            return (kernel or reference)(array, *args, **kwargs)
        route.reference = reference          # tests call both and hold them equal
        TWINS[name] = route
        return route
    return decorate
