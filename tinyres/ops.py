"""Floor 3: the basic differentiable ops, each forward beside its backward.

Each op below is one Function. Read forward and backward together: backward is the chain rule
for that one op, dL/dx = dL/dy * dy/dx, written for whole arrays.

Broadcasting: ``x + b`` with x (N, C) and b (C,) adds b to every row. In backward every row
sends its gradient to the same b, so b's gradient is the *sum* over the broadcast axes:
`unbroadcast` undoes broadcasting by summing.

At the bottom come the public functions with PyTorch's names and argument orders (``sum``,
``max``, ``transpose`` ... shadow Python's builtins inside this file, as in ``torch``), and the
operators (+, -, *, /, **, @, [ ], ==, ...) and methods are installed on Tensor.
"""
import itertools
from typing import NamedTuple

import numpy

from tinyres.autograd import Function, is_grad_enabled
from tinyres.backend import get_array_module
from tinyres.errors import not_supported
from tinyres.tensor import Tensor


def unbroadcast(grad, shape):
    """Sum `grad` down to `shape`, undoing NumPy broadcasting."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)                        # leading axes broadcasting added
    grad = grad.sum(axis=tuple(range(extra))) if extra else grad
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched, keepdims=True) if stretched else grad


# -- arithmetic ---------------------------------------------------------------------------------
class Add(Function):
    """y = a + b;   dy/da = 1, dy/db = 1"""
    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return a + b

    def backward(self, gy):
        return unbroadcast(gy, self.a_shape), unbroadcast(gy, self.b_shape)


class Sub(Function):
    """y = a - b;   dy/da = 1, dy/db = -1"""
    def forward(self, a, b):
        self.a_shape, self.b_shape = a.shape, b.shape
        return a - b

    def backward(self, gy):
        return unbroadcast(gy, self.a_shape), unbroadcast(-gy, self.b_shape)


class Mul(Function):
    """y = a * b;   dy/da = b, dy/db = a"""
    def forward(self, a, b):
        self.save(a=a, b=b)
        return a * b

    def backward(self, gy):
        # BEGIN SOLUTION A1 mul_backward
        return unbroadcast(gy * self.b, self.a.shape), unbroadcast(gy * self.a, self.b.shape)
        # END SOLUTION


class Div(Function):
    """y = a / b;   dy/da = 1/b, dy/db = -a/b^2"""
    def forward(self, a, b):
        self.save(a=a, b=b)
        return a / b

    def backward(self, gy):
        ga = gy / self.b
        gb = -ga * self.a / self.b
        return unbroadcast(ga, self.a.shape), unbroadcast(gb, self.b.shape)


class Neg(Function):
    """y = -x;   dy/dx = -1"""
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Pow(Function):
    """y = x ** p for a constant exponent p;   dy/dx = p * x^(p-1)"""
    def __init__(self, exponent):
        if not isinstance(exponent, (int, float)):
            raise TypeError(f"Pow: the exponent must be a Python number, got "
                            f"{type(exponent).__name__} (tensor exponents are not supported)")
        self.exponent = exponent

    def forward(self, x):
        self.save(x=x)
        return x ** self.exponent

    def backward(self, gy):
        return gy * self.exponent * self.x ** (self.exponent - 1)


class Exp(Function):
    """y = e^x;   dy/dx = e^x = y"""
    def forward(self, x):
        y = get_array_module(x).exp(x)
        self.save(y=y)
        return y

    def backward(self, gy):
        return gy * self.y


class Log(Function):
    """y = ln x;   dy/dx = 1/x"""
    def forward(self, x):
        self.save(x=x)
        return get_array_module(x).log(x)

    def backward(self, gy):
        return gy / self.x


class MatMul(Function):
    """y = a @ b (batched over leading axes);   dL/da = dL/dy @ b^T,  dL/db = a^T @ dL/dy

    1-D operands are treated as a row (a) or a column (b) vector, as numpy.matmul does.
    """
    def forward(self, a, b):
        self.save(a=a, b=b)
        return a @ b

    def backward(self, gy):
        # BEGIN SOLUTION A1 matmul_backward
        xp = get_array_module(gy)
        a = self.a if self.a.ndim > 1 else self.a[None, :]               # (..., M, K)
        b = self.b if self.b.ndim > 1 else self.b[:, None]               # (..., K, N)
        if self.b.ndim == 1:
            gy = xp.expand_dims(gy, -1)                                   # restore N = 1
        if self.a.ndim == 1:
            gy = xp.expand_dims(gy, -2)                                   # restore M = 1
        ga = unbroadcast(gy @ xp.swapaxes(b, -1, -2), a.shape)            # (..., M, K)
        gb = unbroadcast(xp.swapaxes(a, -1, -2) @ gy, b.shape)            # (..., K, N)
        return ga.reshape(self.a.shape), gb.reshape(self.b.shape)
        # END SOLUTION


# -- reductions ---------------------------------------------------------------------------------
def _normalise_dim(dim, ndim):
    """`dim` (None, an int or a tuple of ints, negative counting from the end) as a tuple of
    non-negative axes; None means every axis."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    for d in dims:
        if not -(ndim or 1) <= d < (ndim or 1):
            raise IndexError(f"dim {d} is out of range for a tensor with {ndim} dimensions "
                             f"(expected {-(ndim or 1)} to {(ndim or 1) - 1})")
    return tuple(d % ndim for d in dims) if ndim else ()


