"""The one place that knows how a kernel is launched.

A CUDA kernel runs as a *grid* of *blocks* of *threads*. Every thread runs the same function and
tells itself apart by its position: ``cuda.grid(1) = blockIdx.x * blockDim.x + threadIdx.x``.
tinyres launches its kernels in two shapes only:

    one thread per element    an image-shaped job (im2col, pooling, the fused batch-norm
                              elementwise kernels): THREADS_PER_BLOCK threads per block and just
                              enough blocks to cover the elements; the spare threads of the last
                              block find their index past the end and do nothing.
    one block per channel     a per-channel sum (batch-norm statistics): REDUCE_THREADS threads
                              per block cooperate through shared memory on one channel.

Where the kernel runs is decided by the arrays it is given:

    CuPy arrays (a real GPU)  launched on CuPy's *current stream*, wrapped for Numba with
                              ``cuda.external_stream(cupy.cuda.get_current_stream().ptr)``, so the
                              kernel queues up behind the CuPy work that made its inputs and
                              before the CuPy work that reads its outputs: no synchronisation
                              is needed, and none is hidden here. The CuPy arrays are passed as
                              they are (Numba reads their device pointers through the CUDA array
                              interface / DLPack; nothing is copied).
    NumPy arrays (simulator)  Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1) runs every thread
                              of every block as a Python thread, with the same grid and block
                              sizes as on the GPU. It has no streams, so none is passed. Outside
                              the simulator NumPy arrays are refused: Numba would copy them to
                              the GPU and back on every launch, behind the caller's back.

This file never imports cupy unless it is handed a CuPy array, and never imports tinyres.
"""
import numpy
import numba
from numba import cuda

THREADS_PER_BLOCK = 128   # elementwise launches: 4 warps of 32 threads, a safe size on any GPU
REDUCE_THREADS = 128      # per-channel reductions; a power of two, because the tree halves it,
                          # and a module constant, because shared-memory sizes must be known
                          # when the kernel is compiled


def array_module(array):
    """numpy for a NumPy array (the simulator), cupy for a CuPy array (a GPU)."""
    if isinstance(array, numpy.ndarray):
        if not numba.config.ENABLE_CUDASIM:
            raise TypeError("GPU kernels run on NumPy arrays only under the CUDA simulator "
                            "(NUMBA_ENABLE_CUDASIM=1, the 'cudasim' backend); on a GPU, pass "
                            "CuPy arrays")
        return numpy
    if type(array).__module__.split(".")[0] == "cupy":
        import cupy
        return cupy
    raise TypeError(f"GPU kernels take NumPy arrays (under the CUDA simulator) or CuPy arrays, "
                    f"got {type(array).__module__}.{type(array).__name__}")


# The data types the kernels are written for: float32, and float64 (gradient checks). Each kernel
# module declares these as its DTYPES; tinyres.dispatch sends any other type to the reference.
DTYPES = (numpy.float32, numpy.float64)


def check_float(op, array):
    """Refuse data of a type the kernels are not written for (a direct call: the door routes
    other types to the reference)."""
    if array.dtype not in DTYPES:
        raise TypeError(f"{op} (GPU kernel): expected float32 or float64 data, got dtype "
                        f"{array.dtype}")


def blocks_for(count, threads=THREADS_PER_BLOCK):
    """How many blocks of `threads` cover `count` elements: ceil(count / threads)."""
    return (count + threads - 1) // threads


def launch_per_element(kernel, count, *args):
    """Run `kernel(*args)` with (at least) one thread for each of `count` elements."""
    _launch(kernel, blocks_for(count), THREADS_PER_BLOCK, args)


def launch_per_channel(kernel, channels, *args):
    """Run `kernel(*args)` with one block of REDUCE_THREADS threads for each channel."""
    _launch(kernel, channels, REDUCE_THREADS, args)


def _launch(kernel, blocks, threads, args):
    if blocks == 0:                       # an empty array: nothing to do (and CUDA refuses
        return                            # a grid of zero blocks)
    if any(hasattr(a, "__cuda_array_interface__") for a in args):      # CuPy: a real GPU
        import cupy
        stream = cuda.external_stream(cupy.cuda.get_current_stream().ptr)
        kernel[blocks, threads, stream](*args)
    else:
        kernel[blocks, threads](*args)
