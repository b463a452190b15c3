"""Floor 4: convolution as its definition — nested loops, the oracle the fast code is held to.

For every output element, the sum over its window (zero padding PH, PW; stride SH, SW):

    y[n, o, i, j] = b[o] + sum_{c, kh, kw} w[o, c, kh, kw] * x[n, c, i*SH + kh - PH, j*SW + kw - PW]

where x is zero outside its H x W plane, and OH = (H + 2*PH - KH) // SH + 1 (likewise OW).
Seven loops, one multiply-add per step: slow on purpose (seconds where conv.py's im2col + one
matrix product takes milliseconds), and nothing to get wrong. The tests hold conv2d and the fast
kernels equal to it; examples/02_im2col_convolution.py compares them on screen.
"""
import numpy

from tinyres.kernels.geometry import as_pair


def conv2d_loops(x, weight, bias=None, stride=1, padding=0):
    """The convolution of host NumPy arrays by its definition (no autograd, no backends).

    x (N, C, H, W), weight (OC, C, KH, KW), bias (OC,) or None -> y (N, OC, OH, OW) of x's dtype.
    stride and padding are an int or a (height, width) pair, as in conv2d.
    """
    # BEGIN SOLUTION A2 conv2d_loops
    N, C, H, W = x.shape
    OC, _, KH, KW = weight.shape
    (SH, SW), (PH, PW) = (as_pair(stride, "stride", "conv2d_loops"),
                          as_pair(padding, "padding", "conv2d_loops"))
    OH, OW = (H + 2 * PH - KH) // SH + 1, (W + 2 * PW - KW) // SW + 1
    y = numpy.zeros((N, OC, OH, OW), dtype=x.dtype)
    for n in range(N):
        for o in range(OC):
            for i in range(OH):
                for j in range(OW):
                    total = 0.0 if bias is None else bias[o]
                    for c in range(C):
                        for kh in range(KH):
                            for kw in range(KW):
                                h, v = i * SH + kh - PH, j * SW + kw - PW
                                if 0 <= h < H and 0 <= v < W:      # outside: zero padding
                                    total += x[n, c, h, v] * weight[o, c, kh, kw]
                    y[n, o, i, j] = total
    return y
    # END SOLUTION
