"""Floor 3: Function — one differentiable op, a node of the graph.

Every op is a small subclass with two methods on plain backend arrays:

    forward(*xs)   -> y or (y1, y2, ...)   compute the output; self.save(name=array, ...) what
                                           backward needs (read back as self.name)
    backward(*gys) -> gx or (gx1, gx2, ...) given dL/dy, return dL/dx for each input
                                           (None where an input needs no gradient)

A Function object is one node of one graph: make a new one per call. Calling it
(``Mul()(a, b)``) wraps the inputs as Tensors, runs forward, and, when a
gradient may be needed, links the outputs to the node and the node to its inputs. Under
``no_grad()`` nothing is linked and nothing is saved: evaluation costs no graph memory.

What the node keeps of its inputs is an *edge* per input, not the input Tensor: backward needs
to know where each input's gradient goes (into a leaf's ``.grad``, or to output ``index`` of the
Function that made the input), never the input's array, unless forward saved it. So an
intermediate array that no backward saved — the pre-ReLU output of a batch norm, a residual sum —
is freed as soon as the forward code drops it, as in PyTorch, instead of living until backward.
"""
import contextlib
import weakref
from typing import NamedTuple

from tinyres import backend
from tinyres.tensor import Tensor

_grad_enabled = True


@contextlib.contextmanager
def no_grad():
    """Within this block ops record no graph (as ``torch.no_grad``)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled():
    return _grad_enabled


# The layers whose forward is running, innermost last: nn.Module.__call__ enters its label
# ("Conv2d layer1.0.conv1") so that each op made inside knows its layer (Function.layer), for
# graph.draw, error notes and a conditional breakpoint (``b ...conv.py:NN, self.layer == ...``).
_layers = []


@contextlib.contextmanager
def layer_scope(label):
    """Ops called within this block belong to the layer `label`."""
    _layers.append(label)
    try:
        yield
    finally:
        _layers.pop()


def current_layer():
    """The label of the innermost layer whose forward is running, or None."""
    return _layers[-1] if _layers else None


def as_tensor(value, like):
    """An op's operand as a Tensor. Python scalars take the dtype and device of `like`
    (so float32 * 2.0 stays float32), or, when no operand is a Tensor (``Add()(1.0, 2.0)``),
    the rules of ``tinyres.tensor``; arrays and Tensors are taken as they are."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (int, float, bool)) and like is not None:
        xp = backend.get_array_module(like.data)
        return Tensor(xp.asarray(value, dtype=like.dtype))
    if hasattr(value, "shape"):            # an array stays on its own device (mixing is checked)
        return Tensor(value, device=backend.device_of(value))
    return Tensor(value, device=like.device if like is not None else None)


class Edge(NamedTuple):
    """Where the gradient of one input goes: output `index` of Function `creator` (an op's
    output), or, when `creator` is None, into the `.grad` of `leaf` if it requires one. Leaves
    are kept as themselves: they are the parameters and inputs the caller holds anyway."""
    creator: "Function | None"
    index: int = 0
    leaf: "Tensor | None" = None


def edge_to(t):
    """The Edge of input tensor `t`."""
    if t.creator is None:
        return Edge(None, 0, t)
    return Edge(t.creator, t.output_index)


class Function:
    """Base class of every differentiable op.

    ``self.needs_input_grad`` (one bool per input, set before forward runs, as PyTorch's
    ``ctx.needs_input_grad``) lets forward skip saving what no gradient will use and backward
    skip computing a gradient nobody wants.
    """

    released = False
    recording = True     # False while a call needs no gradient: then save() keeps nothing
    layer = None         # the layer that called this op, e.g. "Conv2d layer1.0.conv1", if any

    @property
    def name(self):
        return type(self).__name__

    def save(self, **arrays):
        """Keep `arrays` for backward, as attributes (``self.save(x=x)``, then ``self.x``);
        nothing is kept when this call needs no gradient (under no_grad(), or when no input
        requires grad), so an evaluation pass holds no graph memory."""
        if self.recording:
            self.__dict__.update(arrays)

    def __call__(self, *inputs):
        tensors = [as_tensor(x, like=_first_tensor(inputs)) for x in inputs]
        _check_same_device(self.name, tensors)
        arrays = [t.data for t in tensors]
        self.needs_input_grad = tuple(t.requires_grad for t in tensors)
        self.recording = _grad_enabled and any(self.needs_input_grad)
        self.layer = current_layer()
        try:
            ys = self.forward(*arrays)
        except ValueError as err:              # name the op and the shapes it was given ...
            shapes = ", ".join(str(tuple(a.shape)) for a in arrays)
            context = f"{self.name} on inputs of shapes {shapes}" + (
                f" in {self.layer}" if self.layer else "")
            if hasattr(err, "add_note"):       # ... keeping the error, and the traceback down
                err.add_note(context)          # to the line in forward that raised it (3.11+)
                raise
            raise ValueError(f"{context}: {err}") from err      # (3.10: chained to it)
        ys = ys if isinstance(ys, tuple) else (ys,)
        device = tensors[0].device if tensors else None
        outputs = []
        for y in ys:
            if device is not None and backend.device_of(y) != device:
                raise TypeError(f"{self.name}.forward returned a {type(y).__name__} on "
                                f"'{backend.device_of(y)}' for inputs on '{device}': the op "
                                "called a host numpy function on device data")
            outputs.append(Tensor(y))

        if self.recording:
            self.input_edges = [edge_to(t) for t in tensors]
            # weak references: the graph points backwards only, so a dropped output frees memory;
            # shape and dtype stay known (for a zero gradient, or to draw the graph)
            self.outputs = [weakref.ref(out) for out in outputs]
            self.output_specs = [(y.shape, y.dtype) for y in ys]
            self.generation = max((t.creator.generation + 1 if t.creator else 0)
                                  for t in tensors)
            for index, out in enumerate(outputs):
                out.requires_grad = True
                out.creator, out.output_index = self, index
        else:
            self.release()
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def forward(self, *xs):
        raise NotImplementedError(f"{self.name} must define forward()")

    def backward(self, *gys):
        raise NotImplementedError(f"{self.name} has no backward(): it is not differentiable")

    def backward_with_missing(self, output_grads):
        """Call backward, giving zeros for outputs that received no gradient."""
        if any(g is None for g in output_grads):
            xp = backend.get_array_module(next(g for g in output_grads if g is not None))
            output_grads = [g if g is not None else xp.zeros(shape, dtype)
                            for g, (shape, dtype) in zip(output_grads, self.output_specs)]
        grads = self.backward(*output_grads)
        grads = grads if isinstance(grads, tuple) else (grads,)
        if len(grads) != len(self.input_edges):
            raise RuntimeError(f"{self.name}.backward returned {len(grads)} gradients for "
                               f"{len(self.input_edges)} inputs")
        return grads

    def release(self):
        """Forget everything saved for backward (the graph's memory)."""
        self.__dict__.clear()
        self.released = True


def _first_tensor(inputs):
    for x in inputs:
        if isinstance(x, Tensor):
            return x
    return None


def _check_same_device(op_name, tensors):
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        listed = ", ".join(f"input {i}: {t.device} {tuple(t.shape)}"
                           for i, t in enumerate(tensors))
        raise RuntimeError(f"{op_name}: inputs are on different devices ({listed}); move them "
                           "with Tensor.to(device) first")
