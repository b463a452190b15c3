"""Floor 4: dropout (Srivastava et al. 2014), the regulariser of VGG's fully connected layers.

In training each unit is zeroed with probability p. The kept units are scaled by 1/(1-p)
("inverted" dropout), so each unit's expected value is unchanged and evaluation is the identity:

    mask = (u >= p) / (1 - p)   with u uniform in [0, 1)        y = x * mask      dL/dx = gy * mask

The mask is drawn once per call and kept for backward. It is drawn where x lives: with the array
module's own generator (xp.random.default_rng, on the GPU for CuPy) from a seed, or from a
`numpy.random.Generator` you pass (drawn on the host, then moved to x's device).
"""
from numbers import Integral

from tinyres.autograd import Function
from tinyres.backend import get_array_module


class Dropout(Function):
    """y = x * mask;   dL/dx = gy * mask (the same mask)"""

    def __init__(self, mask):
        self.mask = mask                                      # x's shape: 0 or 1/(1-p)

    def forward(self, x):
        return x * self.mask

    def backward(self, gy):
        return gy * self.mask


def dropout(input, p=0.5, training=True, inplace=False, *, rng=None):
    """Inverted dropout, as ``torch.nn.functional.dropout``; x itself when not training or p == 0.
    inplace=True gives the same output but leaves x as it was (as F.relu's).

    rng: None (fresh randomness), an int seed (the same seed gives the same mask), or a generator
    with a ``random(shape)`` method, e.g. ``numpy.random.default_rng(0)``, advanced by each call.
    """
    x = input
    if not (isinstance(p, (int, float)) and 0.0 <= p < 1.0):
        raise ValueError(f"dropout: p is the probability of zeroing a unit and must be in [0, 1), "
                         f"got {p!r}")
    if x.dtype.kind != "f":
        raise TypeError(f"dropout: expected a floating point input, got dtype {x.dtype}")
    if not training or p == 0:
        return x
    xp = get_array_module(x)
    if rng is None or (isinstance(rng, Integral) and not isinstance(rng, bool)):
        rng = xp.random.default_rng(rng)                      # on x's device (cupy: the GPU)
    elif not hasattr(rng, "random"):
        raise TypeError(f"dropout: rng must be None, an int seed or a generator such as "
                        f"numpy.random.default_rng(0), got {type(rng).__name__}")
    uniform = xp.asarray(rng.random(tuple(x.shape)))          # moved to x's device if drawn on host
    mask = (uniform >= p).astype(x.dtype) * (1.0 / (1.0 - p))  # x's shape and dtype
    return Dropout(mask)(x)
