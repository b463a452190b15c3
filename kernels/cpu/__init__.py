"""tinyres.kernels.cpu: Numba kernels for the CPU, the fast twins of the readable NumPy ops.

Each function below has the name and signature of its twin in tinyres.functional and returns the
same results (to float32 rounding); tinyres.dispatch calls it instead of the twin for NumPy arrays
when the kernels are set to 'fast' (the default where Numba imports; TINYRES_KERNELS=reference
or tinyres.set_kernels("reference") turns them off).

    conv.py         im2col, col2im                        the faithful twins, reference layout
                    conv2d_forward, conv2d_backward       the whole conv, by one of two routes:
      conv_gemm.py      im2col + GEMM                     chunks of images whose patches stay in
                                                          the cache, BLAS GEMMs; every float64
                                                          conv (exact for gradient checks)
      conv_winograd.py  Winograd's F(4x4, 3x3) or         float32 3x3 convs at stride 1: 1/4 or
                        F(2x2, 3x3)                       4/9 of the multiplications
    winograd.py     F(4x4) and F(2x2)'s tile transforms   what conv_winograd.py runs
    layout.py       NCHW <-> channels-last chunk copies   shared by both routes, and run_chunks,
                                                          their loop over chunks and threads
    batchnorm.py    batch_norm_train_forward, _backward   blocks of rows (channels last) or of
                    batch_norm_eval_forward               channels, float64 sums; eval is the
                                                          normalise pass, weight 1
    elementwise.py  relu_forward, relu_backward           one pass, shared among the threads
    pooling.py      max_pool2d_forward, _backward         image by image
    threads.py      how a job is shared among the cores (Python threads, single-threaded BLAS)

Every kernel is compiled by Numba the first time it meets a new argument type (float32 for
training, float64 for gradient checks) and cached on disk (cache=True), so later runs load it
instead of compiling. Matrix products are not here: they stay in BLAS (numpy.matmul).
Importing this package raises ImportError where Numba is missing; the door then uses the NumPy
references. It never imports tinyres.
"""
import numba  # noqa: F401  (no Numba: ImportError, and tinyres.dispatch uses the references)

from .batchnorm import (batch_norm_eval_forward, batch_norm_train_backward,
                        batch_norm_train_forward)
from .conv import col2im, conv2d_backward, conv2d_forward, im2col
from .elementwise import relu_backward, relu_forward
from .pooling import max_pool2d_backward, max_pool2d_forward


__all__ = ["im2col", "col2im", "conv2d_forward", "conv2d_backward",
           "batch_norm_train_forward", "batch_norm_train_backward",
           "batch_norm_eval_forward", "relu_forward", "relu_backward",
           "max_pool2d_forward", "max_pool2d_backward"]
