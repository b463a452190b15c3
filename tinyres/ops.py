"""Floor 3: the basic differentiable ops, each forward beside its backward.

Each op below is one Function. Read forward and backward together: backward is the chain rule
for that one op, dL/dx = dL/dy * dy/dx, written for whole arrays.

Broadcasting: ``x + b`` with x (N, C) and b (C,) adds b to every row. In backward every row
sends its gradient to the same b, so b's gradient is the *sum* over the broadcast axes:
`unbroadcast` undoes broadcasting by summing.

At the bottom, the operators (+, -, *, /, **, @, [ ], ...) are installed on Tensor.
"""
from tinyres.autograd import Function
from tinyres.backend import get_array_module
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
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        # BEGIN SOLUTION A1 mul_backward
        return unbroadcast(gy * self.b, self.a.shape), unbroadcast(gy * self.a, self.b.shape)
        # END SOLUTION


class Div(Function):
    """y = a / b;   dy/da = 1/b, dy/db = -a/b^2"""
    def forward(self, a, b):
        self.a, self.b = a, b
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
        self.x = x
        return x ** self.exponent

    def backward(self, gy):
        return gy * self.exponent * self.x ** (self.exponent - 1)


class Exp(Function):
    """y = e^x;   dy/dx = e^x = y"""
    def forward(self, x):
        self.y = get_array_module(x).exp(x)
        return self.y

    def backward(self, gy):
        return gy * self.y


class Log(Function):
    """y = ln x;   dy/dx = 1/x"""
    def forward(self, x):
        self.x = x
        return get_array_module(x).log(x)

    def backward(self, gy):
        return gy / self.x


class MatMul(Function):
    """y = a @ b (batched over leading axes);   dL/da = dL/dy @ b^T,  dL/db = a^T @ dL/dy

    1-D operands are treated as a row (a) or a column (b) vector, as numpy.matmul does.
    """
    def forward(self, a, b):
        self.a, self.b = a, b
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
def _normalise_axis(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
    return tuple(a % ndim for a in axes) if ndim else ()


class Sum(Function):
    """y = sum of x over `axis`;   every summed element gets dL/dy unchanged."""
    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.x_shape = x.shape
        self.axes = _normalise_axis(self.axis, x.ndim)
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        # BEGIN SOLUTION A1 sum_backward
        xp = get_array_module(gy)
        if not self.keepdims:
            gy = xp.expand_dims(gy, self.axes)
        return xp.broadcast_to(gy, self.x_shape).copy()
        # END SOLUTION


class Mean(Sum):
    """y = mean of x over `axis`;   each of the n averaged elements gets dL/dy / n."""
    def forward(self, x):
        total = super().forward(x)
        self.count = 1
        for a in self.axes:
            self.count *= x.shape[a]
        return total / x.dtype.type(self.count)

    def backward(self, gy):
        return super().backward(gy) / gy.dtype.type(self.count)


class Max(Function):
    """y = max of x over one axis (or all);   the gradient goes to one maximal element per
    reduced slice (the first one, where there are ties), as max_pool2d routes it."""
    def __init__(self, axis=None, keepdims=False):
        if axis is not None and not isinstance(axis, int):
            raise TypeError(f"Max: axis must be an int or None, got {axis!r}")
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        xp = get_array_module(x)
        self.x_shape = x.shape
        flat = x.reshape(-1) if self.axis is None else x
        axis = 0 if self.axis is None else self.axis
        self.axis_n = _normalise_axis(axis, flat.ndim)[0]
        self.argmax = xp.expand_dims(flat.argmax(axis=self.axis_n), self.axis_n)
        y = xp.take_along_axis(flat, self.argmax, axis=self.axis_n)
        if self.axis is None:
            return y.reshape((1,) * x.ndim) if self.keepdims else y.reshape(())
        return y if self.keepdims else y.squeeze(self.axis_n)

    def backward(self, gy):
        xp = get_array_module(gy)
        flat_shape = (-1,) if self.axis is None else self.x_shape
        gx = xp.zeros(self.x_shape, dtype=gy.dtype).reshape(flat_shape)
        gy = gy.reshape(self.argmax.shape)
        xp.put_along_axis(gx, self.argmax, gy, axis=self.axis_n)
        return gx.reshape(self.x_shape)


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


class Transpose(Function):
    """Permute the axes;   the gradient is permuted back with the inverse permutation."""
    def __init__(self, axes=None):
        self.axes = axes

    def forward(self, x):
        xp = get_array_module(x)
        self.axes = tuple(reversed(range(x.ndim))) if self.axes is None else tuple(
            a % x.ndim for a in self.axes)
        if sorted(self.axes) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {self.axes} are not a permutation of "
                             f"{x.ndim} axes")
        return xp.transpose(x, self.axes)

    def backward(self, gy):
        xp = get_array_module(gy)
        return xp.transpose(gy, tuple(int(i) for i in xp.argsort(xp.asarray(self.axes)).tolist()))


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
    """Zero padding: pad_width = ((before_0, after_0), (before_1, after_1), ...), one per axis.
    The gradient is the centre of dL/dy (the padded border received no x)."""
    def __init__(self, pad_width):
        self.pad_width = tuple((int(b), int(a)) for b, a in pad_width)

    def forward(self, x):
        if len(self.pad_width) != x.ndim or any(b < 0 or a < 0 for b, a in self.pad_width):
            raise ValueError(f"pad: expected {x.ndim} non-negative (before, after) pairs, got "
                             f"{self.pad_width}")
        shape = tuple(n + b + a for n, (b, a) in zip(x.shape, self.pad_width))
        y = get_array_module(x).zeros_like(x, shape=shape)      # (in x's memory order)
        y[self._centre(shape)] = x
        return y

    def backward(self, gy):
        return gy[self._centre(gy.shape)]

    def _centre(self, padded_shape):
        """Where x sits inside the padded array."""
        return tuple(slice(b, n - a) for n, (b, a) in zip(padded_shape, self.pad_width))


