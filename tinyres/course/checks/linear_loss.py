"""Gradient-check cases for relu, linear, flatten, log_softmax and cross_entropy (float64)."""
import numpy

from tinyres.course.checks.inputs import leaf
from tinyres.course.checks.registry import register
from tinyres.functional.activation import relu
from tinyres.functional.linear import linear
from tinyres.ops import flatten
from tinyres.functional.loss import cross_entropy, log_softmax
from tinyres.tensor import Tensor


@register("relu")
def relu_cases(rng):
    # keep away from the kink at 0, where finite differences straddle two slopes
    data = rng.standard_normal((2, 3, 4, 4))
    data = numpy.sign(data) * (numpy.abs(data) + 1e-2)
    return [("(2,3,4,4), |x| > 1e-2", relu, [Tensor(data, requires_grad=True)])]


@register("linear / flatten")
def linear_cases(rng):
    return [
        ("(4,6) -> 5 with bias", linear, [leaf(rng, 4, 6), leaf(rng, 5, 6), leaf(rng, 5)]),
        ("(2,3,6) -> 2 without bias", linear, [leaf(rng, 2, 3, 6), leaf(rng, 2, 6)]),
        ("flatten (2,3,2,2) then linear 12 -> 3",
         lambda x, w: linear(flatten(x, 1), w), [leaf(rng, 2, 3, 2, 2), leaf(rng, 3, 12)]),
    ]


@register("log_softmax / cross_entropy")
def loss_cases(rng):
    target = Tensor(rng.integers(0, 5, size=6))
    return [
        ("log_softmax (3,5) dim=-1", lambda x: log_softmax(x, dim=-1), [leaf(rng, 3, 5)]),
        ("log_softmax (2,4,3) dim=1", lambda x: log_softmax(x, dim=1), [leaf(rng, 2, 4, 3)]),
        ("cross_entropy (6,5) w.r.t. logits",
         lambda z: cross_entropy(z, target), [Tensor(3 * rng.standard_normal((6, 5)),
                                                     requires_grad=True)]),
    ]
