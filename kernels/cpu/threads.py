"""How the CPU kernels use several cores: worker threads that share out the parts of a job.

Numba can spread a loop over threads itself (``@njit(parallel=True)`` with ``prange``), and
OpenBLAS spreads each matrix product over its own threads. A convolution alternates the two
(unfold, GEMM, copy, unfold, GEMM, ...), and two pools of threads fight: each pool's threads
keep spinning for a while after their part is done, waiting for more, on the very cores the
other pool needs next, and every hand-over waits for the slowest thread (docs/performance.md
has the measurements).

So the kernels are plain single-threaded Numba functions that release the GIL
(``@njit(nogil=True, cache=True)``), BLAS is asked for one thread while they run, and a job is
shared out here: it is cut into parts (a chunk of images, a few channels), and T threads (this
one and T-1 helpers) each take the next part not yet taken, run it, and take another, until none
is left. A thread that the operating system holds back simply takes fewer parts. A job hands work
over once, at its end, instead of once per kernel.

When a job may use every CPU of the process, its threads are pinned one to a CPU (`_placement`:
the helpers stay so, this thread is given its CPUs back when the job is done): left to itself,
Linux sometimes runs two of them on one CPU after the process has rested, while another idles.

This is tinyres's one thread pool, and its count is the one thread count: Numba's
(``numba.set_num_threads``, which ``tinyres.set_num_threads`` calls along with BLAS's, or the
NUMBA_NUM_THREADS environment variable; all cores by default). The readable path has no
threads. Where no OpenBLAS can be told to use one thread (NumPy built on MKL or Accelerate), the
job runs on this thread alone and BLAS keeps its own threads; with one thread, BLAS gets one too
(its threads would only wait for each other on these small products).
This module never imports tinyres.
"""
import contextlib
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba

from ..blas import blas_controllable, single_threaded_blas

_pool = None                   # the helper threads, made on first use
_pool_size = 0
_pool_lock = threading.Lock()


def num_threads():
    """How many threads a job is shared among: Numba's setting."""
    return numba.get_num_threads()


def _helpers(count):
    """A pool of at least `count` helper threads (kept for the life of the process). A larger
    count replaces the pool: the old one is shut down, its threads ending once the parts already
    given to them are done (a job still running on it finishes), so no idle threads pile up."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool_size < count:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="tinyres-kernels")
            _pool_size = count
        return _pool


def _placement(threads):
    """[the CPUs each of a job's `threads` threads may run on, or None: no change], this
    thread's first; None where the OS offers no say (no sched_setaffinity).

    Pinned, one CPU each, when the job may use every CPU this process may run on. Why pin at
    all: after a pause (a training loop's data loading, a benchmark's rest), Linux often wakes
    this thread and a helper on the same CPU and is slow to move one away, while the other CPU
    idles (docs/performance.md). Pinned, a step takes as long after a pause as back to back.
    Only when the job uses every CPU: pinning 2 threads of a 64-CPU machine to its first 2 CPUs
    would pile every tinyres process there onto the same two; then the helpers may run on any of
    them, and this thread stays where it is."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) == num_threads():
        return [{cpu} for cpu in allowed[:threads]]
    return [None] + [set(allowed)] * (threads - 1)


@contextlib.contextmanager
def _placed(cpus):
    """Within the block, the calling thread runs on the CPUs `cpus` (None: no change); then on
    those it had. For the caller's thread, whose placement is the user's."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    _place(cpus)
    try:
        yield
    finally:
        _place(before)


def _place(cpus):
    """The calling thread runs on the CPUs `cpus` from now on (None: no change)."""
    if cpus is not None:
        with contextlib.suppress(OSError):        # a CPU gone offline: run where we are
            os.sched_setaffinity(0, cpus)


def share(count, make_worker):
    """Run worker(i) for every part i in range(count), on up to num_threads() threads.

    ``make_worker()`` is called once per thread and returns that thread's `worker`, so each
    thread can keep its own scratch buffers. Parts are taken in order, each by the first thread
    free; a part must not depend on another. BLAS runs single-threaded meanwhile.
    """
    threads = min(num_threads(), count)
    if threads <= 1 or not blas_controllable():
        with single_threaded_blas():
            worker = make_worker()
            for i in range(count):
                worker(i)
        return
    parts = itertools.count()           # next(parts) is atomic: each part is taken once
    failed = []
    placement = _placement(threads) or [None] * threads

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

    def help_on(cpus):
        # A helper thread is tinyres's own, so it keeps the CPUs of its last job. Given back
        # after each job, it would wake for the next one wherever Linux likes, often on the CPU
        # of the thread that woke it, and push that thread aside before moving.
        _place(cpus)
        take_parts()

    with single_threaded_blas():
        helpers = [_helpers(threads - 1).submit(help_on, cpus) for cpus in placement[1:]]
        with _placed(placement[0]):     # till the helpers are done: unpinned, this thread would
            take_parts()                # be woken on the last helper's CPU, and be pushed
            for helper in helpers:      # aside by that helper at the next job
                helper.result()
    if failed:
        raise failed[0]
