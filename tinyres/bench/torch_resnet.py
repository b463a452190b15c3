"""The CIFAR ResNet of the paper's section 4.2 in PyTorch: the one PyTorch twin of tinyres's
cifar_resnet, in the layout of the widely used PyTorch CIFAR ResNets (option-A shortcut that
slices ``x[:, :, ::2, ::2]`` and zero-pads the new channels half before and half after, a
classifier called ``linear``, which tinyres's models load as ``fc``).

`tinyres bench` races it, tools/export_pytorch_resnet.py trains and exports it (the pretrained
weights tests/test_pretrained.py checks), and tests/test_nn.py holds tinyres's state dicts,
outputs and gradients to it. Importing this module needs torch (it is never imported otherwise).
"""
import torch.nn.functional as F
from torch import nn


class ZeroPadShortcut(nn.Module):
    """Option A: every second pixel, and the new channels as zeros, half before and half after."""

    def __init__(self, extra_channels):
        super().__init__()
        self.before = extra_channels // 2
        self.after = extra_channels - self.before

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.before, self.after))


class CifarBasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride=1, option="A"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()                      # the identity
        if option == "none":                                 # the plain twin: no shortcut
            self.shortcut = None
        elif stride != 1 or in_planes != planes:
            if option == "A":
                self.shortcut = ZeroPadShortcut(planes - in_planes)
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                    nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out if self.shortcut is None else out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) of the paper's section 4.2, classifier named ``linear``; option "A" or "B"
    shortcuts where the shape changes, or "none" for the plain twin."""

    def __init__(self, depth=20, num_classes=10, option="A"):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        in_planes = 16
        for index, (planes, stride) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
            blocks = []
            for b in range(n):
                blocks.append(CifarBasicBlock(in_planes, planes, stride if b == 0 else 1, option))
                in_planes = planes
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():            # He init of conv and linear weights
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.shape[3]).flatten(1)
        return self.linear(out)