class Sum(Function):
    """y = sum of x over `dim`;   every summed element gets dL/dy unchanged."""
    def __init__(self, dim=None, keepdim=False):
        self.dim, self.keepdim = dim, keepdim

    def forward(self, x):
        self.x_shape = x.shape
        self.dims = _normalise_dim(self.dim, x.ndim)
        return x.sum(axis=self.dims, keepdims=self.keepdim)

    def backward(self, gy):
        # BEGIN SOLUTION A1 sum_backward
        xp = get_array_module(gy)
        if not self.keepdim:
            gy = xp.expand_dims(gy, self.dims)
        return xp.broadcast_to(gy, self.x_shape).copy()
        # END SOLUTION


class Mean(Sum):
    """y = mean of x over `dim`;   each of the n averaged elements gets dL/dy / n."""
    def forward(self, x):
        total = super().forward(x)
        self.count = 1
        for d in self.dims:
            self.count *= x.shape[d]
        return total / x.dtype.type(self.count)

    def backward(self, gy):
        return super().backward(gy) / gy.dtype.type(self.count)


class Max(Function):
    """y = max of x over one dim, or over everything. Over one dim the gradient goes to one
    maximal element per slice (the first, where there are ties), as max_pool2d routes it; over
    everything, tied maxima share it equally. Both are PyTorch's rules."""
    pick = "argmax"

    def __init__(self, dim=None, keepdim=False):
        if dim is not None and not isinstance(dim, int):
            raise TypeError(f"{self.name}: dim must be an int or None, got {dim!r}")
        self.dim, self.keepdim = dim, keepdim

    def forward(self, x):
        xp = get_array_module(x)
        self.x_shape = x.shape
        if self.dim is None:
            y = x.reshape(-1)[getattr(x.reshape(-1), self.pick)()]            # () the extreme
            self.save(ties=(x == y))                                           # x's shape
            return y.reshape((1,) * x.ndim) if self.keepdim else y.reshape(())
        self.dim_n = _normalise_dim(self.dim, x.ndim)[0]
        index = xp.expand_dims(getattr(x, self.pick)(axis=self.dim_n), self.dim_n)
        self.save(index=index)
        y = xp.take_along_axis(x, index, axis=self.dim_n)
        return y if self.keepdim else y.squeeze(self.dim_n)

    def backward(self, gy):
        xp = get_array_module(gy)
        if self.dim is None:
            return gy * self.ties / self.ties.sum(dtype=gy.dtype)       # ties share it
        gx = xp.zeros(self.x_shape, dtype=gy.dtype)
        xp.put_along_axis(gx, self.index, gy.reshape(self.index.shape), axis=self.dim_n)
        return gx


