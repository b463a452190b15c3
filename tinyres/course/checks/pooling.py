"""Gradient-check cases for the pooling ops (float64).

Max pool's gradient is only defined where the maximum of a window is unique; standard normal
inputs have no ties, and a perturbation of 1e-6 does not change which element is the maximum.
"""
from tinyres.course.checks.inputs import leaf
from tinyres.course.checks.registry import register
from tinyres.functional.pooling import (adaptive_avg_pool2d, avg_pool2d, global_avg_pool2d,
                                        max_pool2d)


def _window_cases(rng, pool, overlap_note):
    """The same two windows for max and average pooling: overlapping with padding, and 2x2."""
    return [
        (f"3x3 stride 2 padding 1 ({overlap_note})",
         lambda x: pool(x, 3, stride=2, padding=1), [leaf(rng, 2, 3, 7, 7)]),
        ("2x2 stride 2", lambda x: pool(x, 2), [leaf(rng, 2, 3, 6, 5)]),
    ]


@register("max_pool2d")
def max_pool(rng):
    return _window_cases(rng, max_pool2d, "overlapping: ResNet")


@register("avg_pool2d")
def avg_pool(rng):
    return _window_cases(rng, avg_pool2d, "zeros counted")


@register("global_avg_pool2d")
def global_avg_pool(rng):
    return [("(2, 3, 4, 5) -> (2, 3)", global_avg_pool2d, [leaf(rng, 2, 3, 4, 5)])]


@register("adaptive_avg_pool2d")
def adaptive_avg_pool(rng):
    return [
        ("7x7 -> 3x3 (uneven, overlapping windows)",
         lambda x: adaptive_avg_pool2d(x, 3), [leaf(rng, 2, 3, 7, 7)]),
        ("5x6 -> (2, 4)", lambda x: adaptive_avg_pool2d(x, (2, 4)), [leaf(rng, 1, 2, 5, 6)]),
        ("1x1 -> 7x7 (copies: VGG on 32x32 images)",
         lambda x: adaptive_avg_pool2d(x, 7), [leaf(rng, 2, 3, 1, 1)]),
    ]
