"""Floor 5: the loss as a layer — CrossEntropyLoss, as PyTorch's training loops write it:

    criterion = nn.CrossEntropyLoss()
    loss = criterion(model(images), labels)          # logits (N, K), labels (N,) -> () scalar

It holds no parameters, only the reduction, and calls ``F.cross_entropy`` (functional/loss.py
has the math and the fused backward).
"""
import tinyres.functional as F
from tinyres.nn.module import Module


class CrossEntropyLoss(Module):
    """Mean (or summed) cross-entropy of logits against class indices, PyTorch's arguments in
    its order; those tinyres does not implement raise when given (see F.cross_entropy)."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean", label_smoothing=0.0):
        super().__init__()
        self.options = dict(weight=weight, size_average=size_average, ignore_index=ignore_index,
                            reduce=reduce, reduction=reduction, label_smoothing=label_smoothing)
        self.reduction = reduction

    def forward(self, input, target):
        return F.cross_entropy(input, target, **self.options)

    def extra_repr(self):
        return f"reduction={self.reduction!r}"