class Min(Max):
    """y = min of x over one dim (or all);   the gradient goes to one minimal element."""
    pick = "argmin"


# -- shape ops ----------------------------------------------------------------------------------
class Reshape(Function):
    """Same elements, new shape;   the gradient is reshaped back."""
    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.x_shape = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(f"cannot reshape a tensor of shape {x.shape} ({x.size} elements) "
                             f"to {self.shape}") from None

    def backward(self, gy):
        return gy.reshape(self.x_shape)


class Permute(Function):
    """Reorder the dims: y.shape[i] = x.shape[dims[i]];   the gradient is permuted back with the
    inverse permutation."""
    def __init__(self, dims):
        self.dims = tuple(dims)

    def forward(self, x):
        xp = get_array_module(x)
        if len(self.dims) != x.ndim or sorted(d % (x.ndim or 1) for d in self.dims) != list(
                range(x.ndim)):
            raise ValueError(f"permute: dims {self.dims} are not a permutation of the "
                             f"{x.ndim} dims of a tensor of shape {x.shape}")
        self.dims = tuple(d % x.ndim for d in self.dims)
        return xp.transpose(x, self.dims)

    def backward(self, gy):
        xp = get_array_module(gy)
        inverse = [0] * len(self.dims)
        for i, d in enumerate(self.dims):
            inverse[d] = i
        return xp.transpose(gy, inverse)


class Expand(Function):
    """Broadcast x to a larger shape without copying (size-1 dims stretched, new dims in front);
    the gradient sums over what was stretched (unbroadcast)."""
    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        self.x_shape = x.shape
        extra = len(self.shape) - x.ndim
        if extra < 0:
            raise ValueError(f"expand: the shape {self.shape} has fewer dims than the tensor's "
                             f"{x.shape}")
        shape = tuple(x.shape[i - extra] if n == -1 and i >= extra else n
                      for i, n in enumerate(self.shape))     # -1 keeps that dim's size
        try:
            return get_array_module(x).broadcast_to(x, shape)
        except ValueError:
            raise ValueError(f"expand: a tensor of shape {x.shape} cannot be expanded to "
                             f"{self.shape} (only size-1 dims stretch)") from None

    def backward(self, gy):
        return unbroadcast(gy, self.x_shape)


class Repeat(Function):
    """Tile x: y = x repeated repeats[i] times along dim i (as ``torch.Tensor.repeat``);
    each copy's gradient flows back to x, so dL/dx is the sum over the copies."""
    def __init__(self, repeats):
        self.repeats = tuple(repeats)

    def forward(self, x):
        if len(self.repeats) < x.ndim:
            raise ValueError(f"repeat: give at least {x.ndim} repeat counts for a tensor of shape "
                             f"{x.shape}, got {self.repeats}")
        self.in_shape = x.shape
        self.x_shape = (1,) * (len(self.repeats) - x.ndim) + x.shape    # leading 1s added
        return get_array_module(x).tile(x.reshape(self.x_shape), self.repeats)

    def backward(self, gy):
        # (r0*s0, r1*s1, ...) -> (r0, s0, r1, s1, ...), then sum the r axes away
        split = tuple(n for pair in zip(self.repeats, self.x_shape) for n in pair)
        return gy.reshape(split).sum(axis=tuple(range(0, len(split), 2))).reshape(self.in_shape)


