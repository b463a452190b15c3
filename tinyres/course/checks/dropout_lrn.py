"""Gradient-check cases for dropout and local response normalisation (float64).

gradcheck calls the function once per perturbed element; dropout is seeded with the same int on
every call, so every call draws the same mask and the function is deterministic."""
from tinyres.course.checks.inputs import leaf
from tinyres.course.checks.registry import register
from tinyres.functional.dropout import dropout
from tinyres.functional.lrn import local_response_norm


@register("dropout")
def dropout_cases(rng):
    return [("(4,10) p=0.3, seed 7 on every call",
             lambda x: dropout(x, p=0.3, rng=7), [leaf(rng, 4, 10)])]


@register("local_response_norm")
def lrn_cases(rng):
    return [
        ("(2,6,3,3) size=5, k=2, alpha=1e-4, beta=0.75",
         lambda x: local_response_norm(x, 5, alpha=1e-4, beta=0.75, k=2.0),
         [leaf(rng, 2, 6, 3, 3)]),
        ("(2,5,4) size=4 (even window), alpha=0.5",
         lambda x: local_response_norm(x, 4, alpha=0.5, beta=0.75, k=1.0),
         [leaf(rng, 2, 5, 4)]),
    ]
