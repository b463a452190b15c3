"""Floor 4: the ReLU, the nonlinearity between the layers of a ResNet.

    y = max(x, 0)           dy/dx = 1 where x > 0, else 0

The backward needs only to know where the unit was open. y > 0 exactly where x > 0, so we keep y
(which the next layer holds anyway) rather than x. At x = 0 the derivative is undefined; like
PyTorch we take it as 0.
"""
from tinyres.autograd import Function
from tinyres.backend import get_array_module


class ReLU(Function):
    """y = max(x, 0);   dL/dx = dL/dy where y > 0, else 0"""

    def forward(self, x):
        self.y = get_array_module(x).maximum(x, 0)           # same shape and dtype as x
        return self.y

    def backward(self, gy):
        return gy * (self.y > 0)                             # the mask keeps gy's dtype


def relu(x):
    """max(x, 0) element-wise, as ``torch.nn.functional.relu``."""
    if x.dtype.kind != "f":
        raise TypeError(f"relu: expected a floating point input, got dtype {x.dtype}")
    return ReLU()(x)
