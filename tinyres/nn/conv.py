"""Floor 5: Conv2d — a convolution layer that owns its filters.

The layer holds weight (out_channels, in_channels, KH, KW) and an optional bias (out_channels,),
initialised as PyTorch does (see `init.default_layer_init_`), and calls ``F.conv2d`` (the
im2col + matrix multiply of `tinyres/functional/conv.py`) on every forward.
"""
import tinyres.functional as F
from tinyres.errors import not_supported
from tinyres.functional.conv import padding_of_string
from tinyres.kernels.geometry import as_pair, window_arguments
from tinyres.nn import init
from tinyres.nn.module import Module, new_parameter


class Conv2d(Module):
    """x (N, in_channels, H, W) -> (N, out_channels, OH, OW), OH = (H + 2*PH - KH) // SH + 1.

    kernel_size, stride and padding are an int or a (height, width) pair, or padding "valid" or
    "same" (stride 1, odd kernel) as in PyTorch; padding is zeros.
    PyTorch's arguments, in its order; dilation, groups and padding modes other than 'zeros'
    raise. device and dtype place and type the parameters, as in PyTorch.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        if dilation not in (1, (1, 1)):
            raise not_supported("Conv2d", f"dilation={dilation!r}", "use dilation=1")
        if groups != 1:
            raise not_supported("Conv2d", f"groups={groups!r}", "use groups=1 (one Conv2d per "
                                "group, joined with tinyres.cat)")
        if padding_mode != "zeros":
            raise not_supported("Conv2d", f"padding_mode={padding_mode!r}", "use 'zeros', or "
                                "pad the input with F.pad first")
        if isinstance(padding, str):        # PyTorch's "valid" and "same", kept as numbers
            padding = padding_of_string("Conv2d", padding,
                                        as_pair(kernel_size, "kernel_size", "Conv2d"), stride)
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
        self.to(device=device, dtype=dtype)

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
