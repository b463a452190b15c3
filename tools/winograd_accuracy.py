"""How far the fast path's float32 Winograd convolutions, F(2x2, 3x3) and F(4x4, 3x3), land from
a float64 im2col convolution, at ResNet-like scales: N(0, 1) inputs, He-initialised 3x3 weights
(std sqrt(2 / (9 C))), an N(0, 1) output gradient, padding 1. For the forward y and both
gradients (gx, gweight) it prints the largest absolute error divided by the largest absolute
value of the exact result, beside float32 im2col + GEMM's (the readable conv) for scale.

    python tools/winograd_accuracy.py [--batch 16] [--seed 0]

The figures in tinyres/functional/winograd.py's docstring come from this script; the tests'
float32 tolerances for the Winograd routes are set from them.
"""
import argparse

import numpy

from tinyres.functional.conv import conv2d_backward, conv2d_forward
from tinyres.kernels.cpu import conv, conv_winograd

SHAPES = ((16, 32), (32, 16), (64, 8))            # (channels, height = width): ResNet-20's stages


def relative_errors(results, exact):
    """max |result - exact| / max |exact|, for each pair."""
    return [float(numpy.abs(r - e).max() / numpy.abs(e).max()) for r, e in zip(results, exact)]


def fast_path(x, w, gy, m):
    """(y, gx, gweight) of the fast path's Winograd route with F(m x m, 3x3)."""
    chosen = conv_winograd.tile_size
    conv_winograd.tile_size = lambda out_size, channels: m
    try:
        return (conv.conv2d_forward(x, w, 1, 1),) + conv.conv2d_backward(gy, x, w, 1, 1)
    finally:
        conv_winograd.tile_size = chosen


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = numpy.random.default_rng(args.seed)
    print("max abs error / max abs value, float32 against float64 im2col (y / gx / gweight)")
    print("C = OC  HxW     im2col float32              F(2x2)                      F(4x4)")
    for C, size in SHAPES:
        x = rng.standard_normal((args.batch, C, size, size))
        w = rng.standard_normal((C, C, 3, 3)) * (2 / (9 * C)) ** 0.5
        gy = rng.standard_normal((args.batch, C, size, size))
        exact = (conv2d_forward.reference(x, w, (1, 1), (1, 1)),) + tuple(
            conv2d_backward.reference(gy, x, w, (1, 1), (1, 1)))
        x32, w32, gy32 = (a.astype(numpy.float32) for a in (x, w, gy))
        im2col = (conv2d_forward.reference(x32, w32, (1, 1), (1, 1)),) + tuple(
            conv2d_backward.reference(gy32, x32, w32, (1, 1), (1, 1)))
        columns = [relative_errors(im2col, exact)] + [
            relative_errors(fast_path(x32, w32, gy32, m), exact) for m in (2, 4)]
        print(f"{C:4d}    {size:2d}x{size:<2d}  " + "   ".join(
            " / ".join(f"{e:.1e}" for e in errors) for errors in columns))


if __name__ == "__main__":
    main()
