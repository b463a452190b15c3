"""Floor 4: local response normalisation (Krizhevsky et al. 2012), used by AlexNet and VGG-A-LRN.

Each activation is divided by a power of the energy of its neighbours *across channels*, with
PyTorch's definition (``torch.nn.functional.local_response_norm``):

    s_c = k + (alpha / size) * sum_{c' in W(c)} x_{c'}^2        y_c = x_c * s_c^(-beta)

The window W(c) runs over the channels c - size//2 ... c + (size-1)//2 (centred; for even sizes
one more on the lower side), with channels beyond the edges counting as zeros.

Backward. y_c depends on x_j directly (j = c) and through s_c (for every j in W(c)):

    dy_c/dx_j = [c = j] s_c^(-beta) - beta * x_c * s_c^(-beta-1) * (alpha/size) * 2 x_j [j in W(c)]

so, summing over c with t_c = gy_c * y_c / s_c (= gy_c x_c s_c^(-beta-1)):

    dL/dx_j = gy_j s_j^(-beta) - (2 alpha beta / size) * x_j * sum_{c : j in W(c)} t_c

j in W(c) means c runs from j - (size-1)//2 to j + size//2: the same window sum as the forward,
with the padding before and after swapped.
"""
from tinyres.autograd import Function
from tinyres.backend import get_array_module


def _channel_window_sum(v, before, after):
    """out_c = v_{c-before} + ... + v_{c+after} along axis 1, zeros beyond the edges.
    v (N, C, ...) -> (N, C, ...). A loop over the size = before + 1 + after window offsets."""
    xp = get_array_module(v)
    channels = v.shape[1]
    pad = [(0, 0)] * v.ndim
    pad[1] = (before, after)
    padded = xp.pad(v, pad)                                    # (N, before + C + after, ...)
    out = xp.zeros_like(v)
    for offset in range(before + 1 + after):
        out += padded[:, offset:offset + channels]
    return out


class LocalResponseNorm(Function):
    """y = x * s^(-beta), s = k + alpha/size * (window sum of x^2 over channels)"""

    def __init__(self, size, alpha, beta, k):
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        s = self.k + (self.alpha / self.size) * _channel_window_sum(
            x * x, self.size // 2, (self.size - 1) // 2)       # (N, C, ...)
        y = x * s ** -self.beta                                # (N, C, ...)
        self.save(x=x, s=s, y=y)
        return y

    def backward(self, gy):
        t = gy * self.y / self.s                               # (N, C, ...)
        spread = _channel_window_sum(t, (self.size - 1) // 2, self.size // 2)   # swapped window
        coefficient = 2.0 * self.alpha * self.beta / self.size
        return gy * self.s ** -self.beta - coefficient * self.x * spread       # (N, C, ...)


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0):
    """Normalise x (N, C, ...) over windows of `size` neighbouring channels, as
    ``torch.nn.functional.local_response_norm``."""
    x = input
    if x.ndim < 3:
        raise ValueError(f"local_response_norm: expected an input of 3 or more dimensions "
                         f"(N, C, H, W) or (N, C, L), got shape {tuple(x.shape)}")
    if x.dtype.kind != "f":
        raise TypeError(f"local_response_norm: expected a floating point input, got dtype "
                        f"{x.dtype}")
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"local_response_norm: size must be a positive int, got {size!r}")
    return LocalResponseNorm(size, float(alpha), float(beta), float(k))(x)
