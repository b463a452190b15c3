"""tinyres: a from-scratch deep-learning engine for learning how ResNets work.

Read it from the ground up: backend (where arrays live) -> tensor (the graph's values) ->
autograd (Function, no_grad) and ops (the basic differentiable ops) -> functional (conv, batch norm,
pooling, ...) -> nn (modules) -> models (ResNets, VGG) -> optim, data, train -> cli.

The names follow PyTorch's, with PyTorch's meaning (docs/pytorch.md): ``tinyres.cat``,
``tinyres.randn``, ``tinyres.float64``, ``x.transpose(0, 1)``, ``x.sum(dim=1, keepdim=True)``, ...
(``sum``, ``max``, ``min``, ``float`` and ``bool`` shadow Python's builtins here, as in torch).
"""
__version__ = "0.1.0"

from tinyres.backend import get_array_module, get_backend, set_backend
from tinyres.tensor import Tensor, tensor
from tinyres.autograd import Function, no_grad, is_grad_enabled
from tinyres import ops
from tinyres.ops import (argmax, argmin, cat, clone, concatenate, exp, flatten, log, matmul, max,
                         mean, min, pad, permute, reshape, squeeze, stack, std, sum, transpose,
                         unsqueeze, var)
from tinyres.creation import (arange, bool, double, float, float16, float32, float64, from_numpy,
                              full, full_like, half, int32, int64, long, ones, ones_like, rand,
                              rand_like, randint, randn, randn_like, zeros, zeros_like)
from tinyres.rng import manual_seed
from tinyres.gradcheck import GradcheckError, gradcheck
import tinyres.functional as functional
from tinyres import nn, optim
from tinyres.serialization import save, load
from tinyres import models
from tinyres.models.summary import summary
from tinyres import graph
from tinyres.errors import not_supported as _not_supported
from tinyres.dispatch import (get_kernels, get_num_threads, reference_kernels, set_kernels,
                              set_num_threads)

# PyTorch names a ported script may reach for, and what to write in tinyres instead
_NOT_IN_TINYRES = {
    "device": "pass the device as a string, 'cpu' or 'cuda'",
    "cuda": "tinyres.set_backend('cupy') puts new tensors on the GPU; move with .to('cuda')",
    "Size": "size() and shape are tuples",
    "channels_last": "memory_format is not supported: the fast kernels choose their own layout",
    "compile": "tinyres runs eagerly: call the model itself",
    "autocast": "mixed precision is not supported: convert with .to(tinyres.float16)",
}


def __getattr__(name):
    """A missing PyTorch name says what to use instead (still an AttributeError, as hasattr
    expects)."""
    if name in _NOT_IN_TINYRES:
        raise AttributeError(str(_not_supported("tinyres", f"torch.{name}",
                                                _NOT_IN_TINYRES[name])))
    raise AttributeError(f"module 'tinyres' has no attribute {name!r}")
