"""Floor 3: checking a backward pass against finite differences.

For a function f of inputs x_1..x_k, backward claims dL/dx_i for L = <f(x), r>, the projection of
the output on a fixed random direction r. (A random r matters: with r = all ones, L = sum(f(x)),
and for a normalising layer such as batch norm sum(BN(x)) does not depend on x at all, so a
wrong backward would pass.) Central differences give the same derivative numerically:

    dL/dx[j] ~ (L(x + eps e_j) - L(x - eps e_j)) / (2 eps)

with an error of order eps^2 — small only in float64, so everything here runs in float64.
"""
from dataclasses import dataclass

import numpy

from tinyres.autograd import no_grad
from tinyres.backend import get_array_module, to_device
from tinyres.tensor import Tensor


class GradcheckError(AssertionError):
    """The analytic gradient disagrees with finite differences."""


@dataclass
class GradcheckReport:
    max_rel_error: float      # worst |analytic - numeric| / max(|analytic|, |numeric|, atol/rtol)
    checked: int              # elements perturbed
    total: int                # elements of all differentiable inputs
    sampled: bool             # True when only a random subset of elements was checked

    def __str__(self):
        subset = f" (a random subset of {self.checked} of {self.total})" if self.sampled else ""
        return f"max relative error {self.max_rel_error:.2e} over {self.checked} elements{subset}"


def _projection(fn, inputs, directions):
    """L = sum_k <f(x)_k, r_k> for every output k of fn."""
    outputs = fn(*inputs)
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    return outputs, sum((out * r).sum() for out, r in zip(outputs, directions))


def gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4, max_elements=2000, seed=0):
    """Compare fn's backward with central differences, in float64.

    `inputs` are Tensors (all float64: the check converts nothing silently); those with
    requires_grad=True are checked, the rest are held constant. An input with more than
    `max_elements` elements is checked on a random subset of that many, which the report states.
    Raises GradcheckError naming the input, the worst element's index, analytic vs numeric value
    and the relative error; returns a GradcheckReport otherwise.
    """
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad and x.dtype != numpy.float64:
            raise TypeError(f"gradcheck: input {i} has dtype {x.dtype}; finite differences need "
                            "float64 (make the inputs with dtype=numpy.float64)")
    rng = numpy.random.default_rng(seed)
    with no_grad():
        outputs = fn(*inputs)
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    directions = [_random_like(rng, out.data) for out in outputs]

    # analytic: one backward of the projection
    for x in inputs:
        if isinstance(x, Tensor):
            x.grad = None
    _, loss = _projection(fn, inputs, directions)
    loss.backward()

    worst, checked, total, sampled = 0.0, 0, 0, False
    for i, x in enumerate(inputs):
        if not (isinstance(x, Tensor) and x.requires_grad):
            continue
        analytic = to_device(x.grad, "cpu") if x.grad is not None else numpy.zeros(x.shape)
        positions = numpy.arange(x.numel())
        if x.numel() > max_elements:
            positions = numpy.sort(rng.choice(x.numel(), max_elements, replace=False))
            sampled = True
        total += x.numel()
        for j in positions:
            index = tuple(int(k) for k in numpy.unravel_index(j, x.shape))
            original = x.data[index].item()       # perturb in place: works for any strides
            with no_grad():
                x.data[index] = original + eps
                plus = _projection(fn, inputs, directions)[1].item()
                x.data[index] = original - eps
                minus = _projection(fn, inputs, directions)[1].item()
                x.data[index] = original
            numeric = (plus - minus) / (2 * eps)
            a = float(analytic[index])
            error = abs(a - numeric)
            # relative to the gradient's size, but never to less than the absolute tolerance
            relative = error / max(abs(a), abs(numeric), atol / rtol)
            if error > atol + rtol * abs(numeric):
                raise GradcheckError(
                    f"gradcheck failed for input {i} (shape {tuple(x.shape)}) at index {index}: "
                    f"analytic {a:.10g}, numeric {numeric:.10g}, relative error {relative:.3e} "
                    f"(atol {atol}, rtol {rtol})")
            worst = max(worst, relative)
            checked += 1
    return GradcheckReport(worst, checked, total, sampled)


def _random_like(rng, array):
    xp = get_array_module(array)
    return xp.asarray(rng.standard_normal(array.shape).astype(array.dtype))
