"""How the CPU kernels use several cores: worker threads that share out the parts of a job.

Numba can spread a loop over threads itself (``@njit(parallel=True)`` with ``prange``), and
OpenBLAS spreads each matrix product over its own threads. A convolution alternates the two
(unfold, GEMM, copy, unfold, GEMM, ...), and on a 2-core machine that was a disaster: each
pool's threads keep spinning for a while after their part is done, waiting for more, on the very
cores the other pool needs next, and every hand-over waits for the slowest thread (see
docs/performance.md for the measurements).

So the kernels are plain single-threaded Numba functions that release the GIL
(``@njit(nogil=True, cache=True)``), BLAS is asked for one thread while they run, and a job is
shared out here: it is cut into parts (a chunk of images, a few channels), and T threads (this
one and T-1 helpers) each take the next part not yet taken, run it, and take another, until none
is left. A thread that the operating system holds back simply takes fewer parts. A job hands work
over once, at its end, instead of once per kernel.

The thread count is Numba's (``numba.set_num_threads``, or the NUMBA_NUM_THREADS environment
variable; all cores by default). Where no OpenBLAS can be told to use one thread (NumPy built on
MKL or Accelerate), the job runs on this thread alone and BLAS keeps its own threads; with one
thread, BLAS gets one too (its threads would only wait for each other on these small products).
This module never imports tinyres.
"""
import contextlib
import ctypes
import glob
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy

_pool = None                   # the helper threads, made on first use
_pool_size = 0
_pool_lock = threading.Lock()


def num_threads():
    """How many threads a job is shared among: Numba's setting."""
    return numba.get_num_threads()


def _helpers(count):
    """A pool of at least `count` helper threads (kept for the life of the process)."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool_size < count:
            _pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="tinyres-kernels")
            _pool_size = count
        return _pool


def share(count, make_worker):
    """Run worker(i) for every part i in range(count), on up to num_threads() threads.

    ``make_worker()`` is called once per thread and returns that thread's `worker`, so each
    thread can keep its own scratch buffers. Parts are taken in order, each by the first thread
    free; a part must not depend on another. BLAS runs single-threaded meanwhile.
    """
    threads = min(num_threads(), count)
    if threads <= 1 or not _openblas_setters():
        with single_threaded_blas():
            worker = make_worker()
            for i in range(count):
                worker(i)
        return
    parts = itertools.count()           # next(parts) is atomic: each part is taken once
    failed = []

    def take_parts():
        try:
            worker = make_worker()
            while not failed:
                i = next(parts)
                if i >= count:
                    return
                worker(i)
        except BaseException as err:    # stop the other threads, re-raise below
            failed.append(err)

    with single_threaded_blas():
        helpers = [_helpers(threads - 1).submit(take_parts) for _ in range(threads - 1)]
        take_parts()                    # this thread works too
        for helper in helpers:
            helper.result()
    if failed:
        raise failed[0]


# ----------------------------------------------------------------------------------------------
# Asking OpenBLAS for one thread (what threadpoolctl does, for the one library we need)
# ----------------------------------------------------------------------------------------------
_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
            "openblas_get_num_threads64_", "openblas_get_num_threads")
_found = None


def _openblas_setters():
    """[(set_num_threads, get_num_threads)] of each OpenBLAS loaded in this process: NumPy's
    bundled one (found beside numpy) and any other mapped into the process (Linux)."""
    global _found
    if _found is not None:
        return _found
    here = os.path.dirname(numpy.__file__)
    paths = set()
    for folder in (os.path.join(here, "..", "numpy.libs"), os.path.join(here, ".dylibs"),
                   os.path.join(here, "..", "numpy.libs")):
        paths.update(glob.glob(os.path.join(folder, "*openblas*")))
    with contextlib.suppress(OSError):
        with open("/proc/self/maps") as maps:
            paths.update(line.split()[-1] for line in maps if "openblas" in line.lower())
    found = []
    for path in sorted(paths):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        setter = next((getattr(library, s) for s in _SETTERS if hasattr(library, s)), None)
        getter = next((getattr(library, g) for g in _GETTERS if hasattr(library, g)), None)
        if setter is not None and getter is not None:
            found.append((setter, getter))
    _found = found
    return found


@contextlib.contextmanager
def single_threaded_blas():
    """Within the block, each OpenBLAS runs every product on the calling thread alone."""
    libraries = _openblas_setters()
    before = [getter() for _, getter in libraries]
    for setter, _ in libraries:
        setter(ctypes.c_int(1))
    try:
        yield
    finally:
        for (setter, _), count in zip(libraries, before):
            setter(ctypes.c_int(count))
