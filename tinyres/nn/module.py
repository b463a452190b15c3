"""Floor 5: Module and Parameter — how a network keeps track of its pieces.

A layer is a small object holding its weights and a ``forward`` method; a network is a layer
made of layers. Writing one is plain attribute assignment:

    class Block(Module):
        def __init__(self):
            super().__init__()
            self.conv = Conv2d(16, 16, 3, padding=1)     # a child module
            self.scale = Parameter(numpy.ones(16))        # a parameter of its own

        def forward(self, x):
            return self.conv(x) * 2

Assigning a Parameter or a Module to an attribute *registers* it (``__setattr__`` below files
it in an ordered dict), so the network can list everything it owns, by name, in the order it
was written down: ``conv.weight``, ``conv.bias``, ``scale``. That one list feeds the optimizer
(``parameters()``), checkpoints (``state_dict()``), the device switch (``to('cuda')``) and
PyTorch-compatible weight files (the names are PyTorch's: ``layer1.0.bn1.running_mean``).

Buffers are arrays a module keeps but does not learn, such as batch norm's running statistics:
they are saved in the state dict and move with ``to()``, but the optimizer never sees them.

Every module also knows its *path* in the model ("layer1.0.conv1"), set whenever it is attached
to a parent, so a layer's error message can say which layer failed.
"""
import itertools
from collections import namedtuple

import numpy

from tinyres import backend
from tinyres.autograd import layer_scope
from tinyres.errors import not_supported
from tinyres.tensor import Tensor


