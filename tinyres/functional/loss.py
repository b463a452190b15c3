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
from tinyres.errors import not_supported
from tinyres.tensor import Tensor


def _log_softmax(x, axis):
    xp = get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)             # largest entry 0: exp <= 1
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


class LogSoftmax(Function):
    """y = z - log sum exp z (along `axis`);   dL/dz = gy - exp(y) * sum(gy)"""

    def __init__(self, dim):
        self.dim = dim

    def forward(self, x):
        y = _log_softmax(x, self.dim)                         # x's shape
        self.save(y=y)
        return y

    def backward(self, gy):
        xp = get_array_module(gy)
        return gy - xp.exp(self.y) * gy.sum(axis=self.dim, keepdims=True)


def log_softmax(input, dim=None, _stacklevel=3, dtype=None):
    """log(softmax(x)) along `dim`, computed stably, as ``torch.nn.functional.log_softmax``.
    Without dim, PyTorch's legacy choice: dim 0 for 0-, 1- and 3-D input, else dim 1."""
    x = input
    if dtype is not None:
        raise TypeError("log_softmax: dtype= is not supported in tinyres; convert the input "
                        "first with .to(dtype)")
    if x.dtype.kind != "f":
        raise TypeError(f"log_softmax: expected a floating point input, got dtype {x.dtype}")
    if dim is None:
        dim = 0 if x.ndim in (0, 1, 3) else 1
    if not -x.ndim <= dim < x.ndim:
        raise IndexError(f"log_softmax: dim {dim} is out of range for an input of shape "
                         f"{tuple(x.shape)}")
    return LogSoftmax(dim)(x)


def softmax(input, dim=None, _stacklevel=3, dtype=None):
    """exp(log_softmax(x)) along `dim`, as ``torch.nn.functional.softmax``."""
    return log_softmax(input, dim, _stacklevel, dtype).exp()


class CrossEntropy(Function):
    """L = -mean_n log softmax(z)_{n, t_n};   dL/dz = (softmax(z) - onehot(t)) / N"""

    def __init__(self, target):
        self.target = target                                  # (N,) integer, on z's device

    def forward(self, logits):
        xp = get_array_module(logits)
        log_p = _log_softmax(logits, axis=1)                  # (N, K)
        self.save(log_p=log_p)
        picked = xp.take_along_axis(log_p, self.target[:, None], axis=1)        # (N, 1)
        return -picked.sum() / logits.shape[0]                # () scalar, logits' dtype

    def backward(self, gy):
        xp = get_array_module(gy)
        n = self.log_p.shape[0]
        grad = xp.exp(self.log_p)                             # (N, K) softmax
        grad[xp.arange(n), self.target] -= 1.0                # minus the one-hot rows
        return grad * (gy / n)


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """Cross-entropy of logits (N, K) against integer class indices target (N,), averaged
    (reduction="mean") or summed ("sum"), as ``torch.nn.functional.cross_entropy``. `target`
    may be a Tensor, a backend array or a host NumPy array (moved to the logits' device).
    PyTorch's other options raise (class weights, ignore_index, label smoothing, "none")."""
    logits = input
    for given, feature in ((weight is not None, "weight= (class weights)"),
                           (size_average is not None or reduce is not None,
                            "size_average= / reduce= (deprecated in PyTorch)"),
                           (ignore_index != -100, "ignore_index="),
                           (label_smoothing != 0.0, "label_smoothing=")):
        if given:
            raise not_supported("cross_entropy", feature, "use the plain loss (reduction='mean'"
                                " or 'sum') on the rows you want")
    if reduction not in ("mean", "sum"):
        raise not_supported("cross_entropy", f"reduction={reduction!r}",
                            "use 'mean' or 'sum' (or log_softmax and indexing for per-row losses)")
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
    loss = CrossEntropy(target)(logits)
    return loss * float(n) if reduction == "sum" else loss
