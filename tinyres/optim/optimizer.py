"""What every optimizer shares: parameter groups, zero_grad, and a saveable state.

An optimizer updates parameters from their gradients. A *parameter* is any object with
    .data   the values, a backend array (NumPy, CuPy, ...), updated in place
    .grad   the gradient of the loss, an array of the same shape, or None (then it is skipped)

Parameters come in *groups*, each with its own hyperparameters (say, no weight decay on batch
norm). ``params`` may be a list of parameters (one group) or a list of dicts
``{"params": [...], "lr": ...}``; a key a group leaves out takes the optimizer's default:

    SGD(model.parameters(), lr=0.1, momentum=0.9)
    SGD([{"params": weights, "weight_decay": 1e-4}, {"params": biases}], lr=0.1, momentum=0.9)

The update never leaves the parameter's device or dtype: arrays are handled through
``xp = get_array_module(p.data)`` and hyperparameters are kept as Python floats (a NumPy float64
scalar would promote a float32 update to float64).

``state_dict()`` is made of Python numbers, lists and host NumPy arrays, so it can be written
with numpy.savez; ``load_state_dict`` moves the arrays back to each parameter's device.
"""
import numpy

from tinyres.backend import device_of, to_device
from tinyres.errors import not_supported


class Optimizer:
    """Base class: subclasses set their ``defaults`` and implement ``step()``."""

    def __init__(self, params, defaults):
        self.defaults = {key: _as_python_number(value) for key, value in defaults.items()}
        self.param_groups = []
        self.state = {}      # id(parameter) -> {name: array or number}, filled by step()
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        for group in groups:
            self._add_param_group(group)

    def _add_param_group(self, group):
        if not isinstance(group, dict) or "params" not in group:
            raise TypeError(f"{type(self).__name__}: a parameter group must be a dict with a "
                            f"'params' key, got {group!r}")
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise ValueError(f"{type(self).__name__}: unknown hyperparameter(s) "
                             f"{sorted(unknown)} in a parameter group; expected some of "
                             f"{sorted(self.defaults)}")
        params = list(group["params"])
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for p in params:
            if not (hasattr(p, "data") and hasattr(p, "grad")):
                raise TypeError(f"{type(self).__name__}: parameters need .data and .grad, got "
                                f"{type(p).__name__}")
            if id(p) in seen:
                raise ValueError(f"{type(self).__name__}: a parameter appears twice (in the "
                                 f"same group or in two groups)")
            seen.add(id(p))
        hyper = {key: _as_python_number(group.get(key, value))
                 for key, value in self.defaults.items()}
        self.param_groups.append({"params": params, **hyper})

    def zero_grad(self, set_to_none=True):
        """Forget the gradients before the next backward pass: set them to None (PyTorch's
        default), or to zeros with set_to_none=False."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad[...] = 0

    def step(self):
        """Update every parameter that has a gradient, in place."""
        raise NotImplementedError(f"{type(self).__name__} must implement step()")

    def state_dict(self):
        """{"param_groups": [hyperparameters, with "params" as indices], "state": {index: {...}}}.

        Parameters are numbered in order across groups; arrays in "state" are host NumPy copies.
        """
        groups, state, index = [], {}, 0
        for group in self.param_groups:
            indices = list(range(index, index + len(group["params"])))
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": indices})
            for i, p in zip(indices, group["params"]):
                if id(p) in self.state:
                    state[i] = {name: _to_host_copy(value)
                                for name, value in self.state[id(p)].items()}
            index += len(indices)
        return {"param_groups": groups, "state": state}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and per-parameter state saved by ``state_dict()``."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state has "
                             f"{len(saved_groups)} parameter group(s), this optimizer has "
                             f"{len(self.param_groups)}")
        params = []
        for number, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{type(self).__name__}.load_state_dict: group {number} has "
                                 f"{len(saved['params'])} parameters in the state, "
                                 f"{len(group['params'])} here")
            params += group["params"]
        states = {int(i): s for i, s in state_dict["state"].items()}
        new_state = {}
        for i, p in enumerate(params):
            if i in states:
                new_state[id(p)] = {name: _to_device_like(value, p.data, i)
                                    for name, value in states[i].items()}
        for saved, group in zip(saved_groups, self.param_groups):
            group.update({k: _as_python_number(v) for k, v in saved.items() if k != "params"})
        self.state = new_state


def refuse_options(optimizer, maximize, differentiable):
    """PyTorch's optimizer options that would change the update tinyres computes."""
    if maximize:
        raise not_supported(optimizer, "maximize=True", "minimise the negated objective")
    if differentiable:
        raise not_supported(optimizer, "differentiable=True", "tinyres does not differentiate "
                            "through an optimizer step")


def _as_python_number(value):
    """0-d NumPy values (as numpy.load gives back) → Python numbers; tuples stay tuples."""
    if isinstance(value, (tuple, list)) or (isinstance(value, numpy.ndarray) and value.ndim == 1):
        return tuple(_as_python_number(v) for v in value)
    if isinstance(value, (numpy.generic, numpy.ndarray)):
        return value.item()
    return value


def _to_host_copy(value):
    if isinstance(value, (int, float)):
        return value
    return numpy.array(to_device(value, "cpu"))        # a copy, so later steps don't change it


def _to_device_like(value, data, index):
    """A saved state entry, back on the device of ``data`` (the parameter's array)."""
    value = _as_python_number(value) if numpy.ndim(value) == 0 else value
    if isinstance(value, (int, float)):
        return value
    if value.shape != data.shape:
        raise ValueError(f"load_state_dict: parameter {index} has shape {data.shape}, its saved "
                         f"state has shape {value.shape}")
    return to_device(numpy.array(value, dtype=data.dtype), device_of(data))
