"""Comparing what the student's code returned with what the grader expects, in words.

    relative error of an element = |got - expected| / (|expected| + 1e-3 * scale)

where scale is the largest |expected| of the output (1e-12 if all are zero). Unlike
|a - b| / max(|a|, |b|), it does not saturate at 2: a sign flip reads 2, a result ten times too
large reads 9, a missing 1/m reads m - 1, so different bugs read differently. The message names
the worst element's index with both values.
"""
from dataclasses import dataclass

import numpy


@dataclass
class Verdict:
    passed: bool
    error: float                   # the worst relative error (inf: wrong shape, NaN, not numbers)
    message: str                   # '' when passed


def relative_errors(got, expected):
    """Elementwise relative error (see the module docstring), float64, expected's shape."""
    scale = max(float(numpy.abs(expected).max(initial=0.0)), 1e-12)
    return numpy.abs(got - expected) / (numpy.abs(expected) + 1e-3 * scale)


def compare(name, got, expected, tolerance):
    """The verdict on output `name`: shape, finiteness, then the worst element against
    `tolerance`."""
    expected = numpy.asarray(expected, dtype=numpy.float64)
    if got is None:
        return Verdict(False, float("inf"), f"{name}: no output returned")
    got = numpy.asarray(got)
    if got.dtype.kind not in "biuf":
        return Verdict(False, float("inf"), f"{name}: expected an array of numbers, got dtype "
                                            f"{got.dtype}")
    if got.shape != expected.shape:
        return Verdict(False, float("inf"), f"{name}: wrong shape: got {got.shape}, expected "
                                            f"{expected.shape}")
    got = got.astype(numpy.float64)
    if expected.size == 0:
        return Verdict(True, 0.0, "")
    bad = ~numpy.isfinite(got)
    if bad.any():
        index = _index(numpy.argmax(bad), got.shape)
        return Verdict(False, float("inf"), f"{name}: got {got[index]} at {list(index)}, "
                                            f"expected {expected[index]:.6g}")
    errors = relative_errors(got, expected)
    index = _index(numpy.argmax(errors), got.shape)
    worst = float(errors[index])
    if worst <= tolerance:
        return Verdict(True, worst, "")
    return Verdict(False, worst, f"{name}: worst element {list(index)}: expected "
                                 f"{expected[index]:.6g}, got {got[index]:.6g} (relative error "
                                 f"{worst:.1e} > {tolerance:.0e})")


def _index(flat, shape):
    return tuple(int(i) for i in numpy.unravel_index(flat, shape)) if shape else ()