class GetItem(Function):
    """y = x[index] (slices, strides, integer or boolean arrays);
    the gradient is scattered back into a zero array of x's shape (added, for repeated indices)."""
    def __init__(self, index):
        self.index = tuple(i.data if isinstance(i, Tensor) else i for i in index) if isinstance(
            index, tuple) else (index.data if isinstance(index, Tensor) else index)

    def forward(self, x):
        self.x_shape, self.x_dtype = x.shape, x.dtype
        return x[self.index]

    def backward(self, gy):
        xp = get_array_module(gy)
        gx = xp.zeros_like(gy, shape=self.x_shape)   # (in gy's memory order, when ranks agree)
        parts = self.index if isinstance(self.index, tuple) else (self.index,)
        if any(hasattr(p, "shape") or isinstance(p, list) for p in parts):
            xp.add.at(gx, self.index, gy)      # advanced indexing may repeat elements
        else:
            gx[self.index] = gy                # basic slicing picks each element at most once
        return gx


class Pad(Function):
    """Constant padding (zeros unless `value` is given): pad_width = ((before_0, after_0),
    (before_1, after_1), ...), one pair per axis, NumPy's order (F.pad takes PyTorch's).
    The gradient is the centre of dL/dy (the padded border received no x)."""
    def __init__(self, pad_width, value=0.0):
        self.pad_width = tuple((int(b), int(a)) for b, a in pad_width)
        self.value = value

    def forward(self, x):
        if len(self.pad_width) != x.ndim or any(b < 0 or a < 0 for b, a in self.pad_width):
            raise ValueError(f"pad: expected {x.ndim} non-negative (before, after) pairs, got "
                             f"{self.pad_width}")
        shape = tuple(n + b + a for n, (b, a) in zip(x.shape, self.pad_width))
        y = get_array_module(x).full_like(x, self.value, shape=shape)  # (in x's memory order)
        y[self._centre(shape)] = x
        return y

    def backward(self, gy):
        return gy[self._centre(gy.shape)]

    def _centre(self, padded_shape):
        """Where x sits inside the padded array."""
        return tuple(slice(b, n - a) for n, (b, a) in zip(padded_shape, self.pad_width))


class Concatenate(Function):
    """y = [x_0, x_1, ...] joined along `dim`;   each x_i gets its own slice of dL/dy."""
    def __init__(self, dim=0):
        self.dim = dim

    def forward(self, *xs):
        xp = get_array_module(*xs)
        self.sizes = [x.shape[self.dim] for x in xs]
        return xp.concatenate(xs, axis=self.dim)

    def backward(self, gy):
        xp = get_array_module(gy)
        bounds = list(itertools.accumulate(self.sizes))[:-1]      # where each x_i ends
        return tuple(xp.split(gy, bounds, axis=self.dim))


class Cast(Function):
    """y = x converted to another floating point dtype (a copy, also for the same dtype: clone);
    the gradient is converted back to x's dtype."""
    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        self.x_dtype = x.dtype
        return x.astype(self.dtype, copy=True)

    def backward(self, gy):
        return gy.astype(self.x_dtype, copy=False)


# -- the functional forms (PyTorch's names and argument orders) ---------------------------------
def add(a, b): return Add()(a, b)
def sub(a, b): return Sub()(a, b)
def mul(a, b): return Mul()(a, b)
def div(a, b): return Div()(a, b)
def neg(x): return Neg()(x)
def exp(x): return Exp()(x)
def log(x): return Log()(x)
def matmul(a, b): return MatMul()(a, b)
def reshape(x, *shape): return Reshape(_shape_arg(shape))(x)
def permute(x, *dims): return Permute(_shape_arg(dims))(x)
def cat(tensors, dim=0): return Concatenate(dim)(*tensors)
def concatenate(tensors, axis=0): return cat(tensors, axis)      # torch.concatenate: cat's alias
def pad(x, pad_width, value=0.0): return Pad(pad_width, value)(x)   # NumPy's pad_width order


