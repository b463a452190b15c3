"""Floor 4: batch norm in training mode built from primitive ops, so autograd derives its backward.

The same function as `batch_norm(..., training=True)` (functional/batchnorm.py), written as a
chain of the ops of tinyres.ops (mean, subtraction, product, power, division), each of which
knows its own backward:

    mean = x.mean(axes)       centred = x - mean      var = (centred * centred).mean(axes)
    y = centred / (var + eps) ** 0.5          then * weight, + bias          (per channel)

Autograd walks that graph backwards: about ten small backward steps, each storing and reading a
full (N, C, H, W) array. functional/batchnorm.py does the same in one closed-form step
(docs/batchnorm.md derives it); A3 asks for both, and for the time each takes.
"""


def batch_norm_graph(x, weight=None, bias=None, eps=1e-5):
    """Training-mode batch norm of Tensor x (N, C) or (N, C, H, W) with the batch's statistics
    (biased variance); weight, bias Tensors (C,) or None. Returns y (x's shape), a Tensor whose
    backward autograd derives. No running statistics."""
    # BEGIN SOLUTION A3 batch_norm_graph
    axes = (0,) + tuple(range(2, x.ndim))                   # every axis but the channels
    per_channel = (1, -1) + (1,) * (x.ndim - 2)             # (C,) -> (1, C, 1, 1)
    mean = x.mean(axis=axes, keepdims=True)                 # (1, C, 1, 1)
    centred = x - mean                                      # (N, C, H, W)
    var = (centred * centred).mean(axis=axes, keepdims=True)    # (1, C, 1, 1), biased
    y = centred / (var + eps) ** 0.5                        # x_hat
    if weight is not None:
        y = y * weight.reshape(per_channel)
    if bias is not None:
        y = y + bias.reshape(per_channel)
    return y
    # END SOLUTION
