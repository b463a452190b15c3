"""The argparse types every room's options use (train, eval, lab, bench, gradcheck, and the
environment variables that stand in for options).

Each raises argparse.ArgumentTypeError, which argparse turns into a one-line error, exit 2; the
environment check (tinyres/environment.py) turns the same message into a UserError.
"""
import argparse
import math
import os


def positive_int(text):
    """argparse type: a whole number >= 1 (thread counts, batch sizes, epochs)."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def natural_int(text):
    """argparse type: a whole number >= 0 (seeds, warm-up iterations)."""
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def number_in(low, high=math.inf, low_open=False, high_open=True):
    """argparse type: a finite number in [low, high) (or (low, ...) with low_open)."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        inside = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high)
        if not (math.isfinite(value) and inside):
            bounds = (f"{'>' if low_open else '>='} {low:g}" if high == math.inf else
                      f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}")
            raise argparse.ArgumentTypeError(f"expected a finite number {bounds}, got {text!r}")
        return value
    return parse


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                     # macOS, Windows
        return os.cpu_count() or 1


def thread_count(text):
    """argparse type: threads, 1 to the cores this process may use."""
    count, cores = positive_int(text), available_cores()
    if count > cores:
        raise argparse.ArgumentTypeError(f"{count} threads, but this process may use "
                                         f"{cores} core{'s' if cores > 1 else ''}; use at most "
                                         f"{cores}")
    return count
