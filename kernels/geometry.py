"""Where a sliding window goes: the kernel, stride and padding of a conv or pooling, as pairs.

Written once, for the readable ops (tinyres/functional/conv.py, pooling.py) and for the CPU and
GPU kernels alike (plain Python: no Numba), so every path refuses a bad argument with the same
message, whichever meets it first:

    OH = (H + 2*PH - KH) // SH + 1        OW = (W + 2*PW - KW) // SW + 1
"""
import numbers


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
    """(KH, KW), (SH, SW), (PH, PW), (OH, OW) for a sliding window over an (N, C, H, W) shape."""
    H, W = x_shape[2], x_shape[3]
    (KH, KW), (SH, SW), (PH, PW) = (as_pair(kernel_size, "kernel_size", op),
                                    as_pair(stride, "stride", op), as_pair(padding, "padding", op))
    OH = (H + 2 * PH - KH) // SH + 1 if SH > 0 else 0
    OW = (W + 2 * PW - KW) // SW + 1 if SW > 0 else 0
    if SH < 1 or SW < 1 or PH < 0 or PW < 0 or OH < 1 or OW < 1:
        raise ValueError(f"{op}: kernel {KH}x{KW}, stride ({SH}, {SW}), padding ({PH}, {PW}) "
                         f"give no output positions on an input of shape {tuple(x_shape)}")
    return (KH, KW), (SH, SW), (PH, PW), (OH, OW)
