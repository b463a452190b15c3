"""Floor 6: views into a network — each block's activations, each layer's gradient norm.

The paper's argument for shortcuts is about optimisation: a deep plain net trains *worse* than a
shallower one (Fig. 1 and 6), while a ResNet of the same depth trains well. These two functions
let a learner look at why, on a freshly initialised model:

    images, labels = ...                                   # one batch, e.g. 128 CIFAR images
    compare_gradient_norms({"plain56": plain56(), "resnet56": resnet56()}, images, labels)

prints the L2 norm of dL/dW for every conv and linear layer of both nets side by side, and
``block_outputs(model, images)`` returns what every residual block produced. Both read the
model through forward hooks and ``.grad``, without editing it, and leave it as they found it:
its mode, its batch norm running statistics and any gradients it already held are restored.
"""
import contextlib

import numpy

from tinyres.autograd import no_grad
from tinyres.backend import to_device
from tinyres.functional import cross_entropy
from tinyres.models.blocks import ResidualBlock
from tinyres.nn import Conv2d, Linear
from tinyres.tensor import Tensor


@contextlib.contextmanager
def _left_as_found(model):
    """Restore the model's mode, buffers (BN running statistics) and gradients on exit."""
    modes = [(module, module.training) for module in model.modules()]
    buffers = [(b, b.data.copy()) for b in model.buffers()]
    grads = [(p, p.grad) for p in model.parameters()]
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
        for buf, saved in buffers:
            buf.data[...] = saved
        for param, grad in grads:
            param.grad = grad


def _as_input(model, images):
    """`images` (a Tensor, or an array) as a Tensor in the model's dtype on its device."""
    first = next(iter(model.parameters()))
    data = images.data if isinstance(images, Tensor) else images
    return Tensor(data, dtype=first.dtype, device=first.device)


def block_outputs(model, images, kinds=(ResidualBlock,), training=None):
    """{path: host NumPy array} — the output of every module of type `kinds` (by default every
    residual or plain block), in the order they ran, from one forward pass without a graph.

    `training` picks the batch norm mode for this pass (None: the model's current mode).
    """
    outputs, handles = {}, []
    for path, module in model.named_modules():
        if isinstance(module, kinds):
            def hook(module, inputs, output, path=path):
                outputs[path] = output.numpy().copy()
            handles.append(module.register_forward_hook(hook))
    try:
        with _left_as_found(model), no_grad():
            if training is not None:
                model.train(training)
            model(_as_input(model, images))
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def gradient_norms(model, images, labels, per="layer", training=None):
    """{name: ||dL/dW||_2} after one forward and backward of the mean cross-entropy L.

    per="layer"      one entry per conv / linear layer: the norm of its weight's gradient,
                     keyed by the layer's path ("layer1.0.conv1")
    per="parameter"  one entry per parameter ("layer1.0.bn1.weight", ...)

    `training` picks the batch norm mode for the pass (None: the model's current mode, which
    for a new model is training: batch statistics, as during real training).
    """
    if per not in ("layer", "parameter"):
        raise ValueError(f"gradient_norms: per must be 'layer' or 'parameter', got {per!r}")
    norms = {}
    with _left_as_found(model):
        if training is not None:
            model.train(training)
        model.zero_grad()
        loss = cross_entropy(model(_as_input(model, images)), labels)
        loss.backward()
        if per == "parameter":
            for name, param in model.named_parameters():
                norms[name] = _norm(param.grad)
        else:
            for path, module in model.named_modules():
                if isinstance(module, (Conv2d, Linear)):
                    norms[path] = _norm(module.weight.grad)
    return norms


def compare_gradient_norms(models, images, labels, show=True):
    """Gradient norms of several models on the same batch, as {model name: {layer: norm}}, and
    printed as a table of layers in execution order, one column per model (if `show`)."""
    reports = {name: gradient_norms(model, images, labels) for name, model in models.items()}
    if show:
        print(format_norms(reports))
    return reports


def format_norms(reports):
    """A table of {column name: {row name: value}} with the rows of the longest column."""
    names = list(reports)
    rows = max(reports.values(), key=len)
    width = max([len("layer")] + [len(row) for row in rows])
    lines = ["layer".ljust(width) + "".join(f"  {n:>12}" for n in names)]
    for row in rows:
        cells = "".join(f"  {reports[n][row]:12.3e}" if row in reports[n] else f"  {'-':>12}"
                        for n in names)
        lines.append(row.ljust(width) + cells)
    return "\n".join(lines)


def _norm(grad):
    if grad is None:
        return 0.0
    host = to_device(grad, "cpu").astype(numpy.float64)
    return float(numpy.sqrt((host ** 2).sum()))
