"""tinyres.kernels: the hand-written fast kernels, installed as a subpackage of tinyres.

    tinyres.kernels.cpu   Numba kernels for the CPU (@njit(parallel=True, cache=True))
    tinyres.kernels.gpu   numba-cuda kernels for an NVIDIA GPU (@cuda.jit), also run by Numba's
                          CUDA simulator under the 'cudasim' backend

Each kernel has the same name and signature as its readable NumPy twin in tinyres.functional,
where a learner reads the math; tinyres.dispatch chooses between them. This folder is pure array
code: it never imports tinyres.
"""