class Concatenate(Function):
    """y = [x_0, x_1, ...] joined along `axis`;   each x_i gets its own slice of dL/dy."""
    def __init__(self, axis=0):
        self.axis = axis

    def forward(self, *xs):
        xp = get_array_module(*xs)
        self.sizes = [x.shape[self.axis] for x in xs]
        return xp.concatenate(xs, axis=self.axis)

    def backward(self, gy):
        xp = get_array_module(gy)
        bounds = [sum(self.sizes[:i + 1]) for i in range(len(self.sizes) - 1)]
        return tuple(xp.split(gy, bounds, axis=self.axis))


# -- the functional forms -----------------------------------------------------------------------
def add(a, b): return Add()(a, b)
def sub(a, b): return Sub()(a, b)
def mul(a, b): return Mul()(a, b)
def div(a, b): return Div()(a, b)
def neg(x): return Neg()(x)
def exp(x): return Exp()(x)
def log(x): return Log()(x)
def matmul(a, b): return MatMul()(a, b)
def reshape(x, *shape): return Reshape(_shape_arg(shape))(x)
def transpose(x, *axes): return Transpose(_shape_arg(axes) or None)(x)
def pad(x, pad_width): return Pad(pad_width)(x)
def concatenate(tensors, axis=0): return Concatenate(axis)(*tensors)


def _shape_arg(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


def _compare(op):
    """Comparison helpers build masks: boolean tensors outside the graph (no gradient)."""
    def compare(self, other):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(op(self.data, other))
    return compare


# -- teach Tensor its operators -----------------------------------------------------------------
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
Tensor.eq = _compare(lambda a, b: a == b)
Tensor.exp = exp
Tensor.log = log
Tensor.sum = lambda self, axis=None, keepdims=False: Sum(axis, keepdims)(self)
Tensor.mean = lambda self, axis=None, keepdims=False: Mean(axis, keepdims)(self)
Tensor.max = lambda self, axis=None, keepdims=False: Max(axis, keepdims)(self)
Tensor.reshape = reshape
Tensor.transpose = transpose
Tensor.permute = transpose
Tensor.T = property(lambda self: transpose(self))
