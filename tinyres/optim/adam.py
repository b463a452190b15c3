"""Adam and AdamW: a step size per weight, from running averages of the gradient and its square.

Not the paper's optimizer (that is SGD with momentum), but the usual baseline to compare it
with. Step t (from 1) for a weight w with gradient g, as PyTorch computes it:

    g <- g + lambda * w                      Adam's weight decay: an L2 term, as in SGD
    w <- w * (1 - lr * lambda)               AdamW's instead: decay decoupled from the gradient
    m <- beta1 * m + (1 - beta1) * g         first moment (m = v = 0 before step 1)
    v <- beta2 * v + (1 - beta2) * g^2       second moment
    m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)      bias corrections: m, v start at 0
    w <- w - lr * m_hat / (sqrt(v_hat) + eps)

With Adam, the L2 gradient lambda*w is divided by sqrt(v_hat) like every gradient, so weights
with large gradients are barely decayed; AdamW (Loshchilov & Hutter) decays all weights alike.
"""
import math

from tinyres.backend import get_array_module
from tinyres.errors import not_supported
from tinyres.optim.optimizer import Optimizer, refuse_options


class Adam(Optimizer):
    """Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)."""

    decoupled_weight_decay = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None):
        refuse_options(type(self).__name__, maximize, differentiable)
        if amsgrad:
            raise not_supported(type(self).__name__, "amsgrad=True", "use amsgrad=False")
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"{type(self).__name__} needs lr, eps and weight_decay >= 0, got "
                             f"lr={lr}, eps={eps}, weight_decay={weight_decay}")
        if len(betas) != 2 or not all(0 <= beta < 1 for beta in betas):
            raise ValueError(f"{type(self).__name__} needs betas = (beta1, beta2) in [0, 1), "
                             f"got {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay))

    def step(self):
        for group in self.param_groups:
            lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                xp = get_array_module(p.data)
                state = self.state.setdefault(id(p), {})
                if not state:
                    state.update(step=0, exp_avg=xp.zeros_like(p.data),
                                 exp_avg_sq=xp.zeros_like(p.data))
                state["step"] += 1
                t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
                g = p.grad
                if weight_decay != 0 and self.decoupled_weight_decay:
                    p.data *= 1 - lr * weight_decay
                elif weight_decay != 0:
                    g = g + weight_decay * p.data
                m *= beta1
                m += (1 - beta1) * g
                v *= beta2
                v += (1 - beta2) * g * g
                step_size = lr / (1 - beta1 ** t)                    # lr / bias correction 1
                denominator = xp.sqrt(v) / math.sqrt(1 - beta2 ** t) + eps   # sqrt(v_hat) + eps
                p.data -= step_size * m / denominator


class AdamW(Adam):
    """AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2): decoupled decay."""

    decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, **options):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, **options)
