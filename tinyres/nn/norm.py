"""Floor 5: normalisation layers — BatchNorm2d, BatchNorm1d, LocalResponseNorm.

Batch norm (Ioffe & Szegedy 2015) normalises each channel by the mean and variance of the
batch, then scales and shifts it by the learned weight (gamma) and bias (beta):

    y = (x - mean) / sqrt(var + eps) * weight + bias

In training it uses the batch's statistics and keeps a running average of them, the *buffers*
running_mean and running_var (running = (1 - momentum) * running + momentum * batch, with the
unbiased batch variance, as PyTorch). In evaluation (``model.eval()``) it normalises with those
running averages instead, so one image's output no longer depends on the rest of its batch.
"""
import numpy

import tinyres.functional as F
from tinyres import backend, ops
from tinyres.nn import init
from tinyres.nn.module import Module, new_parameter


class _BatchNorm(Module):
    """What BatchNorm1d and BatchNorm2d share: parameters, buffers, and the mode switch."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None, *, bias=True):
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"{type(self).__name__}: num_features must be a positive int, got "
                             f"{num_features!r}")
        if momentum is None or not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{type(self).__name__}: momentum must be a number in [0, 1] (the "
                             f"cumulative average of momentum=None is not supported), got "
                             f"{momentum!r}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        # gamma = 1 and beta = 0: at first, y = x_hat. affine=False learns neither; bias=False
        # (keyword-only, as in PyTorch 2.x) keeps gamma but drops beta.
        self.register_parameter("weight", init.ones_(new_parameter(num_features)) if affine
                                else None)
        self.register_parameter("bias", new_parameter(num_features) if affine and bias else None)
        xp = backend.array_module()
        if track_running_stats:
            self.register_buffer("running_mean", xp.zeros(num_features, dtype=numpy.float32))
            self.register_buffer("running_var", xp.ones(num_features, dtype=numpy.float32))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
        self.to(device=device, dtype=dtype)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.data[...] = 0.0
            self.running_var.data[...] = 1.0

    def _normalise(self, x):
        # Batch statistics while training, and always when there are no running averages.
        use_batch_stats = self.training or self.running_mean is None
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            training=use_batch_stats, momentum=self.momentum, eps=self.eps,
                            name=self.label)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm2d(_BatchNorm):
    """Per-channel batch norm of x (N, C, H, W): statistics over N, H and W."""

    def forward(self, x):
        self._check_input(x, "(N, C, H, W)", self.num_features)
        return self._normalise(x)


class BatchNorm1d(_BatchNorm):
    """Per-feature batch norm of x (N, C) or (N, C, L): statistics over N (and L)."""

    def forward(self, x):
        if x.ndim not in (2, 3):
            raise ValueError(f"{self.label}: expected a 2-D (N, C) or 3-D (N, C, L) input, got "
                             f"shape {tuple(x.shape)}")
        layout = "(N, C)" if x.ndim == 2 else "(N, C, L)"
        self._check_input(x, layout, self.num_features)
        if x.ndim == 2:
            return self._normalise(x)
        N, C, L = x.shape                                   # (N, C, L) is (N, C, L, 1) in 2-D
        return ops.reshape(self._normalise(ops.reshape(x, N, C, L, 1)), N, C, L)


class LocalResponseNorm(Module):
    """AlexNet's normalisation across neighbouring channels (no parameters):
    y_c = x_c / (k + alpha/size * sum of x_c'^2 over the `size` channels around c) ** beta."""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"LocalResponseNorm: size must be a positive int, got {size!r}")
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        self._check_input(x, "(N, C, H, W)")
        return F.local_response_norm(x, self.size, alpha=self.alpha, beta=self.beta, k=self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
