"""Stochastic gradient descent with momentum: the optimizer of the ResNet paper.

The paper trains CIFAR nets with "SGD [...] weight decay of 0.0001 and momentum of 0.9", lr 0.1.
The update is PyTorch's, step for step, for a parameter w with gradient g (lr = learning rate,
mu = momentum, tau = dampening, lambda = weight decay):

    g <- g + lambda * w                    weight decay, as an L2 term's gradient
    b <- g                                 on the first step
    b <- mu * b + (1 - tau) * g            afterwards (b: the momentum buffer)
    g <- g + mu * b   if nesterov   else   g <- b
    w <- w - lr * g

Note where lr sits: outside the buffer (Sutskever et al. write v <- mu*v - lr*g instead). The two
agree while lr is constant; after an lr drop this form shrinks the step at once.
"""
from tinyres.optim.optimizer import Optimizer, refuse_options


class SGD(Optimizer):
    """SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False), as
    PyTorch's; maximize and differentiable raise, foreach and fused (ways to run the same
    update faster) are accepted and change nothing."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 fused=None):
        refuse_options("SGD", maximize, differentiable)
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD needs lr, momentum and weight_decay >= 0, got lr={lr}, "
                             f"momentum={momentum}, weight_decay={weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(f"SGD with nesterov=True needs momentum > 0 and dampening 0, got "
                             f"momentum={momentum}, dampening={dampening}")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def step(self):
        # BEGIN SOLUTION A4 sgd_momentum
        for group in self.param_groups:
            lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if weight_decay != 0:
                    g = g + weight_decay * p.data
                if momentum != 0:
                    state = self.state.setdefault(id(p), {})
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = g.copy()
                    else:
                        buffer = state["momentum_buffer"]
                        buffer *= momentum
                        buffer += (1 - group["dampening"]) * g
                    buffer = state["momentum_buffer"]
                    g = g + momentum * buffer if group["nesterov"] else buffer
                p.data -= lr * g
        # END SOLUTION
