"""tinyres.kernels.gpu: numba-cuda kernels, the GPU twins of the readable NumPy ops.

Each host function below has the name and signature of its twin in tinyres.functional and returns
the same results; tinyres.dispatch calls it instead of the twin when the data is a CuPy array (a
real GPU) or when the backend is 'cudasim' (NumPy arrays, kernels run by Numba's CUDA simulator).

    conv.py         im2col, col2im                    one thread per output / per input pixel
    pooling.py      max_pool2d_forward, _backward     one thread per output; atomic scatter back
    batchnorm.py    batch_norm_train_forward, _backward
                                                      one block per channel: shared-memory tree
                                                      sums, then a fused elementwise pass
    launch.py       the one launch helper: grid size, CuPy's stream, simulator or GPU

Matrix products are not here: the ops call `cupy.matmul` (cuBLAS) on the GPU. See docs/gpu.md.
"""
from . import batchnorm, conv, pooling
from .batchnorm import batch_norm_train_backward, batch_norm_train_forward
from .conv import col2im, im2col
from .pooling import max_pool2d_backward, max_pool2d_forward

# Every kernel with the exact argument types it is launched with for float32 data: CI compiles
# each to PTX for real GPUs (tests/test_gpu.py), the simulator tests check the launches use them.
FLOAT32_SIGNATURES = {
    **conv.FLOAT32_SIGNATURES,
    **pooling.FLOAT32_SIGNATURES,
    **batchnorm.FLOAT32_SIGNATURES,
}

__all__ = ["im2col", "col2im", "max_pool2d_forward", "max_pool2d_backward",
           "batch_norm_train_forward", "batch_norm_train_backward", "FLOAT32_SIGNATURES"]