def transpose(x, dim0, dim1):
    """Swap two dims, as ``torch.transpose`` (not NumPy's transpose, which permutes all)."""
    dims = list(range(x.ndim))
    d0, d1 = _normalise_dim((dim0, dim1), x.ndim)
    dims[d0], dims[d1] = d1, d0
    return permute(x, dims)


def stack(tensors, dim=0):
    """Join same-shaped tensors along a new dim, as ``torch.stack``."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    dim = _normalise_dim(dim, tensors[0].ndim + 1)[0]
    return cat([unsqueeze(t, dim) for t in tensors], dim)


def flatten(x, start_dim=0, end_dim=-1):
    """Merge dims start_dim..end_dim into one, as ``torch.flatten``:
    flatten(x, 1) of (N, C, H, W) is (N, C*H*W). A reshape, so its gradient is the reshape back."""
    if x.ndim == 0:
        return reshape(x, 1)
    start, end = _normalise_dim((start_dim, end_dim), x.ndim)
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for a "
                         f"tensor of shape {tuple(x.shape)}")
    merged = 1
    for n in x.shape[start:end + 1]:
        merged *= n
    return reshape(x, tuple(x.shape[:start]) + (merged,) + tuple(x.shape[end + 1:]))


def unsqueeze(x, dim):
    """A size-1 dim inserted at `dim` (-1: at the end), as ``torch.unsqueeze``."""
    dim = _normalise_dim(dim, x.ndim + 1)[0]
    return reshape(x, tuple(x.shape[:dim]) + (1,) + tuple(x.shape[dim:]))


def squeeze(x, dim=None):
    """Size-1 dims removed (all of them, or those of `dim` when they have size 1), as
    ``torch.squeeze``."""
    dims = _normalise_dim(dim, x.ndim)
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if not (i in dims and n == 1)))


def expand(x, *sizes): return Expand(_shape_arg(sizes))(x)
def repeat(x, *repeats): return Repeat(_shape_arg(repeats))(x)


def _shape_arg(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


# -- reductions as PyTorch calls them: dim= / keepdim= (NumPy's axis= / keepdims= are aliases,
# as in PyTorch) ---------------------------------------------------------------------------------
class ValuesIndices(NamedTuple):
    """What ``max(dim)`` / ``min(dim)`` return, as PyTorch's ``torch.return_types.max``."""
    values: Tensor
    indices: Tensor


def _dim_and_keepdim(op, dim, keepdim, axis, keepdims):
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: give dim= or its alias axis=, not both")
        dim = axis
    return dim, keepdim if keepdims is None else keepdims


