"""Floor 4: log-softmax and the cross-entropy loss that trains a classifier.

Softmax turns K class scores (logits) z into probabilities p_k = e^{z_k} / sum_j e^{z_j}. Its log,

    log p_k = z_k - log sum_j e^{z_j},

is computed *stably* by first subtracting the largest logit M (which changes nothing, since the
e^{-M} cancels): z_k - M is at most 0, so e^{z_k - M} never overflows, and one term of the sum is
e^0 = 1, so the log never sees 0. Without the shift, logits of 1e4 give e^{1e4} = inf and nan.

Backward of y = log_softmax(z) along one axis: dy_k/dz_i = [k = i] - p_i, so

    dL/dz = gy - softmax(z) * sum_k gy_k.

Cross-entropy of a batch of N rows with true classes t_n, averaged (PyTorch's mean reduction):

    L = -(1/N) sum_n log p_{n, t_n}        dL/dz = (softmax(z) - onehot(t)) / N

The gradient is the fused form of the two steps above: sum_k gy_k = -1/N in each row, and gy is
-1/N only at the true class.
"""
from tinyres.autograd import Function
from tinyres.backend import get_array_module
from tinyres.tensor import Tensor


def _log_softmax(x, axis):
    xp = get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)             # largest entry 0: exp <= 1
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


class LogSoftmax(Function):
    """y = z - log sum exp z (along `axis`);   dL/dz = gy - exp(y) * sum(gy)"""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        self.y = _log_softmax(x, self.axis)                   # x's shape
        return self.y

    def backward(self, gy):
        xp = get_array_module(gy)
        return gy - xp.exp(self.y) * gy.sum(axis=self.axis, keepdims=True)


def log_softmax(x, axis=-1):
    """log(softmax(x)) along `axis`, computed stably, as ``torch.nn.functional.log_softmax``."""
    if x.dtype.kind != "f":
        raise TypeError(f"log_softmax: expected a floating point input, got dtype {x.dtype}")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"log_softmax: axis {axis} is out of range for an input of shape "
                         f"{tuple(x.shape)}")
    return LogSoftmax(axis)(x)


class CrossEntropy(Function):
    """L = -mean_n log softmax(z)_{n, t_n};   dL/dz = (softmax(z) - onehot(t)) / N"""

    def __init__(self, target):
        self.target = target                                  # (N,) integer, on z's device

    def forward(self, logits):
        xp = get_array_module(logits)
        self.log_p = _log_softmax(logits, axis=1)             # (N, K)
        picked = xp.take_along_axis(self.log_p, self.target[:, None], axis=1)   # (N, 1)
        return -picked.sum() / logits.shape[0]                # () scalar, logits' dtype

    def backward(self, gy):
        xp = get_array_module(gy)
        n = self.log_p.shape[0]
        grad = xp.exp(self.log_p)                             # (N, K) softmax
        grad[xp.arange(n), self.target] -= 1.0                # minus the one-hot rows
        return grad * (gy / n)


def cross_entropy(logits, target):
    """Mean cross-entropy of logits (N, K) against integer class indices target (N,), as
    ``torch.nn.functional.cross_entropy``. `target` may be a Tensor, a backend array or a host
    NumPy array (moved to the logits' device)."""
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy: expected logits of shape (N, K), got shape "
                         f"{tuple(logits.shape)}")
    if logits.dtype.kind != "f":
        raise TypeError(f"cross_entropy: expected floating point logits, got dtype {logits.dtype}")
    n, classes = logits.shape
    xp = get_array_module(logits)
    target = xp.asarray(target.data if isinstance(target, Tensor) else target)
    if target.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer class indices, got dtype "
                        f"{target.dtype}")
    if target.shape != (n,):
        raise ValueError(f"cross_entropy: expected target of shape ({n},), one class index per row "
                         f"of logits {tuple(logits.shape)}, got shape {tuple(target.shape)}")
    if n == 0:
        raise ValueError("cross_entropy: the batch is empty (logits of shape (0, K)); the mean "
                         "over no rows is undefined")
    low, high = int(target.min()), int(target.max())
    if low < 0 or high >= classes:
        raise ValueError(f"cross_entropy: target holds class indices from {low} to {high}, "
                         f"expected 0 to {classes - 1} for logits with {classes} classes")
    return CrossEntropy(target)(logits)
