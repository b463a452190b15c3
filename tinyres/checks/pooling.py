"""Gradient-check cases for the pooling ops (float64).

Max pool's gradient is only defined where the maximum of a window is unique; standard normal
inputs have no ties, and a perturbation of 1e-6 does not change which element is the maximum.
"""
from tinyres.functional.pooling import avg_pool2d, global_avg_pool2d, max_pool2d
from tinyres.gradcheck import register
from tinyres.tensor import Tensor


def _leaf(rng, *shape):
    return Tensor(rng.standard_normal(shape), requires_grad=True)


@register("max_pool2d")
def max_pool(rng):
    return [
        ("3x3 stride 2 padding 1 (overlapping: ResNet)",
         lambda x: max_pool2d(x, 3, stride=2, padding=1), [_leaf(rng, 2, 3, 7, 7)]),
        ("2x2 stride 2", lambda x: max_pool2d(x, 2), [_leaf(rng, 2, 3, 6, 5)]),
    ]


@register("avg_pool2d")
def avg_pool(rng):
    return [
        ("3x3 stride 2 padding 1 (zeros counted)",
         lambda x: avg_pool2d(x, 3, stride=2, padding=1), [_leaf(rng, 2, 3, 7, 7)]),
        ("2x2 stride 2", lambda x: avg_pool2d(x, 2), [_leaf(rng, 2, 3, 6, 5)]),
    ]


@register("global_avg_pool2d")
def global_avg_pool(rng):
    return [("(2, 3, 4, 5) -> (2, 3)", global_avg_pool2d, [_leaf(rng, 2, 3, 4, 5)])]
