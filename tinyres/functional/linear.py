"""Floor 4: the fully connected layer.

A ResNet ends with global average pooling, a flatten from (N, C, 1, 1) to (N, C) (``x.flatten(1)``,
a reshape), and one linear layer from C features to the K class scores:

    y = x W^T + b          x (N, in), W (out, in) as PyTorch stores it, b (out,), y (N, out)

Backward, from y_nj = sum_i x_ni W_ji + b_j:

    dL/dx = dL/dy W        (N, out) @ (out, in) -> (N, in)
    dL/dW = dL/dy^T x      (out, N) @ (N, in)   -> (out, in)
    dL/db = sum over n of dL/dy                 -> (out,)

Leading axes beyond N are allowed, (..., in) -> (..., out), as in PyTorch; for the weight's
gradient they are folded into one batch axis.
"""
from tinyres.autograd import Function


class Linear(Function):
    """y = x @ W^T + b;   dL/dx = gy @ W,  dL/dW = gy^T @ x,  dL/db = sum of gy over the batch"""

    def __init__(self, has_bias):
        self.has_bias = has_bias

    def forward(self, x, weight, *bias):
        self.save(x=x, weight=weight)
        y = x @ weight.T                                      # (..., in) @ (in, out) -> (..., out)
        if self.has_bias:
            y += bias[0]                                      # (out,) broadcast over rows
        return y

    def backward(self, gy):
        out_features, in_features = self.weight.shape
        gx = gy @ self.weight                                 # (..., out) @ (out, in) -> (..., in)
        gy_rows = gy.reshape(-1, out_features)                # (N, out), leading axes folded
        x_rows = self.x.reshape(-1, in_features)              # (N, in)
        gweight = gy_rows.T @ x_rows                          # (out, in)
        if self.has_bias:
            return gx, gweight, gy_rows.sum(axis=0)           # (out,)
        return gx, gweight


def linear(input, weight, bias=None, *, name=None):
    """y = x W^T + b, as ``torch.nn.functional.linear``: x (..., in), weight (out, in), bias
    (out,) or None. `name` is how errors name the layer (e.g. "Linear fc")."""
    x, layer = input, name or "linear"
    if weight.ndim != 2:
        raise ValueError(f"{layer}: weight must have shape (out_features, in_features), got shape "
                         f"{tuple(weight.shape)}")
    out_features, in_features = weight.shape
    if x.ndim < 1 or x.shape[-1] != in_features:
        raise ValueError(f"{layer}: expected input with {in_features} features (N, {in_features}), "
                         f"got shape {tuple(x.shape)}")
    if bias is not None and tuple(bias.shape) != (out_features,):
        raise ValueError(f"{layer}: bias must have shape ({out_features},) to match the weight's "
                         f"{out_features} outputs, got shape {tuple(bias.shape)}")
    for label, v in (("input", x), ("weight", weight)):
        if v.dtype.kind != "f":
            raise TypeError(f"{layer}: expected a floating point {label}, got dtype {v.dtype}")
    return Linear(bias is not None)(x, weight, *([bias] if bias is not None else []))
