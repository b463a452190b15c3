"""Floor 7 (beside train): synchronised batch norm — the statistics of the global batch.

Batch norm in training normalises each channel by the mean and variance of the batch
(functional/batchnorm.py). With N ranks, "the batch" can mean two things:

    per-rank (the default, as PyTorch's DDP)   each rank uses the statistics of its own B/N images
    synchronised (--sync-bn)                   every rank uses the statistics of all B images

Per-rank statistics make a data-parallel step differ from the one-process step on the same B
images: the normalisation, and so every gradient, depends on how the batch was cut (with
B/N = 8, a channel's mean comes from 8 images, not 128, and is noisier). Synchronised statistics
make it the same step, at the cost of two small all-reduces per batch-norm layer (one in forward,
one in backward) in the middle of the computation.

Forward. A channel's mean and variance over all ranks need only three sums, which add up across
ranks, so one all-reduce of a (2C + 1,) buffer gives them to everyone:

    S1 = sum of x,  S2 = sum of x^2  (per channel, over all ranks' N*H*W values),  M = count
    mean = S1 / M          var = S2 / M - mean^2          (biased, as one-process batch norm)

S2/M - mean^2 cancels badly in float32 when |mean| >> std, so the sums are taken in float64 (as
the one-process version avoids it with a second pass over x, which here would cost one more
all-reduce). The rest is one-process batch norm with these statistics, including the running
averages (with M / (M - 1) for the unbiased variance, M the global count).

Backward. The one-process closed form (docs/batchnorm.md), with its two per-channel sums taken
over all ranks, again one all-reduce of a (2C,) buffer:

    G1 = sum of dy,  G2 = sum of dy * x_hat      (over all ranks)
    dx = (weight * inv_std / M) * (M * dy - G1 - x_hat * G2)
    dweight = sum of dy * x_hat,  dbias = sum of dy      (this rank's images only)

dx is the derivative of the sum of all ranks' losses with respect to this rank's x: every rank's
output depends on this rank's x through the shared mean and variance. dweight and dbias stay
local: they are this rank's share, and DataParallel.average_gradients sums the shares (and
divides by N, as it does for every other gradient, matching dx's sum of N rank losses).
"""
import numpy

from tinyres import backend
from tinyres.backend import get_array_module
from tinyres.functional.batchnorm import BatchNormBase, per_channel, reduce_axes
from tinyres.nn import BatchNorm2d
from tinyres.tensor import Tensor


def _sum_over_ranks(comm, array):
    """Sum a small device array over all ranks (through a host copy: MPI sends host memory)."""
    host = numpy.array(backend.to_device(array, "cpu"))         # a copy MPI may overwrite
    comm.allreduce_sum(host)
    return backend.to_device(host, backend.device_of(array))


