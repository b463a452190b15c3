"""tinyres: a from-scratch deep-learning engine for learning how ResNets work.

Read it from the ground up: backend (where arrays live) -> tensor (the graph's values) ->
autograd (Function, no_grad) and ops (the basic differentiable ops) -> functional (conv, batch norm,
pooling, ...) -> nn (modules) -> models (ResNets, VGG) -> optim, data, train -> cli.
"""
__version__ = "0.1.0"

from tinyres.backend import get_array_module, get_backend, set_backend
from tinyres.tensor import Tensor, tensor
from tinyres.autograd import Function, no_grad, is_grad_enabled
from tinyres import ops
from tinyres.ops import concatenate, exp, log, matmul, pad, reshape, transpose
from tinyres.gradcheck import GradcheckError, gradcheck
import tinyres.functional as functional
from tinyres import nn
from tinyres.nn.init import manual_seed
from tinyres.serialization import save, load
from tinyres import models
from tinyres.models.summary import summary
from tinyres import graph
from tinyres.dispatch import get_kernels, get_num_threads, set_kernels, set_num_threads
