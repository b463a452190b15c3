"""Floor 5: pooling layers — MaxPool2d, AvgPool2d, AdaptiveAvgPool2d.

No parameters: each layer remembers its window and calls the matching ``F`` function. ResNet
uses a 3x3 stride-2 max pool after its first ImageNet conv, and global average pooling
(``AdaptiveAvgPool2d(1)``) before the classifier: each channel's map becomes one number.
"""
import tinyres.functional as F
from tinyres import ops
from tinyres.functional.conv import as_pair
from tinyres.nn.module import Module


class MaxPool2d(Module):
    """The maximum of each KH x KW window: (N, C, H, W) -> (N, C, OH, OW).
    `stride` defaults to `kernel_size`; padding (at most half the kernel) never wins the max."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def forward(self, x):
        self._check_input(x, "(N, C, H, W)")
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, name=self.label)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    """The mean of each KH x KW window (zero padding counts in the mean, as in PyTorch)."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def forward(self, x):
        self._check_input(x, "(N, C, H, W)")
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, name=self.label)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (OH, OW), whatever the input's H and W.

    output_size=1 is global average pooling, (N, C, H, W) -> (N, C, 1, 1). Other sizes are
    supported when H and W are multiples of them (then it is AvgPool2d with an H/OH x W/OW
    window); PyTorch's uneven, overlapping windows for other sizes are not implemented.
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
        N, C, H, W = x.shape
        OH, OW = self._size
        if (OH, OW) == (1, 1):
            return ops.reshape(F.global_avg_pool2d(x, name=self.label), N, C, 1, 1)
        if H % OH or W % OW:
            raise ValueError(f"{self.label}: output size ({OH}, {OW}) needs an input height and "
                             f"width that are multiples of it (uneven windows are not "
                             f"implemented), got shape {tuple(x.shape)}")
        return F.avg_pool2d(x, (H // OH, W // OW), name=self.label)

    def extra_repr(self):
        return f"output_size={self.output_size}"
