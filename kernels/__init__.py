"""tinyres.kernels: the hand-written fast kernels, installed as a subpackage of tinyres.

    tinyres.kernels.cpu   Numba kernels for the CPU: single-threaded @njit(nogil=True, cache=True)
                          functions, a job's parts shared among threads (cpu/threads.py)
    tinyres.kernels.gpu   numba-cuda kernels for an NVIDIA GPU (@cuda.jit), also run by Numba's
                          CUDA simulator under the 'cudasim' backend

and, in plain Python (importable without Numba), what both and the readable ops share:

    geometry.py           where a sliding window goes (output sizes, and the errors)
    blas.py               how many threads BLAS uses (OpenBLAS's setting, through ctypes)
    memory.py             keeping freed memory for the next training step (glibc's mallopt)

Each kernel has the same name and signature as its readable NumPy twin in tinyres.functional,
where a learner reads the math; tinyres.dispatch chooses between them. This folder is pure array
code: it never imports tinyres.
"""
