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
copied to the device (tinyres/rng.py), so ``tinyres.manual_seed(0)`` gives the same weights on
CPU and GPU. They are drawn directly in the parameter's dtype: a float32 draw takes half the
random bits of a float64 one and needs no cast, which matters when a VGG draws 140 M of them.

The names and signatures are torch.nn.init's (``self.apply(fn)`` with ``init.kaiming_normal_``
runs as in PyTorch), plus the layers' default and the switch that skips it (at the bottom).
"""
import contextlib
import math

import numpy

from tinyres import backend
from tinyres.rng import generator, get_rng_state, manual_seed, set_rng_state  # noqa: F401
from tinyres.tensor import Tensor


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
def _array(tensor):
    return tensor.data if isinstance(tensor, Tensor) else tensor


def _host_array_to_draw_into(tensor):
    """Host memory for the random numbers of `tensor`: its own array when that is a contiguous
    float32 or float64 NumPy array (the numbers are drawn in place: no second copy of a 400 MB
    layer), else a new host array, float32 or float64 as the tensor, or float64 for others."""
    target = _array(tensor)
    drawable = target.dtype in (numpy.float32, numpy.float64)
    if type(target) is numpy.ndarray and drawable and target.flags.c_contiguous:
        return target
    return numpy.empty(target.shape, dtype=target.dtype if drawable else numpy.float64)


def _fill(tensor, values):
    """Write host `values` into the tensor's array in place, on its device, in its dtype (nothing
    to do when they were drawn there)."""
    target = _array(tensor)
    if values is not target:
        host = numpy.asarray(values, dtype=target.dtype)
        target[...] = backend.to_device(host, backend.device_of(target))
    return tensor


def normal_(tensor, mean=0.0, std=1.0):
    """N(mean, std^2): standard normal numbers, scaled and shifted."""
    values = _host_array_to_draw_into(tensor)
    generator().standard_normal(dtype=values.dtype, out=values)
    values *= std
    values += mean
    return _fill(tensor, values)


def uniform_(tensor, a=0.0, b=1.0):
    """U(a, b): uniform numbers in [0, 1), scaled and shifted. In float32 the rounding of
    a + (b - a) * u could step just past b, so the values are clipped to [a, b] (a no-op in
    float64, where they are exactly ``Generator.uniform(a, b)``'s)."""
    values = _host_array_to_draw_into(tensor)
    generator().random(dtype=values.dtype, out=values)
    values *= b - a
    values += a
    return _fill(tensor, numpy.clip(values, a, b, out=values))


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """N(0, std^2), std = gain / sqrt(fan). With a=0 the gain is sqrt(2), the ReLU gain
    (the default nonlinearity is PyTorch's, 'leaky_relu' with negative slope a)."""
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity))


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """U(-bound, bound), bound = sqrt(3) * gain / sqrt(fan): the variance of kaiming_normal_."""
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound)


def xavier_uniform_(tensor, gain=1.0):
    """U(-bound, bound), bound = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain=1.0):
    """N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def constant_(tensor, val):
    _array(tensor)[...] = val
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


# -- the layers' default, and skipping it --------------------------------------------------------
_draw_default_weights = True    # False inside `skip_default_weight_init()`


@contextlib.contextmanager
def skip_default_weight_init():
    """Within this block Conv2d and Linear leave their weights at zero instead of drawing the
    default below. For a model builder whose own initialisation (he_init_, VGG's init_weights_)
    draws every conv and linear weight again right after: an ImageNet VGG then draws its 140 M
    weights once, not twice. Biases still get their default (he_init_ keeps Linear's)."""
    global _draw_default_weights
    previous, _draw_default_weights = _draw_default_weights, False
    try:
        yield
    finally:
        _draw_default_weights = previous


def default_layer_init_(weight, bias=None):
    """PyTorch's default for Conv2d and Linear: kaiming_uniform_ with a=sqrt(5), which works out
    to U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the weight, and the same bound for the bias."""
    if _draw_default_weights:
        kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        uniform_(bias, -bound, bound)
