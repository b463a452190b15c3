"""Floor 4: the ReLU, the nonlinearity between the layers of a ResNet.

    y = max(x, 0)           dy/dx = 1 where x > 0, else 0

The backward needs only to know where the unit was open. y > 0 exactly where x > 0, so we keep y
(which the next layer holds anyway) rather than x. At x = 0 the derivative is undefined; like
PyTorch we take it as 0.
"""
from tinyres.autograd import Function
from tinyres.backend import get_array_module
from tinyres.dispatch import fast_twin


@fast_twin("relu_forward")
def relu_forward(x):
    """y = max(x, 0), of x's shape and dtype (NaN stays NaN)."""
    return get_array_module(x).maximum(x, 0)


@fast_twin("relu_backward")
def relu_backward(gy, y):
    """dL/dx = dL/dy where the output y > 0, else 0."""
    return gy * (y > 0)                                      # the mask keeps gy's dtype


class ReLU(Function):
    """y = max(x, 0);   dL/dx = dL/dy where y > 0, else 0"""

    def forward(self, x):
        y = relu_forward(x)                                  # same shape and dtype as x
        self.save(y=y)
        return y

    def backward(self, gy):
        return relu_backward(gy, self.y)


def relu(input, inplace=False):
    """max(x, 0) element-wise, as ``torch.nn.functional.relu``. inplace=True is accepted (PyTorch
    model files pass it) and gives the same output, but x is left as it was: tinyres never
    overwrites an op's input (autograd may have saved it)."""
    x = input
    if x.dtype.kind != "f":
        raise TypeError(f"relu: expected a floating point input, got dtype {x.dtype}")
    return ReLU()(x)
