"""Gradient-check cases for conv2d (float64, small shapes: every element is perturbed)."""
from tinyres.course.checks.inputs import leaf
from tinyres.course.checks.registry import register
from tinyres.functional.conv import conv2d


@register("conv2d")
def conv(rng):
    x, x7 = leaf(rng, 2, 3, 5, 5), leaf(rng, 1, 2, 7, 6)
    w3, b4 = leaf(rng, 4, 3, 3, 3), leaf(rng, 4)
    w_rect, w_1x1 = leaf(rng, 3, 2, 2, 3), leaf(rng, 5, 3, 1, 1)
    return [
        ("3x3, bias", lambda x, w, b: conv2d(x, w, b), [x, w3, b4]),
        ("3x3, no bias, padding 1", lambda x, w: conv2d(x, w, padding=1), [x, w3]),
        ("3x3, bias, stride 2, padding 1 (downsampling)",
         lambda x, w, b: conv2d(x, w, b, stride=2, padding=1), [x, w3, b4]),
        ("2x3 kernel, stride (2, 1), padding (1, 0)",
         lambda x, w: conv2d(x, w, stride=(2, 1), padding=(1, 0)), [x7, w_rect]),
        ("1x1 kernel, stride 2 (projection shortcut)",
         lambda x, w: conv2d(x, w, stride=2), [x, w_1x1]),
    ]