def sum(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Sum over `dim` (an int, a tuple of ints, or None for all), as ``torch.sum``."""
    return Sum(*_dim_and_keepdim("sum", dim, keepdim, axis, keepdims))(x)


def mean(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
    """Mean over `dim` (an int, a tuple of ints, or None for all), as ``torch.mean``."""
    return Mean(*_dim_and_keepdim("mean", dim, keepdim, axis, keepdims))(x)


def _extremum(function, op):
    def extremum(x, dim=None, keepdim=False, *, axis=None, keepdims=None):
        dim, keepdim = _dim_and_keepdim(op, dim, keepdim, axis, keepdims)
        if isinstance(dim, Tensor):
            raise TypeError(f"{op}(other): the element-wise {op} of two tensors is not supported "
                            f"in tinyres; build it from a mask, e.g. (a >= b) * a + (a < b) * b")
        if dim is None:                              # over everything: one value, no indices
            return function(None, keepdim)(x)
        indices = getattr(x.data, f"arg{op}")(axis=_normalise_dim(dim, x.ndim)[0])
        if keepdim:
            indices = get_array_module(indices).expand_dims(indices, dim)
        return ValuesIndices(function(dim, keepdim)(x), Tensor(indices))
    extremum.__doc__ = (f"The {op} over everything (a 0-d tensor), or over `dim` as "
                        f"(values, indices), as ``torch.{op}``.")
    return extremum


max = _extremum(Max, "max")
min = _extremum(Min, "min")


def _arg_extremum(op):
    def arg_extremum(x, dim=None, keepdim=False):
        if dim is None:                              # the index in the flattened tensor
            return Tensor(getattr(x.data.reshape(-1), op)())
        d = _normalise_dim(dim, x.ndim)[0]
        indices = getattr(x.data, op)(axis=d)
        return Tensor(get_array_module(indices).expand_dims(indices, d) if keepdim else indices)
    arg_extremum.__doc__ = (f"Indices of the {op[3:]} (no gradient), as ``torch.{op}``.")
    return arg_extremum


argmax = _arg_extremum("argmax")
argmin = _arg_extremum("argmin")


def var(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance over `dim`: sum((x - mean)^2) / (n - correction), as ``torch.var``.
    PyTorch's default is the unbiased estimate (correction=1; unbiased=False means 0)."""
    if unbiased is not None and correction is not None:
        raise TypeError("var: give unbiased= or correction=, not both")
    if correction is None:
        correction = 0 if unbiased is False else 1
    dims = _normalise_dim(dim, x.ndim)
    count = 1
    for d in dims:
        count *= x.shape[d]
    centred = x - mean(x, dims, keepdim=True)
    return sum(centred * centred, dims, keepdim=keepdim) / float(count - correction)


def std(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Standard deviation, sqrt(var) with var's arguments, as ``torch.std``."""
    return var(x, dim, unbiased, keepdim, correction=correction) ** 0.5


def _compare(op):
    """Comparison helpers build masks: boolean tensors outside the graph (no gradient)."""
    def compare(self, other):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(op(self.data, other))
    return compare


def _cast_to(x, dtype):
    """x in another dtype, in the graph for floating point targets (as PyTorch's .to(dtype));
    an integer or boolean result is a new tensor outside the graph (it has no gradient)."""
    dtype = numpy.dtype(dtype)
    if dtype == x.dtype:
        return x
    if dtype.kind != "f":
        return Tensor(x.data.astype(dtype))
    return Cast(dtype)(x)


def to(x, *args, device=None, dtype=None, non_blocking=False, copy=False):
    """x on another device and/or in another dtype, as ``torch.Tensor.to``: ``to("cpu")``,
    ``to(torch.float64)``, ``to(other_tensor)``, ``to(device=..., dtype=...)``. Itself when
    nothing changes (a copy when copy=True)."""
    for arg in args:
        if isinstance(arg, Tensor):
            device, dtype = arg.device, arg.dtype
        elif isinstance(arg, str):
            device = arg
        else:
            dtype = arg
    moved = x if device is None else x.to_device(device)
    result = moved if dtype is None else _cast_to(moved, dtype)
    return Cast(result.dtype)(result) if copy and result is x else result


def contiguous(x, memory_format=None):
    """x itself: tinyres's ops take any memory layout (the fast kernels choose their own), so
    there is nothing to make contiguous; a memory_format raises."""
    if memory_format is not None:
        raise not_supported("contiguous", f"memory_format={memory_format!r}", "leave the layout "
                            "to tinyres (the fast kernels choose their own)")
    return x


def clone(x):
    """A copy of x's data that stays in the graph (its gradient flows back to x)."""
    return Cast(x.dtype)(x)


# -- in place, for optimisers and initialisers: only where autograd cannot see it ----------------
def _writable(x, op):
    """x's array, to be overwritten by `op`; refused where the graph may need the old values."""
    if is_grad_enabled() and x.requires_grad:
        raise RuntimeError(f"{op} on a tensor that requires grad: tinyres records no in-place "
                           "ops in the graph; call it under tinyres.no_grad() (as an optimiser "
                           "step does), or use the out-of-place op")
    return x.data


def _operand(other):
    return other.data if isinstance(other, Tensor) else other


def add_(x, other, *, alpha=1):
    """x += alpha * other, in place; returns x."""
    _writable(x, "add_")[...] += _operand(other) if alpha == 1 else alpha * _operand(other)
    return x


def sub_(x, other, *, alpha=1):
    """x -= alpha * other, in place; returns x."""
    _writable(x, "sub_")[...] -= _operand(other) if alpha == 1 else alpha * _operand(other)
    return x


def mul_(x, other):
    _writable(x, "mul_")[...] *= _operand(other)
    return x


def div_(x, other):
    _writable(x, "div_")[...] /= _operand(other)
    return x


def fill_(x, value):
    _writable(x, "fill_")[...] = _operand(value)
    return x


def zero_(x):
    return fill_(x, 0)


def copy_(x, src):
    """x's values replaced by src's (broadcast to x's shape, converted to x's dtype)."""
    _writable(x, "copy_")[...] = _operand(src)
    return x


# -- teach Tensor its operators and methods -----------------------------------------------------
Tensor.__add__ = Tensor.__radd__ = lambda self, other: add(self, other)
Tensor.__sub__ = lambda self, other: sub(self, other)
Tensor.__rsub__ = lambda self, other: sub(other, self)
Tensor.__mul__ = Tensor.__rmul__ = lambda self, other: mul(self, other)
Tensor.__truediv__ = lambda self, other: div(self, other)
Tensor.__rtruediv__ = lambda self, other: div(other, self)
Tensor.__neg__ = neg
Tensor.__pow__ = lambda self, exponent: Pow(exponent)(self)
Tensor.__matmul__ = lambda self, other: matmul(self, other)
Tensor.__rmatmul__ = lambda self, other: matmul(other, self)
Tensor.__getitem__ = lambda self, index: GetItem(index)(self)
Tensor.__gt__ = _compare(lambda a, b: a > b)
Tensor.__ge__ = _compare(lambda a, b: a >= b)
Tensor.__lt__ = _compare(lambda a, b: a < b)
Tensor.__le__ = _compare(lambda a, b: a <= b)
Tensor.__eq__ = Tensor.eq = _compare(lambda a, b: a == b)       # element-wise, as PyTorch's ==
Tensor.__ne__ = Tensor.ne = _compare(lambda a, b: a != b)
Tensor.__hash__ = object.__hash__        # == is element-wise, but a tensor is still a dict key
Tensor.exp = exp
Tensor.log = log
Tensor.sum, Tensor.mean, Tensor.var, Tensor.std = sum, mean, var, std
Tensor.max, Tensor.min, Tensor.argmax, Tensor.argmin = max, min, argmax, argmin
Tensor.reshape = reshape
Tensor.view = lambda self, *shape: reshape(self, *shape)
Tensor.view_as = lambda self, other: reshape(self, other.shape)
Tensor.flatten, Tensor.unsqueeze, Tensor.squeeze = flatten, unsqueeze, squeeze
Tensor.expand, Tensor.repeat = expand, repeat
Tensor.expand_as = lambda self, other: expand(self, other.shape)
Tensor.transpose, Tensor.permute = transpose, permute
Tensor.T = property(lambda self: permute(self, tuple(reversed(range(self.ndim)))))
Tensor.to, Tensor.clone = to, clone
Tensor.contiguous = contiguous
Tensor.float = lambda self: _cast_to(self, numpy.float32)
Tensor.double = lambda self: _cast_to(self, numpy.float64)
Tensor.half = lambda self: _cast_to(self, numpy.float16)
Tensor.long = lambda self: _cast_to(self, numpy.int64)
Tensor.int = lambda self: _cast_to(self, numpy.int32)
Tensor.bool = lambda self: _cast_to(self, numpy.bool_)
Tensor.add_, Tensor.sub_, Tensor.mul_, Tensor.div_ = add_, sub_, mul_, div_
Tensor.fill_, Tensor.zero_, Tensor.copy_ = fill_, zero_, copy_
