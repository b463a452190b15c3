"""Floor 5: ReLU as a layer, so it can sit in a Sequential and show in the printed model."""
import tinyres.functional as F
from tinyres.nn.module import Module


class ReLU(Module):
    """y = max(x, 0).

    ``inplace`` is accepted so PyTorch model definitions run unchanged, but tinyres never
    overwrites its input: the output is always a new tensor (autograd needs the input intact).
    """

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return F.relu(x)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""
