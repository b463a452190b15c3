"""Floor 4: batch normalisation (Ioffe & Szegedy 2015), the layer after every conv of a ResNet.

For each channel c, over the m = N*H*W values it takes in a batch (m = N for (N, C) input):

    mean_c = sum(x) / m            var_c = sum((x - mean_c)^2) / m        (biased: divides by m)
    x_hat  = (x - mean_c) / sqrt(var_c + eps)                             (zero mean, unit variance)
    y      = weight_c * x_hat + bias_c                                    (the learned affine part)

Training normalises with the batch's own statistics and keeps running averages of them, updated
in place with PyTorch's rule (momentum 0.1, eps 1e-5):

    running_mean = (1 - momentum) * running_mean + momentum * mean_c
    running_var  = (1 - momentum) * running_var  + momentum * var_c * m / (m - 1)   (unbiased)

Evaluation normalises with those running averages instead, so one image's output no longer
depends on the rest of its batch: it is then a fixed per-channel affine map.

The training backward is not the backward of an affine map, because mean_c and var_c depend on
every x of the channel. Its closed form, derived in docs/batchnorm.md, is

    dx = (weight * inv_std / m) * (m * dy - sum(dy) - x_hat * sum(dy * x_hat))
    dweight = sum(dy * x_hat)        dbias = sum(dy)              (sums per channel)

Accuracy: the per-channel sums run in the input's dtype. NumPy sums the contiguous H*W run of each
(n, c) plane pairwise, then adds the N plane sums one after another, so for float32 the relative
error grows like N * 6e-8 at worst (N = 1e6 rows of 2-D input would cost ~1%; batches of a few
hundred cost ~1e-5). The variance is taken in two passes (mean first, then the mean squared
deviation), which avoids the cancellation of E[x^2] - E[x]^2 when |mean| >> std.
"""
import math

from tinyres.autograd import Function
from tinyres.backend import device_of, get_array_module
from tinyres.dispatch import fast_twin
from tinyres.tensor import Tensor


# -- shapes: per-channel statistics ------------------------------------------------------------
# Public, with BatchNormBase below: synchronised batch norm (distributed/sync_batchnorm.py) is the
# same Function with its sums taken over all ranks, and builds on them.
def reduce_axes(x):
    """All axes but the channel axis 1: (0,) for (N, C), (0, 2, 3) for (N, C, H, W)."""
    return (0,) + tuple(range(2, x.ndim))


def values_per_channel(x):
    """m: how many values each channel's statistics average, N (or N*H*W)."""
    return x.shape[0] * math.prod(x.shape[2:])


