"""Floor 6: summary — every layer of a model with its output shape, parameters and multiply-adds.

    >>> tinyres.summary(resnet20(), (3, 32, 32))
    layer                   type              output shape       params     mult-adds
    conv1                   Conv2d            (1, 16, 32, 32)       432       442,368
    bn1                     BatchNorm2d       (1, 16, 32, 32)        32             0
    ...
    total: 269,722 parameters, 40.55M multiply-adds per image

How it works: a forward hook on every layer (a module with no children) records what the layer
returned, then one forward pass runs on a batch of zeros, in evaluation mode and without a graph
(``no_grad``), so the model is left exactly as it was. A layer called twice gets two rows.

Multiply-adds (MACs) count the products of the convolutions and linear layers, the arithmetic
that dominates a CNN (and the figure the papers quote as "FLOPs"):

    Conv2d   OC * OH * OW * (C * KH * KW)     one dot product of length C*KH*KW per output value
    Linear   out_features * in_features

Batch norm, ReLU, pooling and the shortcut additions are a few operations per value, orders of
magnitude fewer; they count 0 here, as in the papers' figures. Counts are per image.
"""
from dataclasses import dataclass, field

import numpy

from tinyres import backend
from tinyres.autograd import no_grad
from tinyres.nn import Conv2d, Identity, Linear
from tinyres.tensor import Tensor


@dataclass
class LayerRow:
    path: str                 # "layer1.0.conv1"
    kind: str                 # "Conv2d"
    output_shape: tuple       # (1, 16, 32, 32)
    params: int               # parameters the layer itself owns
    macs: int                 # multiply-adds per image


@dataclass
class ModelSummary:
    """What ``summary`` found; ``str()`` of it is the printed table."""
    rows: list = field(default_factory=list)
    total_params: int = 0     # every parameter of the model (also those outside the rows)
    total_macs: int = 0       # multiply-adds per image, summed over the rows
    input_shape: tuple = ()
    output_shape: tuple = ()

    def __str__(self):
        head = ("layer", "type", "output shape", "params", "mult-adds")
        body = [(r.path, r.kind, str(r.output_shape), f"{r.params:,}", f"{r.macs:,}")
                for r in self.rows]
        widths = [max(len(line[i]) for line in [head] + body) for i in range(5)]

        def line(cells):
            left = [cell.ljust(w) for cell, w in zip(cells[:3], widths[:3])]
            right = [cell.rjust(w) for cell, w in zip(cells[3:], widths[3:])]
            return "  ".join(left + right)
        rule = "-" * len(line(head))
        return "\n".join(
            [f"input {self.input_shape} -> output {self.output_shape}", line(head), rule]
            + [line(cells) for cells in body]
            + [rule, f"total: {self.total_params:,} parameters, {_human(self.total_macs)} "
                     f"multiply-adds per image ({self.total_macs:,})"])


def layer_macs(module, output):
    """Multiply-adds per image of one call of `module` that returned `output`."""
    per_image = output.numel() // output.shape[0]           # values in one image's output
    if isinstance(module, Conv2d):
        _, C, KH, KW = module.weight.shape
        return per_image * C * KH * KW
    if isinstance(module, Linear):
        return per_image * module.in_features
    return 0


def summary(model, input_shape, show=True):
    """Print (if `show`) and return a ModelSummary of `model` on input of `input_shape`.

    `input_shape` is (C, H, W), run as a batch of one, or (N, C, H, W). The forward pass runs in
    evaluation mode under no_grad; the model's mode and buffers are unchanged afterwards.
    """
    input_shape = tuple(int(n) for n in input_shape)
    if len(input_shape) == 3:
        input_shape = (1,) + input_shape
    first = next(iter(model.parameters()), None)
    dtype = first.dtype if first is not None else numpy.float32
    device = first.device if first is not None else backend.default_device()
    x = Tensor(backend.array_module(device).zeros(input_shape, dtype=dtype))

    rows, handles = [], []

    def record(path):
        def hook(module, inputs, output):
            rows.append(LayerRow(path, type(module).__name__, tuple(output.shape),
                                 sum(p.numel() for p in module.parameters(recurse=False)),
                                 layer_macs(module, output)))
        return hook

    for path, module in model.named_modules():
        is_layer = next(module.children(), None) is None
        if is_layer and not isinstance(module, Identity):      # a layer that does something
            handles.append(module.register_forward_hook(record(path or "(model)")))
    modes = [(module, module.training) for module in model.modules()]
    try:
        model.eval()
        with no_grad():
            output = model(x)
    finally:
        for module, training in modes:                      # each module's own mode back
            module.training = training
        for handle in handles:
            handle.remove()

    result = ModelSummary(rows, model.num_parameters(), sum(r.macs for r in rows),
                          input_shape, tuple(output.shape))
    if show:
        print(result)
    return result


def _human(count):
    """40551424 -> '40.55M', 1814073344 -> '1.814G'."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= size:
            digits = 3 if unit == "G" else 2
            return f"{count / size:.{digits}f}{unit}"
    return str(count)

