"""Floor 5: nn — layers as objects that own their parameters.

    from tinyres import nn
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    logits = model(images)                      # (N, 10)
    model.state_dict()                          # {"0.weight": array, "1.running_mean": ...}

Read `module.py` first (Module, Parameter, state dicts), then one layer file per concept:
conv, norm, pooling, activation, linear, dropout, container, loss; `init.py` holds the
initialisers, `functional.py` is the functional floor under PyTorch's name.
"""
from tinyres.nn import functional, init
from tinyres.nn.module import (HookHandle, LoadResult, Module, Parameter, StateDictError,
                               new_parameter)
from tinyres.nn.conv import Conv2d
from tinyres.nn.norm import BatchNorm1d, BatchNorm2d, LocalResponseNorm
from tinyres.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from tinyres.nn.activation import ReLU
from tinyres.nn.linear import Flatten, Linear
from tinyres.nn.dropout import Dropout
from tinyres.nn.container import Identity, Sequential
from tinyres.nn.loss import CrossEntropyLoss

__all__ = [
    "functional", "init", "Module", "Parameter", "StateDictError", "LoadResult", "HookHandle",
    "new_parameter",
    "Conv2d", "BatchNorm1d", "BatchNorm2d", "LocalResponseNorm",
    "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "ReLU", "Linear", "Flatten", "Dropout",
    "Sequential", "Identity", "CrossEntropyLoss",
]
