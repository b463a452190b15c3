"""Gradient-check cases for the basic ops of tinyres.ops (float64, random shapes)."""
from tinyres.course.checks.inputs import leaf
from tinyres.course.checks.registry import register
from tinyres import ops


@register("add sub mul div (broadcast)")
def arithmetic(rng):
    a, b = leaf(rng, 3, 1, 4), leaf(rng, 5, 1)
    return [("(3,1,4) op (5,1)", lambda a, b: (a + b) * (a - b) / (b * b + 1.0), [a, b])]


@register("neg pow exp log")
def elementwise(rng):
    x = leaf(rng, 2, 3, positive=True)
    return [("(2,3)", lambda x: (-x) ** 3 + x.exp() * x.log() + x ** 0.5, [x])]


@register("matmul")
def matmul(rng):
    return [("(2,3,4) @ (4,5)", lambda a, b: a @ b, [leaf(rng, 2, 3, 4), leaf(rng, 4, 5)]),
            ("(4,) @ (4,5)", lambda a, b: a @ b, [leaf(rng, 4), leaf(rng, 4, 5)])]


@register("sum mean max")
def reductions(rng):
    x = leaf(rng, 2, 3, 4)
    return [("(2,3,4): sum/max axis 1, mean axes (0,1), max all",
             lambda x: x.sum(axis=1) * x.mean(axis=(0, 1), keepdims=True).reshape(1, 4)
             + x.max(dim=1).values + x.max(), [x])]


@register("reshape transpose getitem pad concat")
def shapes(rng):
    x, y = leaf(rng, 2, 3, 4, 5), leaf(rng, 2, 3, 5, 4)
    return [("x[:, :, ::2, ::2] + channel pad (option A)",
             lambda x: ops.pad(x[:, :, ::2, ::2], ((0, 0), (1, 2), (0, 0), (0, 0))), [x]),
            ("permute, reshape, concatenate",
             lambda x, y: ops.concatenate([x.permute(0, 1, 3, 2), y], axis=1).reshape(4, -1),
             [x, y])]
