"""Where a sliding window goes: the kernel, stride and padding of a conv or pooling, as pairs.

Written once, for the layers (nn.Conv2d checks its window when it is made), the readable ops
(tinyres/functional/conv.py, pooling.py) and the CPU and GPU kernels alike (plain Python: no
Numba), so every path refuses a bad argument with the same message, whichever meets it first,
and names the layer or op it is given (`op`, e.g. "Conv2d layer1.0.conv1"):

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


def window_arguments(op, kernel_size, stride, padding):
    """(KH, KW), (SH, SW), (PH, PW): the window's arguments as pairs of ints, the kernel and the
    stride positive, the padding non-negative (what can be checked before an input is seen)."""
    (KH, KW), (SH, SW), (PH, PW) = (as_pair(kernel_size, "kernel_size", op),
                                    as_pair(stride, "stride", op), as_pair(padding, "padding", op))
    if KH < 1 or KW < 1:
        raise ValueError(f"{op}: kernel_size must be positive, got {(KH, KW)}")
    if SH < 1 or SW < 1:
        raise ValueError(f"{op}: stride must be positive, got {(SH, SW)}")
    if PH < 0 or PW < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {(PH, PW)}")
    return (KH, KW), (SH, SW), (PH, PW)


def window_geometry(op, x_shape, kernel_size, stride, padding):
    """Geometry((KH, KW), (SH, SW), (PH, PW), (OH, OW)) of a sliding window over an (N, C, H, W)
    shape: the window's arguments checked, and at least one window fits in the padded input."""
    H, W = x_shape[2], x_shape[3]
    (KH, KW), (SH, SW), (PH, PW) = window_arguments(op, kernel_size, stride, padding)
    if KH > H + 2 * PH or KW > W + 2 * PW:
        raise ValueError(f"{op}: kernel {KH}x{KW} is larger than the padded input "
                         f"{H + 2 * PH}x{W + 2 * PW} (input shape {tuple(x_shape)}, padding "
                         f"{(PH, PW)})")
    OH = (H + 2 * PH - KH) // SH + 1               # the positions of the window, down ...
    OW = (W + 2 * PW - KW) // SW + 1               # ... and across
    return Geometry((KH, KW), (SH, SW), (PH, PW), (OH, OW))
