"""Floor 5: initialisation — the random numbers a network starts from.

Deep plain networks fail to train when the signal shrinks or grows a little at every layer.
He et al. ("Delving Deep into Rectifiers", 2015) pick the weights' spread so that, through a
ReLU, each layer keeps the variance of its input:

    Var(w) = gain^2 / fan         gain = sqrt(2) for ReLU, fan = inputs per output unit

``kaiming_normal_`` draws N(0, std^2) with std = gain / sqrt(fan); ``kaiming_uniform_`` draws
U(-bound, bound) with the same variance, bound = sqrt(3) * std. For a conv weight of shape
(out_channels, in_channels, KH, KW), fan_in = in_channels * KH * KW and
fan_out = out_channels * KH * KW (PyTorch's convention, used here too).

Every function here fills a Parameter (or array) *in place*, on its device, in its dtype, and
returns it. The random numbers come from one global NumPy Generator, drawn on the host and then
copied to the device, so ``tinyres.manual_seed(0)`` gives the same weights on CPU and GPU.
"""
import math

import numpy

from tinyres import backend
from tinyres.tensor import Tensor

_generator = numpy.random.default_rng()     # unseeded until manual_seed, as in PyTorch


def manual_seed(seed):
    """Reseed the generator behind all initialisation (and Dropout's default); returns it."""
    global _generator
    _generator = numpy.random.default_rng(seed)
    return _generator


def generator():
    """The global numpy.random.Generator that initialisation draws from."""
    return _generator


def get_rng_state():
    """The global generator's state, a dict of plain numbers (checkpoints save it)."""
    return _generator.bit_generator.state


def set_rng_state(state):
    """Continue the global generator from a state that ``get_rng_state()`` returned."""
    _generator.bit_generator.state = state


# -- fans and gains ------------------------------------------------------------------------------
def fan_in_and_fan_out(tensor):
    """(fan_in, fan_out) of a weight: (out, in) for Linear, (out, in, KH, KW) for Conv2d."""
    shape = tensor.shape
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need a weight with at least 2 dimensions, got shape "
                         f"{tuple(shape)}")
    receptive_field = math.prod(shape[2:])      # KH * KW for a conv, 1 for a linear layer
    return shape[1] * receptive_field, shape[0] * receptive_field


def calculate_gain(nonlinearity, param=None):
    """The factor that keeps the variance through `nonlinearity` (PyTorch's values)."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}; expected linear, "
                     "conv1d, conv2d, conv3d, sigmoid, tanh, relu, leaky_relu or selu")


def _kaiming_std(tensor, a, mode, nonlinearity):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


# -- the initialisers ----------------------------------------------------------------------------
def _fill(tensor, values):
    """Write host `values` into the tensor's array in place, on its device, in its dtype."""
    target = tensor.data if isinstance(tensor, Tensor) else tensor
    host = numpy.asarray(values, dtype=target.dtype)
    target[...] = backend.to_device(host, backend.device_of(target))
    return tensor


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """N(0, std^2), std = gain / sqrt(fan). With a=0 the gain is sqrt(2), the ReLU gain
    (the default nonlinearity is PyTorch's, 'leaky_relu' with negative slope a)."""
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    return _fill(tensor, _generator.normal(0.0, std, size=tensor.shape))


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """U(-bound, bound), bound = sqrt(3) * gain / sqrt(fan): the variance of kaiming_normal_."""
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return _fill(tensor, _generator.uniform(-bound, bound, size=tensor.shape))


def xavier_uniform_(tensor, gain=1.0):
    """U(-bound, bound), bound = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return _fill(tensor, _generator.uniform(-bound, bound, size=tensor.shape))


def xavier_normal_(tensor, gain=1.0):
    """N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return _fill(tensor, _generator.normal(0.0, std, size=tensor.shape))


def normal_(tensor, mean=0.0, std=1.0):
    return _fill(tensor, _generator.normal(mean, std, size=tensor.shape))


def uniform_(tensor, a=0.0, b=1.0):
    return _fill(tensor, _generator.uniform(a, b, size=tensor.shape))


def constant_(tensor, val):
    target = tensor.data if isinstance(tensor, Tensor) else tensor
    target[...] = val
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def default_layer_init_(weight, bias=None):
    """PyTorch's default for Conv2d and Linear: kaiming_uniform_ with a=sqrt(5), which works out
    to U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the weight, and the same bound for the bias."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        uniform_(bias, -bound, bound)
