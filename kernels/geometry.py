"""Where a sliding window goes: the kernel, stride and padding of a conv or pooling, as pairs.

Written once, for the readable ops (tinyres/functional/conv.py, pooling.py) and for the CPU and
GPU kernels alike (plain Python: no Numba), so every path refuses a bad argument with the same
message, whichever meets it first:

    OH = (H + 2*PH - KH) // SH + 1        OW = (W + 2*PW - KW) // SW + 1

window_geometry returns the four pairs as one small value, a Geometry, which the kernels pass on
as it is (``geometry.stride``) and the readable code unpacks (``(KH, KW), ... = geometry``).
"""
import numbers
from typing import NamedTuple


class Geometry(NamedTuple):
    """A sliding window's (height, width) pairs: what it is checked to be and where it goes."""
    kernel: tuple                 # (KH, KW)
    stride: tuple                 # (SH, SW)
    padding: tuple                # (PH, PW), zeros on each side
    out_size: tuple               # (OH, OW), at least one position each way


def as_pair(value, what, op):
    """An int or a pair of ints, as a (height, width) pair of Python ints."""
    def is_int(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)
    if is_int(value):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(is_int(v) for v in value):
        return int(value[0]), int(value[1])
    raise TypeError(f"{op}: {what} must be an int or a pair of ints (height, width), "
                    f"got {value!r}")


def window_geometry(op, x_shape, kernel_size, stride, padding):
    """Geometry((KH, KW), (SH, SW), (PH, PW), (OH, OW)) of a sliding window over an (N, C, H, W)
    shape; a ValueError where it has no output position."""
    H, W = x_shape[2], x_shape[3]
    (KH, KW), (SH, SW), (PH, PW) = (as_pair(kernel_size, "kernel_size", op),
                                    as_pair(stride, "stride", op), as_pair(padding, "padding", op))
    OH = (H + 2 * PH - KH) // SH + 1 if SH > 0 else 0
    OW = (W + 2 * PW - KW) // SW + 1 if SW > 0 else 0
    if SH < 1 or SW < 1 or PH < 0 or PW < 0 or OH < 1 or OW < 1:
        raise ValueError(f"{op}: kernel {KH}x{KW}, stride ({SH}, {SW}), padding ({PH}, {PW}) "
                         f"give no output positions on an input of shape {tuple(x_shape)}")
    return Geometry((KH, KW), (SH, SW), (PH, PW), (OH, OW))
