"""Floor 5: Conv2d — a convolution layer that owns its filters.

The layer holds weight (out_channels, in_channels, KH, KW) and an optional bias (out_channels,),
initialised as PyTorch does (see `init.default_layer_init_`), and calls ``F.conv2d`` (the
im2col + matrix multiply of `tinyres/functional/conv.py`) on every forward.
"""
import tinyres.functional as F
from tinyres.kernels.geometry import window_arguments
from tinyres.nn import init
from tinyres.nn.module import Module, new_parameter


class Conv2d(Module):
    """x (N, in_channels, H, W) -> (N, out_channels, OH, OW), OH = (H + 2*PH - KH) // SH + 1.

    kernel_size, stride and padding are an int or a (height, width) pair; padding is zeros.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        for label, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Conv2d: {label} must be a positive int, got {value!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        # the window's arguments as pairs, checked where every path checks them
        self.kernel_size, self.stride, self.padding = window_arguments("Conv2d", kernel_size,
                                                                       stride, padding)
        self.weight = new_parameter(out_channels, in_channels, *self.kernel_size)
        if bias:
            self.bias = new_parameter(out_channels)
        else:
            self.register_parameter("bias", None)
        init.default_layer_init_(self.weight, self.bias)

    def forward(self, x):
        self._check_input(x, "(N, C, H, W)", self.in_channels)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, name=self.label)

    def extra_repr(self):
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.bias is None:
            text += ", bias=False"
        return text
