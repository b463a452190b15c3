"""How `tinyres bench` times: the paths taking turns in one process (medians), and the peak
memory of each in a fresh process."""
import contextlib
import ctypes
import json
import os
import subprocess
import sys
import time

from tinyres.bench.runners import make_runner, set_threads

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
