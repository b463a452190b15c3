"""Time the fast path's Winograd convolutions with F(2x2, 3x3) against F(4x4, 3x3) on ResNet-20's
three stage shapes, or others (batch 128, float32, one thread): conv forward, and backward with
the input gradient, as kernels/cpu/conv.py runs them. The minimum of the repeats, so that a busy
machine costs as little as it can; still, run it on an idle one before trusting a small
difference.

    python tools/winograd_tiles.py [--repeats 7] [--batch 128] [--shapes 16x32 32x16 64x8]

A shape is channels x height (= width), the same channels in and out. The choice it measures is
conv_winograd.tile_size (F(4x4) when the output splits into 4x4 tiles, up to WIDE_CHANNELS).
"""
import argparse
import time

import numpy

import tinyres
from tinyres.kernels.cpu import conv, conv_winograd

STAGES = ("16x32", "32x16", "64x8")               # channels x height (= width): ResNet-20's stages


def best_of(repeats, run):
    """The shortest of `repeats` timed calls of run(), in milliseconds (after one warm-up)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--shapes", nargs="+", default=STAGES, metavar="CxS")
    args = parser.parse_args()
    tinyres.set_num_threads(1)
    rng = numpy.random.default_rng(0)
    chosen = conv_winograd.tile_size
    print(f"batch {args.batch}, float32, 1 thread, min of {args.repeats} (ms)")
    print("stage            F(2x2) fwd  F(4x4) fwd   F(2x2) bwd  F(4x4) bwd")
    for shape in args.shapes:
        C, size = (int(part) for part in shape.split("x"))
        x = rng.standard_normal((args.batch, size, size, C)).astype(numpy.float32)
        x = x.transpose(0, 3, 1, 2)                # channels-last memory, as the fast path's
        w = (rng.standard_normal((C, C, 3, 3)) * (2 / (9 * C)) ** 0.5).astype(numpy.float32)
        gy = conv.conv2d_forward(x, w, 1, 1)
        row = {}
        for m in (2, 4):
            conv_winograd.tile_size = lambda out_size, channels, m=m: m
            try:
                row[m] = (best_of(args.repeats, lambda: conv.conv2d_forward(x, w, 1, 1)),
                          best_of(args.repeats, lambda: conv.conv2d_backward(gy, x, w, 1, 1)))
            finally:
                conv_winograd.tile_size = chosen
        print(f"{C:3d}ch {size:2d}x{size:<2d}       {row[2][0]:8.2f}    {row[4][0]:8.2f}     "
              f"{row[2][1]:8.2f}    {row[4][1]:8.2f}")


if __name__ == "__main__":
    main()
