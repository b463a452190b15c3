"""Floor 5: Dropout — zero each value with probability p while training.

The survivors are scaled by 1 / (1 - p), so the expected output equals the input and evaluation
(``model.eval()``, where dropout does nothing) needs no rescaling. The random mask is drawn from
tinyres's global generator (``tinyres.manual_seed`` makes it repeatable).
"""
import tinyres.functional as F
from tinyres.nn import init
from tinyres.nn.module import Module


class Dropout(Module):
    """inplace=True is accepted (PyTorch model files pass it) and gives the same output, but the
    input is left as it was: tinyres never overwrites an op's input."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be a probability in [0, 1) (p = 1 would drop "
                             f"everything), got {p!r}")
        self.p, self.inplace = p, inplace

    def forward(self, x):
        return F.dropout(x, self.p, training=self.training, rng=init.generator())

    def extra_repr(self):
        return f"p={self.p}"
