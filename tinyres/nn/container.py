"""Floor 5: Sequential (layers run one after another) and Identity (no layer at all).

A Sequential names its children "0", "1", "2", ..., so its parameters are called
``features.0.weight``, ``layer1.1.conv2.weight``: the names torchvision's models use, which is
what lets their weight files load. Identity passes its input through; it stands where a model
has a slot but nothing to do (e.g. a residual shortcut whose shapes already match).
"""
from tinyres.nn.module import Module


class Sequential(Module):
    """``Sequential(conv, bn, relu)(x)`` is ``relu(bn(conv(x)))``. Indexable (``seq[0]``,
    ``seq[-1]``, ``seq[1:]``), iterable, with ``len``. A single dict argument names the children."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], dict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for index, module in enumerate(modules):
                self.add_module(str(index), module)

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        items = list(self._modules.items())
        if isinstance(index, slice):
            # A view of part of the model: the children keep their names and their paths in
            # the model (add_module would re-path them as if they had moved).
            part = Sequential()
            part._modules.update(items[index])
            return part
        if not -len(items) <= index < len(items):
            raise IndexError(f"{self.label}: index {index} is out of range for a Sequential of "
                             f"{len(items)} modules")
        return items[index][1]

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self


class Identity(Module):
    """y = x. Accepts (and ignores) constructor arguments, as PyTorch's does."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x