def per_channel(v, ndim):
    """A (C,) vector shaped to broadcast against the input: (1, C) or (1, C, 1, 1)."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


# -- training mode: the array-level twins ------------------------------------------------------
@fast_twin("batch_norm_train_forward")
def batch_norm_train_forward(x, weight, bias, eps):
    """Normalise with batch statistics.

    x (N, C) or (N, C, H, W); weight, bias (C,) or None (None: no scale / no shift).
    Returns y (x's shape), mean (C,), var (C,) (biased, divided by m), inv_std = 1/sqrt(var+eps)
    (C,).
    """
    xp = get_array_module(x)
    axes, ndim = reduce_axes(x), x.ndim
    mean = x.mean(axis=axes)                                  # (C,)
    centred = x - per_channel(mean, ndim)                    # (N, C, H, W)
    var = (centred * centred).mean(axis=axes)                 # (C,)  biased
    inv_std = 1.0 / xp.sqrt(var + eps)                        # (C,)
    y = centred * per_channel(inv_std, ndim)                 # (N, C, H, W)  x_hat
    if weight is not None:
        y *= per_channel(weight, ndim)
    if bias is not None:
        y += per_channel(bias, ndim)
    return y, mean, var, inv_std


@fast_twin("batch_norm_train_backward")
def batch_norm_train_backward(gy, x, mean, inv_std, weight):
    """The closed-form backward of `batch_norm_train_forward`.

    gy, x (N, C) or (N, C, H, W); mean, inv_std, weight (C,) (weight None: taken as ones).
    Returns gx (x's shape), gweight (C,) (None when weight is None) and gbias (C,) (always: the
    caller drops it when there is no bias).
    """
    # BEGIN SOLUTION A3 batch_norm_backward
    axes, ndim = reduce_axes(x), x.ndim
    m = values_per_channel(x)
    x_hat = (x - per_channel(mean, ndim)) * per_channel(inv_std, ndim)   # (N, C, H, W)
    gbias = gy.sum(axis=axes)                                 # (C,)  sum dy
    gweight = (gy * x_hat).sum(axis=axes)                     # (C,)  sum dy*x_hat
    scale = inv_std / m if weight is None else weight * inv_std / m        # (C,)
    gx = m * gy - per_channel(gbias, ndim)                   # (N, C, H, W)
    gx -= x_hat * per_channel(gweight, ndim)
    gx *= per_channel(scale, ndim)
    return gx, (None if weight is None else gweight), gbias
    # END SOLUTION


# -- eval mode: a fixed per-channel affine map -------------------------------------------------
@fast_twin("batch_norm_eval_forward")
def batch_norm_eval_forward(x, mean, scale, bias):
    """y = (x - mean) * scale + bias, per channel: x (N, C) or (N, C, H, W); mean, scale (C,)
    (scale = weight * inv_std of the running variance); bias (C,) or None."""
    ndim = x.ndim
    y = (x - per_channel(mean, ndim)) * per_channel(scale, ndim)         # (N, C, H, W)
    if bias is not None:
        y += per_channel(bias, ndim)
    return y


# -- the Functions -----------------------------------------------------------------------------
class BatchNormBase(Function):
    """x, then weight and bias where they are given (a Function's inputs cannot be None).

    The base of every batch-norm Function, here and in distributed/sync_batchnorm.py."""

    def __init__(self, has_weight, has_bias):
        self.has_weight, self.has_bias = has_weight, has_bias

    def _unpack(self, params):
        params = list(params)
        weight = params.pop(0) if self.has_weight else None
        bias = params.pop(0) if self.has_bias else None
        return weight, bias

    def _pack(self, gx, gweight, gbias):
        grads = (gx,)
        grads += (gweight,) if self.has_weight else ()
        grads += (gbias,) if self.has_bias else ()
        return grads


class BatchNormTrain(BatchNormBase):
    """y = weight * (x - batch mean) / sqrt(batch var + eps) + bias; updates the running stats."""

    def __init__(self, has_weight, has_bias, eps, momentum, running_mean, running_var):
        super().__init__(has_weight, has_bias)
        self.eps, self.momentum = eps, momentum
        self.running_mean, self.running_var = running_mean, running_var

    def forward(self, x, *params):
        weight, bias = self._unpack(params)
        y, mean, var, inv_std = batch_norm_train_forward(x, weight, bias, self.eps)
        self.update_running_stats(x, mean, var)
        self.save(x=x, mean=mean, inv_std=inv_std, weight=weight)
        return y

    def update_running_stats(self, x, mean, var):
        if self.running_mean is not None:                     # in place: the layer's own arrays
            m = values_per_channel(x)
            keep = 1.0 - self.momentum
            self.running_mean[...] = keep * self.running_mean + self.momentum * mean
            self.running_var[...] = keep * self.running_var + self.momentum * var * (m / (m - 1))

    def backward(self, gy):
        return self._pack(*batch_norm_train_backward(gy, self.x, self.mean, self.inv_std,
                                                     self.weight))


class BatchNormEval(BatchNormBase):
    """y = weight * (x - running_mean) / sqrt(running_var + eps) + bias: a per-channel affine map,
    so dx = dy * weight * inv_std, dweight = sum(dy * x_hat), dbias = sum(dy)."""

    def __init__(self, has_weight, has_bias, eps, running_mean, running_var):
        super().__init__(has_weight, has_bias)
        self.eps, self.running_mean, self.running_var = eps, running_mean, running_var

    def forward(self, x, *params):
        xp = get_array_module(x)
        weight, bias = self._unpack(params)
        mean = self.running_mean.astype(x.dtype, copy=False)                   # (C,)
        inv_std = 1.0 / xp.sqrt(self.running_var.astype(x.dtype, copy=False) + self.eps)
        scale = inv_std if weight is None else weight * inv_std                # (C,)
        y = batch_norm_eval_forward(x, mean, scale, bias)                      # (N, C, H, W)
        self.save(x=x, mean=mean, inv_std=inv_std, scale=scale)
        return y

    def backward(self, gy):
        axes, ndim = reduce_axes(gy), gy.ndim
        gx = gy * per_channel(self.scale, ndim)                               # (N, C, H, W)
        gweight = gbias = None
        if self.has_weight:
            x_hat = (self.x - per_channel(self.mean, ndim)) * per_channel(self.inv_std, ndim)
            gweight = (gy * x_hat).sum(axis=axes)                              # (C,)
        if self.has_bias:
            gbias = gy.sum(axis=axes)                                          # (C,)
        return self._pack(gx, gweight, gbias)


# -- the public function -----------------------------------------------------------------------
def _array(v):
    return v.data if isinstance(v, Tensor) else v


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5, *, name=None):
    """Batch normalisation of (N, C) or (N, C, H, W) input, as ``torch.nn.functional.batch_norm``,
    in its argument order (the running statistics first, then the affine part).

    running_mean, running_var: (C,) backend arrays or Tensors, or None; in training they are
    updated in place (when not None), in eval they normalise. weight, bias: (C,) Tensors, or
    None for no affine part. `name` is how errors name the layer (e.g. "BatchNorm2d layer1.0.bn1").
    """
    x, layer = input, name or "batch_norm"
    if x.ndim not in (2, 4):
        raise ValueError(f"{layer}: expected a 2-D (N, C) or 4-D (N, C, H, W) input, got shape "
                         f"{tuple(x.shape)}")
    if x.dtype.kind != "f":
        raise TypeError(f"{layer}: expected a floating point input, got dtype {x.dtype}")
    channels = x.shape[1]
    pattern = "(N, {})" if x.ndim == 2 else "(N, {}, H, W)"
    for label, v in (("weight", weight), ("bias", bias), ("running_mean", running_mean),
                     ("running_var", running_var)):
        if v is None:
            continue
        if v.ndim != 1:
            raise ValueError(f"{layer}: {label} must hold one value per channel, shape (C,), got "
                             f"shape {tuple(v.shape)}")
        if v.shape[0] != channels:
            raise ValueError(f"{layer}: expected input with {v.shape[0]} channels "
                             f"{pattern.format(v.shape[0])}, got shape {tuple(x.shape)}")
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{layer}: give both running_mean and running_var, or neither")
    for label, v in (("running_mean", running_mean), ("running_var", running_var)):
        if v is not None and device_of(_array(v)) != device_of(_array(x)):
            raise RuntimeError(f"{layer}: {label} is on '{device_of(_array(v))}' but the input is "
                               f"on '{device_of(_array(x))}'; move the layer with .to(device)")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{layer}: momentum must be in [0, 1], got {momentum}")
    running_mean, running_var = _array(running_mean), _array(running_var)
    params = [p for p in (weight, bias) if p is not None]
    if training:
        if values_per_channel(x) <= 1:
            raise ValueError(f"{layer}: expected more than 1 value per channel when training, got "
                             f"input shape {tuple(x.shape)}")
        fn = BatchNormTrain(weight is not None, bias is not None, eps, momentum, running_mean,
                            running_var)
    else:
        if running_mean is None:
            raise ValueError(f"{layer}: eval mode (training=False) normalises with running_mean "
                             "and running_var, but they are None; pass training=True to use the "
                             "batch statistics")
        fn = BatchNormEval(weight is not None, bias is not None, eps, running_mean, running_var)
    return fn(x, *params)