class Parameter(Tensor):
    """A Tensor a Module learns: a leaf with ``requires_grad=True``.

    ``Parameter(numpy.zeros(3))`` keeps the array's dtype; Python lists become float32. Assign
    it to a Module attribute to register it.
    """

    def __init__(self, data, requires_grad=True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


def new_parameter(*shape, dtype=numpy.float32):
    """A zero-filled Parameter on the current backend's device; layers then initialise it."""
    return Parameter(backend.array_module().zeros(shape, dtype=dtype))


class StateDictError(RuntimeError):
    """A state dict does not fit a model: lists every missing, unexpected or misshapen entry."""


# What load_state_dict returns (as PyTorch's): keys it skipped when strict=False.
LoadResult = namedtuple("LoadResult", ["missing_keys", "unexpected_keys"])

_hook_ids = itertools.count()


class HookHandle:
    """Returned by ``register_forward_hook``; ``handle.remove()`` takes the hook off again."""

    def __init__(self, hooks, key):
        self._hooks, self._key = hooks, key

    def remove(self):
        self._hooks.pop(self._key, None)


class Module:
    """Base class of every layer and network.

    Subclasses call ``super().__init__()`` first, assign their parameters and child modules as
    attributes, and define ``forward``. Calling the module runs forward, then any forward hooks.
    """

    # Alternative key prefixes load_state_dict accepts for this class's entries, e.g.
    # {"linear.": "fc."} lets a model load files whose classifier is called "linear".
    _state_dict_aliases = {}

    def __init__(self):
        # object.__setattr__: our own __setattr__ below needs these dicts to exist already.
        set_plain = object.__setattr__
        set_plain(self, "_parameters", {})     # name -> Parameter (or None, e.g. no bias)
        set_plain(self, "_buffers", {})        # name -> Tensor (or None)
        set_plain(self, "_non_persistent", [])  # buffer names left out of the state dict
        set_plain(self, "_modules", {})        # name -> child Module
        set_plain(self, "_forward_hooks", {})  # id -> fn(module, inputs, output)
        set_plain(self, "_path", "")           # where this module sits in its model
        self.training = True

    # -- registration: assignment files parameters, buffers and children ---------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:              # Module.__init__ has not run yet
            if isinstance(value, (Parameter, Module)):
                raise AttributeError(f"cannot assign {type(value).__name__} '{name}' before "
                                     f"Module.__init__(): call super().__init__() first in "
                                     f"{type(self).__name__}.__init__")
            object.__setattr__(self, name, value)
        elif isinstance(value, Parameter):
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            self.add_module(name, value)
        elif name in self._parameters:
            if value is not None:
                raise TypeError(f"{self.label}: cannot assign a {type(value).__name__} to "
                                f"parameter '{name}'; wrap it in nn.Parameter (or assign None)")
            self._parameters[name] = None
        elif name in self._buffers:
            self._buffers[name] = _as_buffer(value)
        elif name in self._modules:
            if value is not None:
                raise TypeError(f"{self.label}: cannot assign a {type(value).__name__} to child "
                                f"module '{name}'; assign a Module (or None)")
            self._modules[name] = None
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Called only when normal lookup fails: registered things live in the dicts.
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(registry)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        if not self._forget(name):
            object.__delattr__(self, name)

    def _forget(self, name):
        """Remove `name` from every registry (and plain attributes); True if it was registered."""
        registries = (self._parameters, self._buffers, self._modules)
        found = any(name in registry for registry in registries)
        for registry in registries:
            registry.pop(name, None)
        if name in self._non_persistent:
            self._non_persistent.remove(name)
        self.__dict__.pop(name, None)
        return found

    def _check_new_name(self, name, kind):
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"{self.label}: {kind} name must be a non-empty string without '.', "
                           f"got {name!r}")

    def _register(self, registry, name, value, kind, method):
        """File `value` (a `kind`, or None) under `name` in `registry`, replacing whatever
        had that name before (in any registry). A replacement in the same registry keeps its
        place, as in PyTorch: parameters() and state_dict() list it where the old one was."""
        self._check_new_name(name, kind.__name__.lower())
        if value is not None and not isinstance(value, kind):
            raise TypeError(f"{self.label}: {method}('{name}') needs a {kind.__name__} or None, "
                            f"got {type(value).__name__}")
        if name not in registry:
            self._forget(name)
        registry[name] = value

    def register_parameter(self, name, param):
        """Register a Parameter (or None: a declared but absent parameter, like bias=False)."""
        self._register(self._parameters, name, param, Parameter, "register_parameter")

    def register_buffer(self, name, value, persistent=True):
        """Keep an array (or Tensor, or None) that is saved and moved with the module but not
        learned. ``persistent=False`` leaves it out of the state dict."""
        self._check_new_name(name, "buffer")
        self._forget(name)
        self._buffers[name] = _as_buffer(value)
        if not persistent:
            self._non_persistent.append(name)

    def add_module(self, name, module):
        """Register a child module under `name` (as ``setattr`` does; names may be "0", "1")."""
        self._register(self._modules, name, module, Module, "add_module")
        if module is not None:
            module._set_path(_join(self._path, name))

    # -- where am I? --------------------------------------------------------------------------
    def _set_path(self, path):
        object.__setattr__(self, "_path", path)
        for name, child in self._modules.items():
            if child is not None:
                child._set_path(_join(path, name))

    @property
    def path(self):
        """This module's name in its model, e.g. "layer1.0.conv1" ("" for the model itself)."""
        return self._path

    @property
    def label(self):
        """How errors name this module: "Conv2d layer1.0.conv1" (or "Conv2d" at the top)."""
        return f"{type(self).__name__} {self._path}" if self._path else type(self).__name__

    def _check_input(self, x, layout, channels=None):
        """Raise a ValueError naming this layer unless x is laid out as `layout`, e.g.
        "(N, C, H, W)", with `channels` channels on axis 1 (when given)."""
        ndim = layout.count(",") + 1
        if x.ndim != ndim:
            raise ValueError(f"{self.label}: expected a {ndim}-D input {layout}, got shape "
                             f"{tuple(x.shape)}")
        if channels is not None and x.shape[1] != channels:
            raise ValueError(f"{self.label}: expected input with {channels} channels "
                             f"{layout.replace('C', str(channels))}, got shape {tuple(x.shape)}")

    # -- running ------------------------------------------------------------------------------
    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *inputs, **kwargs):
        with layer_scope(self.label):       # each op made inside knows its layer (Function.layer)
            output = self.forward(*inputs, **kwargs)
        for hook in list(self._forward_hooks.values()):
            replaced = hook(self, inputs, output)
            if replaced is not None:        # a hook may return a new output, as in PyTorch
                output = replaced
        return output

    def register_forward_hook(self, fn):
        """Call ``fn(module, inputs, output)`` after every forward; returns a handle whose
        ``remove()`` unregisters it. Use it to read activations without editing the model."""
        key = next(_hook_ids)
        self._forward_hooks[key] = fn
        return HookHandle(self._forward_hooks, key)

    # -- walking the tree (depth first, in registration order, each object once) ---------------
    def named_modules(self, prefix="", _seen=None):
        """(name, module) for this module ("" or `prefix`) and every module inside it."""
        seen = set() if _seen is None else _seen
        if id(self) in seen:
            return
        seen.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(_join(prefix, name), seen)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        for name, child in self._modules.items():
            if child is not None:
                yield name, child

    def children(self):
        for _, child in self.named_children():
            yield child

    def _named_members(self, registry, prefix, recurse):
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        seen = set()
        for path, module in modules:
            for name, value in getattr(module, registry).items():
                if value is not None and id(value) not in seen:
                    seen.add(id(value))
                    yield _join(path, name), value

    def named_parameters(self, prefix="", recurse=True):
        """(name, Parameter) pairs: "conv1.weight", "layer1.0.bn1.bias", ..."""
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse=True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix="", recurse=True):
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse=True):
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf

    def num_parameters(self):
        """How many numbers the model learns."""
        return sum(p.numel() for p in self.parameters())

    def apply(self, fn):
        """Call fn(module) on every child (recursively), then on self; returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # -- modes, gradients, devices ------------------------------------------------------------
    def train(self, mode=True):
        """Training mode (batch norm uses batch statistics, dropout drops) for the whole tree."""
        self.training = bool(mode)
        for child in self.children():
            child.train(mode)
        return self

    def eval(self):
        """Evaluation mode: batch norm uses its running statistics, dropout does nothing."""
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        """Forget every parameter's gradient before the next backward pass: set it to None
        (PyTorch's default), or to zeros with set_to_none=False."""
        for param in self.parameters():
            if set_to_none or param.grad is None:
                param.grad = None
            else:
                param.grad[...] = 0

    def to(self, *args, device=None, dtype=None, non_blocking=False, memory_format=None):
        """Move every parameter and buffer to `device` ('cpu', 'cuda', 'leakproof') and/or cast
        the floating point ones to `dtype`, in place (the Parameter objects stay the same, so
        an optimizer holding them keeps working). Returns self. As PyTorch's, the device and
        dtype may be given by position: ``model.to("cuda")``, ``model.to(torch.float64)``."""
        for arg in args:
            if isinstance(arg, str):
                device = arg
            else:
                dtype = arg
        if memory_format is not None:
            raise not_supported(f"{type(self).__name__}.to", f"memory_format={memory_format!r}",
                                "leave the layout to tinyres (the fast kernels choose their own)")
        device = "cuda" if device == "cuda:0" else device
        for tensor in itertools.chain(self.parameters(), self.buffers()):
            for attr in ("data", "grad"):
                array = getattr(tensor, attr)
                if array is None:
                    continue
                if device is not None:
                    array = backend.to_device(array, device)
                if dtype is not None and array.dtype.kind == "f":
                    array = array.astype(dtype, copy=False)
                setattr(tensor, attr, array)
        return self

    def double(self):
        """Every floating point parameter and buffer in float64, as PyTorch's."""
        return self.to(dtype=numpy.float64)

    def float(self):
        """Every floating point parameter and buffer in float32, as PyTorch's."""
        return self.to(dtype=numpy.float32)

    # -- state dicts: name -> array, the format of checkpoints and PyTorch weight files --------
    def _state_entries(self):
        """(key, Tensor) for every parameter and persistent buffer, in PyTorch's order: each
        module's parameters, then its buffers, then its children's."""
        for path, module in self.named_modules():
            for name, param in module._parameters.items():
                if param is not None:
                    yield _join(path, name), param
            for name, buf in module._buffers.items():
                if buf is not None and name not in module._non_persistent:
                    yield _join(path, name), buf

    def state_dict(self):
        """{name: host numpy array copy} of every parameter and persistent buffer."""
        return {key: numpy.array(tensor.numpy(), copy=True)
                for key, tensor in self._state_entries()}

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays from `state_dict` into this model's parameters and buffers, in place.

        Accepts what ``state_dict()`` returns, ``numpy.load("weights.npz")``, or a PyTorch
        state dict turned into arrays (``{k: v.numpy() for k, v in sd.items()}``): a leading
        ``module.`` (from DataParallel) is stripped, batch norm's ``num_batches_tracked`` is
        ignored, and the class's ``_state_dict_aliases`` rename keys. Values are cast to each
        parameter's dtype and stay on its device.

        Every missing key, unexpected key and shape mismatch is reported in one StateDictError
        (nothing is copied then). With ``strict=False`` missing and unexpected keys are allowed
        and returned; shape mismatches still raise.
        """
        own = dict(self._state_entries())
        incoming = {}
        for key, value in state_dict.items():
            incoming[self._translate_key(key, own)] = value
        incoming = {k: v for k, v in incoming.items()
                    if k in own or not k.endswith("num_batches_tracked")}

        missing = [k for k in own if k not in incoming]
        unexpected = [k for k in incoming if k not in own]
        problems = []
        for key, value in incoming.items():
            if key in own and _shape(value) != own[key].shape:
                problems.append(f"shape mismatch for '{key}': the model has {own[key].shape}, "
                                f"the state dict has {_shape(value)}")
        if strict:
            problems += [f"missing key '{k}' (shape {own[k].shape})" for k in missing]
            problems += [f"unexpected key '{k}' (shape {_shape(incoming[k])}): "
                         "the model has no such parameter or buffer" for k in unexpected]
        if problems:
            raise StateDictError(f"{type(self).__name__}.load_state_dict: the state dict does "
                                 f"not fit the model ({len(problems)} problem"
                                 f"{'s' if len(problems) > 1 else ''}):\n  "
                                 + "\n  ".join(problems))

        for key, value in incoming.items():
            if key in own:
                target = own[key]
                host = numpy.asarray(_to_host(value), dtype=target.dtype)
                target.data[...] = backend.to_device(host, target.device)
        return LoadResult(missing, unexpected)

    def _translate_key(self, key, own):
        """A state-dict key as this model names it: drop DataParallel's 'module.' prefix, then
        apply the aliases of whichever module the key falls under."""
        if key not in own and key.startswith("module."):
            key = key[len("module."):]
        if key in own:
            return key
        for path, module in self.named_modules():
            for old, new in type(module)._state_dict_aliases.items():
                old, new = _join(path, old), _join(path, new)
                if key.startswith(old) and new + key[len(old):] in own:
                    return new + key[len(old):]
        return key

    # -- printing the tree, as PyTorch does ---------------------------------------------------
    def extra_repr(self):
        """The arguments shown inside ``Name(...)``; layers override it."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        children = [f"({name}): " + repr(child).replace("\n", "\n  ")
                    for name, child in self._modules.items()]
        if not children:
            return f"{type(self).__name__}({extra})"
        lines = (extra.split("\n") if extra else []) + children
        return f"{type(self).__name__}(\n" + "".join(f"  {line}\n" for line in lines) + ")"


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def _shape(value):
    return tuple(value.shape) if hasattr(value, "shape") else numpy.shape(value)


def _to_host(value):
    """A Tensor, device array, host array or number as something numpy.asarray accepts."""
    if isinstance(value, Tensor):
        value = value.data
    if hasattr(value, "shape") and backend.device_of(value) != "cpu":
        value = backend.to_device(value, "cpu")
    return value


def _as_buffer(value):
    """Buffers are Tensors without gradient; arrays are wrapped (on the backend's device)."""
    if value is None or isinstance(value, Tensor):
        return value
    return Tensor(value)
