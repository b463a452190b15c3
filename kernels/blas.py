"""How many threads BLAS may use: OpenBLAS's own setting, reached the way threadpoolctl does.

A matrix product in NumPy runs in OpenBLAS, which spreads it over a pool of threads of its own.
When tinyres already shares a job among threads (one chunk of images per thread), BLAS must run
each product on the calling thread alone: otherwise 2 chunk threads x 2 BLAS threads fight over
2 cores, and the job gets slower, not faster (docs/performance.md). OpenBLAS offers a C function
for it; this module finds every OpenBLAS loaded in the process (NumPy's bundled one, SciPy's)
and calls it. Where there is none (NumPy built on MKL or Accelerate), nothing can be set and
`blas_controllable()` says so. Plain Python and ctypes: no Numba needed.
"""
import contextlib
import ctypes
import glob
import os

import numpy

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
            "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
            "openblas_get_num_threads64_", "openblas_get_num_threads")
_CORE_NAMES = ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
               "openblas_get_corename64_", "openblas_get_corename")
_CONFIGS = ("scipy_openblas_get_config64_", "scipy_openblas_get_config",
            "openblas_get_config64_", "openblas_get_config")
_found = None


def _openblas_libraries():
    """[(set_num_threads, get_num_threads, library)] of each OpenBLAS loaded in this process:
    NumPy's bundled one (found beside numpy) and any other mapped into the process (Linux)."""
    global _found
    if _found is not None:
        return _found
    here = os.path.dirname(numpy.__file__)
    paths = set()
    for folder in (os.path.join(here, "..", "numpy.libs"), os.path.join(here, ".dylibs")):
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
            found.append((setter, getter, library))
    _found = found
    return found


def blas_controllable():
    """True where an OpenBLAS was found whose thread count can be set."""
    return bool(_openblas_libraries())


def blas_threads():
    """The thread count of the first OpenBLAS found (1 where none is)."""
    libraries = _openblas_libraries()
    return libraries[0][1]() if libraries else 1


def set_blas_threads(count):
    """Every OpenBLAS in the process uses `count` threads from now on; returns how many
    libraries took the setting (0: none found)."""
    libraries = _openblas_libraries()
    for setter, _, _ in libraries:
        setter(ctypes.c_int(count))
    return len(libraries)


@contextlib.contextmanager
def single_threaded_blas():
    """Within the block, each OpenBLAS runs every product on the calling thread alone."""
    libraries = _openblas_libraries()
    before = [getter() for _, getter, _ in libraries]
    set_blas_threads(1)
    try:
        yield
    finally:
        for (setter, _, _), count in zip(libraries, before):
            setter(ctypes.c_int(count))


def _text(library, names):
    """What the first of the C functions `names` that `library` has returns (a C string)."""
    function = next((getattr(library, n) for n in names if hasattr(library, n)), None)
    if function is None:
        return None
    function.restype = ctypes.c_char_p
    return function().decode(errors="replace")


def blas_description():
    """One line on NumPy's BLAS for a benchmark's header: OpenBLAS's version and the kernel it
    chose for this CPU (its "core": the same OpenBLAS runs e.g. Haswell's AVX2 kernels or
    SkylakeX's AVX-512 ones), and whether OPENBLAS_CORETYPE forced that choice."""
    libraries = _openblas_libraries()
    if not libraries:
        return "NumPy's BLAS is not OpenBLAS (MKL or Accelerate?): its kernel is not known here"
    library = libraries[0][2]
    config = (_text(library, _CONFIGS) or "OpenBLAS").split()
    core = _text(library, _CORE_NAMES) or "?"
    line = f"{' '.join(config[:2])}, kernel {core}"
    forced = os.environ.get("OPENBLAS_CORETYPE")
    if forced:
        line += (f" (forced by OPENBLAS_CORETYPE={forced} in the environment: without it "
                 "OpenBLAS picks the kernel for this CPU, often a faster one)")
    return line
