"""Floor 5: pooling layers — MaxPool2d, AvgPool2d, AdaptiveAvgPool2d.

No parameters: each layer remembers its window and calls the matching ``F`` function. ResNet
uses a 3x3 stride-2 max pool after its first ImageNet conv, and global average pooling
(``AdaptiveAvgPool2d(1)``) before the classifier: each channel's map becomes one number.
"""
import tinyres.functional as F
from tinyres.kernels.geometry import as_pair
from tinyres.nn.module import Module


class _WindowPool2d(Module):
    """What MaxPool2d and AvgPool2d share: the window's arguments, the call and the printout.
    A subclass names the F function that reduces each window."""

    pool = None     # F.max_pool2d or F.avg_pool2d (a staticmethod: it takes no `self`)

    def __init__(self, kernel_size, stride=None, padding=0, **options):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.options = options        # PyTorch's other arguments, checked by the F function

    def forward(self, x):
        self._check_input(x, "(N, C, H, W)")
        return self.pool(x, self.kernel_size, self.stride, self.padding, **self.options,
                         name=self.label)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_WindowPool2d):
    """The maximum of each KH x KW window: (N, C, H, W) -> (N, C, OH, OW). `stride` defaults to
    `kernel_size`; padding (at most half the kernel) never wins the max."""

    pool = staticmethod(F.max_pool2d)

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__(kernel_size, stride, padding, dilation=dilation,
                         return_indices=return_indices, ceil_mode=ceil_mode)


class AvgPool2d(_WindowPool2d):
    """The mean of each KH x KW window: (N, C, H, W) -> (N, C, OH, OW). `stride` defaults to
    `kernel_size`; zero padding counts in the mean, as in PyTorch."""

    pool = staticmethod(F.avg_pool2d)

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__(kernel_size, stride, padding, ceil_mode=ceil_mode,
                         count_include_pad=count_include_pad, divisor_override=divisor_override)


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (OH, OW), whatever the input's H and W.

    output_size=1 is global average pooling, (N, C, H, W) -> (N, C, 1, 1). Any other size works
    as in PyTorch: H/OH x W/OW windows when the sizes divide evenly, otherwise uneven, possibly
    overlapping ones (F.adaptive_avg_pool2d shows how they are chosen).
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size                  # as given, for the printout
        self._size = as_pair(output_size, "output_size", "AdaptiveAvgPool2d")   # (OH, OW)
        if min(self._size) < 1:
            raise ValueError(f"AdaptiveAvgPool2d: output_size must be positive, got "
                             f"{output_size!r}")

    def forward(self, x):
        self._check_input(x, "(N, C, H, W)")
        return F.adaptive_avg_pool2d(x, self._size, name=self.label)

    def extra_repr(self):
        return f"output_size={self.output_size}"
