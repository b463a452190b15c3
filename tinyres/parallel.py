"""Floor 1: sharing independent pieces of work among the CPU's cores (the readable path's threads).

NumPy lets go of Python's global interpreter lock while it copies, adds or multiplies large
arrays, so Python threads that each work on their own piece of an array really do run at the same
time, one per core. The readable convolution uses this: it works on a chunk of images at a time
(functional/conv.py), and chunks are independent, so each core can take one.

    map_parts(convolve, chunk_starts)  ==  [convolve(n) for n in chunk_starts]   (same order)

The thread count is `num_threads()`: TINYRES_NUM_THREADS if set, else the cores this process may
run on; `set_num_threads(1)` makes every map a plain loop (what a learner stepping through the
code in a debugger wants). `tinyres.set_num_threads(n)` is the one knob, as torch.set_num_threads:
it sets this count, BLAS's, and Numba's (which the fast kernels share their work by,
kernels/cpu/threads.py); `tinyres train --threads N` calls it.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from tinyres.kernels.blas import set_blas_threads, single_threaded_blas

_count = None                  # set_num_threads' value; None: the environment's or the cores'
_pool = None                   # the worker threads, made on first use ...
_pool_size = 0                 # ... and how many there are
_pool_lock = threading.Lock()


def _available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                     # macOS, Windows
        return os.cpu_count() or 1


def num_threads():
    """How many threads map_parts uses."""
    if _count is not None:
        return _count
    setting = os.environ.get("TINYRES_NUM_THREADS", "")
    if setting:
        if not setting.isdigit() or int(setting) < 1:
            raise ValueError(f"TINYRES_NUM_THREADS: expected a positive whole number, "
                             f"got {setting!r}")
        return int(setting)
    return _available_cores()


def set_num_threads(count):
    """Use `count` threads (>= 1) from now on: for map_parts, for BLAS's products and for the
    fast kernels (Numba's count, at most NUMBA_NUM_THREADS). Returns the count."""
    global _count
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"set_num_threads: expected a positive int, got {count!r}")
    _count = count
    set_blas_threads(count)
    try:
        import numba
    except ImportError:                        # no Numba: no fast kernels to tell
        return count
    numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
    return count


def map_parts(function, parts):
    """[function(part) for part in parts], the calls shared among num_threads() threads.

    The parts must be independent (no part reads what another writes). Meanwhile BLAS runs each
    matrix product on the thread that asked for it (tinyres/kernels/blas.py). An exception in a
    part is raised here.
    """
    global _pool, _pool_size
    parts = list(parts)
    threads = min(num_threads(), len(parts))
    if threads <= 1 or threading.current_thread().name.startswith("tinyres-parts"):
        return [function(part) for part in parts]         # (a part never starts more threads)
    with _pool_lock:
        if _pool_size != num_threads():               # first use, or the count was changed
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=num_threads(),
                                       thread_name_prefix="tinyres-parts")
            _pool_size = num_threads()
        pool = _pool
    with single_threaded_blas():              # one BLAS thread per part: no 2 x 2 on 2 cores
        return list(pool.map(function, parts))
