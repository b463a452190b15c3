"""Floor 5: the classifier head — Flatten, then Linear.

Linear keeps PyTorch's layout: weight (out_features, in_features), so y = x W^T + b, and
PyTorch's default initialisation (U(-1/sqrt(in_features), 1/sqrt(in_features)) for both).
"""
import tinyres.functional as F
from tinyres import ops
from tinyres.nn import init
from tinyres.nn.module import Module, new_parameter


class Linear(Module):
    """x (..., in_features) -> (..., out_features)."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        for label, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Linear: {label} must be a positive int, got {value!r}")
        self.in_features, self.out_features = in_features, out_features
        self.weight = new_parameter(out_features, in_features)
        if bias:
            self.bias = new_parameter(out_features)
        else:
            self.register_parameter("bias", None)
        init.default_layer_init_(self.weight, self.bias)
        self.to(device=device, dtype=dtype)

    def forward(self, x):
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"{self.label}: expected input with {self.in_features} features "
                             f"(N, {self.in_features}), got shape {tuple(x.shape)}")
        return F.linear(x, self.weight, self.bias, name=self.label)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Flatten(Module):
    """Merge dims start_dim..end_dim: (N, C, H, W) -> (N, C*H*W) with the defaults."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return ops.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
