"""Floor 2: the Tensor — an array that remembers where it came from.

A Tensor wraps one backend array (``.data``: a numpy or cupy ndarray). When it is the output of a
differentiable op it also keeps ``.creator``, the Function node that made it, so the chain of ops
that produced a loss is a graph we can walk backwards (define-by-run: the graph is recorded while
the forward code runs, whatever Python control flow it takes).

``loss.backward()`` walks that graph from the loss to the leaves in reverse topological order,
calling each node's backward with the gradient of its outputs, and *adds* the gradients it returns
into its inputs' gradients — adding, because a tensor used twice gets gradient from both uses.
Leaves that ask for it (``requires_grad=True``, e.g. parameters) receive the sum in ``.grad``.

The operators (+, *, @, indexing, ...) are installed by `tinyres.ops`, which defines each as a
Function; this file is only the container and the walk.
"""
import heapq

import numpy

from tinyres import backend

FLOAT_DTYPES = (numpy.float16, numpy.float32, numpy.float64)


class Tensor:
    """A backend array with an optional gradient and a link to the op that created it."""

    # numpy_array + tensor should call Tensor.__radd__, not numpy's element-wise loop.
    __array_priority__ = 1000

    def __init__(self, data, requires_grad=False, dtype=None, device=None):
        self.data = _as_backend_array(data, dtype, device)
        self.grad = None
        self.creator = None      # the Function whose output this is (None for a leaf)
        self.output_index = 0    # ... and which of its outputs
        self.name = None
        self.requires_grad = requires_grad

    # -- requires_grad: only floating point data can have a gradient -------------------------
    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        if flag and self.data.dtype.type not in FLOAT_DTYPES:
            raise TypeError(f"requires_grad=True needs floating point data, got dtype "
                            f"{self.data.dtype}; create the tensor with dtype=float32 or float64")
        self._requires_grad = bool(flag)

    # -- what a learner inspects (PyTorch's names: size() is a method, shape the same tuple) ----
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    device = property(lambda self: backend.device_of(self.data))
    is_leaf = property(lambda self: self.creator is None)

    def size(self, dim=None):
        """The shape, or the size of one dim, as ``torch.Tensor.size`` (a tuple, not torch.Size)."""
        return self.data.shape if dim is None else self.data.shape[dim]

    def dim(self):
        return self.data.ndim

    def numel(self):
        """How many elements (NumPy's ``.size``)."""
        return self.data.size

    def __len__(self):
        return len(self.data)

    # A one-element tensor converts to a Python number; the truth of a larger one is ambiguous
    # (the array says so), never silently True.
    def __bool__(self):
        return bool(self.data)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __repr__(self):
        # PyTorch's layout: commas between elements, rows aligned under "tensor("
        body = numpy.array2string(backend.to_device(self.data, "cpu"), separator=", ",
                                  prefix="tensor(")
        extras = "" if self.device == "cpu" else f", device='{self.device}'"
        extras += ", requires_grad=True" if self.requires_grad else ""
        return f"tensor({body}, dtype={self.dtype}{extras})"

    def numpy(self):
        """The data as a host numpy array (a copy when it lives on a GPU)."""
        return backend.to_device(self.data, "cpu")

    def tolist(self):
        """The data as (nested) Python lists of numbers."""
        return self.numpy().tolist()

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.reshape(-1)[0].item()

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def requires_grad_(self, requires_grad=True):
        """Set requires_grad in place and return self, as PyTorch's."""
        self.requires_grad = requires_grad
        return self

    def to_device(self, device):
        """A copy on 'cpu', 'cuda' (also spelt 'cuda:0') or 'leakproof' (itself when already
        there); the copy is a new leaf, so only a tensor outside a graph may move (``to``, as
        PyTorch's, also converts dtypes: tinyres.ops installs it)."""
        device = "cuda" if device == "cuda:0" else device
        if device == self.device:
            return self
        if self.creator is not None and self.requires_grad:
            raise RuntimeError(f"to({device!r}) of a tensor made by {self.creator.name} inside a "
                               "graph: tinyres does not differentiate through a device move; "
                               "move the model (model.to) and the inputs before the forward")
        return Tensor(backend.to_device(self.data, device), requires_grad=self.requires_grad)

    def zero_grad(self):
        self.grad = None

    # -- the backward pass ----------------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) * grad into ``leaf.grad`` for every leaf that requires grad.

        ``grad`` is the gradient flowing into self; it may be omitted only for a scalar (then 1).
        The arrays ops saved for backward are freed as the walk passes them, unless
        ``retain_graph=True`` (needed to call backward through the same graph again).
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad: no input of "
                               "the ops that made it had requires_grad=True")
        xp = backend.get_array_module(self.data)
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() without a grad argument needs a scalar output, got "
                                   f"shape {self.shape}; pass grad= with that shape (or reduce "
                                   "the output with .sum() or .mean())")
            grad = xp.ones_like(self.data)
        else:
            grad = grad.data if isinstance(grad, Tensor) else xp.asarray(grad, dtype=self.dtype)
            if grad.shape != self.shape:
                raise ValueError(f"backward(): grad has shape {grad.shape}, expected {self.shape}")

        if self.creator is None:               # a leaf: nothing to walk
            _accumulate_leaf(self, grad)
            return

        # Gradients waiting for their Function: id(function) -> one slot per output, summed
        # over every consumer of that output (a tensor used twice gets both contributions).
        pending = {}
        # Functions to visit, latest generation first: a node runs only after every node that
        # consumes its outputs has run, so its output gradients are complete.
        queue = []

        def send(function, index, g):
            if function.released:
                raise RuntimeError(
                    f"backward through {function.name} a second time: its saved arrays were freed "
                    "by the first backward(); pass retain_graph=True to the first call")
            if id(function) not in pending:
                pending[id(function)] = [None] * len(function.output_specs)
                heapq.heappush(queue, (-function.generation, id(function), function))
            slots = pending[id(function)]
            slots[index] = g if slots[index] is None else slots[index] + g

        send(self.creator, self.output_index, grad)
        while queue:
            function = heapq.heappop(queue)[2]
            input_grads = function.backward_with_missing(pending.pop(id(function)))
            edges = function.input_edges
            if not retain_graph:
                function.release()
            for edge, gx in zip(edges, input_grads):
                if gx is None:
                    continue
                if edge.creator is None:
                    if edge.leaf.requires_grad:
                        _accumulate_leaf(edge.leaf, gx)
                else:
                    send(edge.creator, edge.index, gx)