class SyncBatchNormTrain(BatchNormBase):
    """Training-mode batch norm with the mean and variance of the batch over all ranks."""

    def __init__(self, comm, has_weight, has_bias, eps, momentum, running_mean, running_var):
        super().__init__(has_weight, has_bias)
        self.comm, self.eps, self.momentum = comm, eps, momentum
        self.running_mean, self.running_var = running_mean, running_var

    def forward(self, x, *params):
        xp = get_array_module(x)
        weight, bias = self._unpack(params)
        axes, ndim, channels = reduce_axes(x), x.ndim, x.shape[1]
        count_here = x.size // channels                          # N*H*W values per channel
        sums = xp.concatenate([x.sum(axis=axes, dtype=xp.float64),                  # (C,)
                               (x * x).sum(axis=axes, dtype=xp.float64),            # (C,)
                               xp.full((1,), count_here, dtype=xp.float64)])        # (2C + 1,)
        sums = _sum_over_ranks(self.comm, sums)                  # S1, S2, M of all ranks
        s1, s2, m = sums[:channels], sums[channels:2 * channels], float(sums[-1])
        if m <= 1:
            raise ValueError(f"SyncBatchNorm: expected more than 1 value per channel over all "
                             f"ranks when training, got {m:.0f}")
        mean64 = s1 / m                                          # (C,) float64
        var64 = xp.maximum(s2 / m - mean64 * mean64, 0.0)        # (C,) biased
        mean, var = mean64.astype(x.dtype), var64.astype(x.dtype)
        inv_std = 1.0 / xp.sqrt(var + self.eps)                  # (C,)
        y = (x - per_channel(mean, ndim)) * per_channel(inv_std, ndim)    # (N, C, H, W) x_hat
        if weight is not None:
            y *= per_channel(weight, ndim)
        if bias is not None:
            y += per_channel(bias, ndim)
        if self.running_mean is not None:                        # in place, as one process
            keep = 1.0 - self.momentum
            self.running_mean[...] = keep * self.running_mean + self.momentum * mean
            self.running_var[...] = keep * self.running_var + self.momentum * var * (m / (m - 1))
        self.save(x=x, mean=mean, inv_std=inv_std, weight=weight, m=m)
        return y

    def backward(self, gy):
        xp = get_array_module(gy)
        axes, ndim, channels = reduce_axes(gy), gy.ndim, gy.shape[1]
        x_hat = (self.x - per_channel(self.mean, ndim)) * per_channel(self.inv_std, ndim)
        gbias = gy.sum(axis=axes)                                # (C,)  this rank's sum dy
        gweight = (gy * x_hat).sum(axis=axes)                    # (C,)  this rank's sum dy*x_hat
        sums = _sum_over_ranks(self.comm, xp.concatenate([gbias, gweight]))     # (2C,)
        g1, g2 = sums[:channels], sums[channels:]                # over all ranks
        m = self.m
        scale = self.inv_std / m if self.weight is None else self.weight * self.inv_std / m
        gx = m * gy - per_channel(g1, ndim)                     # (N, C, H, W)
        gx -= x_hat * per_channel(g2, ndim)
        gx *= per_channel(scale, ndim)
        return self._pack(gx, None if self.weight is None else gweight, gbias)


def sync_batch_norm(x, weight, bias, running_mean, running_var, comm, momentum=0.1, eps=1e-5):
    """Training-mode batch norm of x (N, C, H, W) with the statistics of all ranks' batches.
    weight, bias: (C,) Tensors or None; running_mean, running_var: (C,) arrays/Tensors or None,
    updated in place."""
    running_mean = running_mean.data if isinstance(running_mean, Tensor) else running_mean
    running_var = running_var.data if isinstance(running_var, Tensor) else running_var
    fn = SyncBatchNormTrain(comm, weight is not None, bias is not None, eps, momentum,
                            running_mean, running_var)
    return fn(x, *[p for p in (weight, bias) if p is not None])


class SyncBatchNorm2d(BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch over all ranks of
    `comm`; in evaluation it is BatchNorm2d (running statistics: nothing to share)."""

    def __init__(self, num_features, comm, **options):
        super().__init__(num_features, **options)   # eps, momentum, affine, ... as BatchNorm2d
        self.comm = comm

    def _normalise(self, x):
        if not self.training and self.running_mean is not None:
            return super()._normalise(x)
        return sync_batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var,
                               self.comm, momentum=self.momentum, eps=self.eps)

    def extra_repr(self):
        return super().extra_repr() + f", ranks={self.comm.size}"


def convert_sync_batchnorm(model, comm):
    """Replace every BatchNorm2d in `model` by a SyncBatchNorm2d that holds the very same
    parameters and buffers (so an optimizer made before still works). Returns the model."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is not BatchNorm2d:
                continue
            sync = SyncBatchNorm2d(child.num_features, comm, eps=child.eps,
                                   momentum=child.momentum, affine=child.affine,
                                   track_running_stats=child.track_running_stats)
            sync.weight, sync.bias = child.weight, child.bias
            sync.running_mean, sync.running_var = child.running_mean, child.running_var
            sync.train(child.training)
            module.add_module(name, sync)    # in the child's place (and with its name) in
                                             # parameters() and state_dict()
    return model
