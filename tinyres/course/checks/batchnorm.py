"""Gradient-check cases for batch norm (float64): training mode w.r.t. x, weight and bias, for
(N, C, H, W) and (N, C) input, with and without the affine part; and eval mode.

Training-mode batch norm is the op for which an all-ones projection is vacuous: sum(BN(x)) does
not depend on x. gradcheck projects on a random direction, so these cases do test dx."""
from tinyres.course.checks.inputs import leaf
from tinyres.course.checks.registry import register
from tinyres.functional.activation import relu as relu_op
from tinyres.functional.batchnorm import batch_norm
from tinyres.tensor import Tensor


def _running(rng, channels):
    """Running stats as a layer holds them (Tensors, so they live on the backend's device):
    a mean, and a positive variance."""
    return Tensor(rng.standard_normal(channels)), Tensor(rng.uniform(0.5, 2.0, channels))


def _training_cases(rng, then=lambda y: y):
    """Training mode (batch statistics), its output passed through `then` (a ReLU after it, as
    in a ResNet block)."""
    mean, var = _running(rng, 4)
    return [
        ("(3,4,3,2) w.r.t. x, weight, bias; running stats",
         lambda x, w, b: then(batch_norm(x, mean, var, w, b, training=True)),
         [leaf(rng, 3, 4, 3, 2), leaf(rng, 4), leaf(rng, 4)]),
        ("(5,3) w.r.t. x, weight, bias",
         lambda x, w, b: then(batch_norm(x, None, None, w, b, training=True)),
         [leaf(rng, 5, 3), leaf(rng, 3), leaf(rng, 3)]),
        ("(3,4,3,2) affine=False",
         lambda x: then(batch_norm(x, None, None, None, None, training=True)),
         [leaf(rng, 3, 4, 3, 2)]),
    ]


@register("batch_norm (training)")
def batch_norm_training(rng):
    return _training_cases(rng)


@register("batch_norm + ReLU (training)")
def batch_norm_relu_training(rng):
    return _training_cases(rng, then=relu_op)


@register("batch_norm (eval)")
def batch_norm_eval(rng):
    mean4, var4 = _running(rng, 4)
    mean3, var3 = _running(rng, 3)
    return [
        ("(2,4,3,3) w.r.t. x, weight, bias",
         lambda x, w, b: batch_norm(x, mean4, var4, w, b, training=False),
         [leaf(rng, 2, 4, 3, 3), leaf(rng, 4), leaf(rng, 4)]),
        ("(1,3) batch of one, no affine",
         lambda x: batch_norm(x, mean3, var3, None, None, training=False),
         [leaf(rng, 1, 3)]),
    ]