def _accumulate_leaf(leaf, grad):
    if grad.shape != leaf.shape:
        raise RuntimeError(f"internal error: gradient of shape {grad.shape} for a leaf of shape "
                           f"{leaf.shape}")
    if leaf.grad is None:
        leaf.grad = grad.astype(leaf.dtype, copy=True)   # own copy: later += must not alias
    else:
        leaf.grad += grad


def _as_backend_array(data, dtype, device):
    """Turn data (Tensor, array, list, scalar) into an array on `device`.

    Dtype rules: Python floats become float32 (the deep-learning default); a numpy float64 array
    stays float64 (the gradient checker needs float64 end to end); integers stay integers.
    """
    if isinstance(data, Tensor):
        data = data.data
    if device is None:   # device arrays stay where they are; host data goes to the backend's
        on_device = hasattr(data, "shape") and backend.device_of(data) != "cpu"
        device = backend.device_of(data) if on_device else backend.default_device()
    if hasattr(data, "shape") and backend.device_of(data) != device:
        data = backend.to_device(data, device)
    xp = backend.array_module(device)
    if dtype is None and not hasattr(data, "dtype"):
        probe = numpy.asarray(data)
        dtype = numpy.float32 if probe.dtype.kind == "f" else probe.dtype
        data = probe
    return xp.asarray(data, dtype=dtype)


def tensor(data, requires_grad=False, dtype=None, device=None):
    """Make a leaf Tensor, as ``torch.tensor``."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)
