"""Floor 6: the CIFAR-10 ResNets of the paper's section 4.2 (depth 6n + 2), and their plain twins.

The whole architecture is one short table (the paper's, for 32x32 input):

    output map   layers                                   filters
    32x32        conv 3x3 (conv1, bn1, ReLU)              16
    32x32        n basic blocks (layer1)  = 2n conv 3x3    16
    16x16        n basic blocks (layer2)  = 2n conv 3x3    32    first conv has stride 2
    8x8          n basic blocks (layer3)  = 2n conv 3x3    64    first conv has stride 2
    1x1          global average pool, 10-way fully connected (fc)

1 + 6n + 1 = 6n + 2 weighted layers: n = 3, 5, 7, 9, 18, 200 give ResNet-20, 32, 44, 56, 110,
1202. The shortcut where the map halves is option "A" by default (zero-padding, no parameters,
the paper's CIFAR choice); "B" puts a 1x1 projection there (``layer2.0.shortcut.0/1``); "C" on
every block; "none" removes every shortcut: the plain net of the paper's Fig. 6.

Parameter names are those of the widely used PyTorch CIFAR ResNets (``conv1``, ``bn1``,
``layer1.0.conv1``, ..., ``fc``); a file whose classifier is called ``linear`` loads too.

    model = resnet20()                      # 269,722 parameters, about 41M multiply-adds / image
    model = cifar_resnet(56, shortcut="B")
    model = plain56()                       # the same stack without shortcuts
"""
from tinyres import functional as F
from tinyres.models.blocks import (BasicBlock, ResNetBase, check_images, check_shortcut_option,
                                   he_init_, make_stage)
from tinyres.nn import AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Linear

# (filters, stride of the stage's first block): the three stages of section 4.2
STAGES = ((16, 1), (32, 2), (64, 2))
PAPER_DEPTHS = (20, 32, 44, 56, 110, 1202)


def blocks_per_stage(depth):
    """n for depth = 6n + 2, or a ValueError that lists the valid depths."""
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"CIFAR ResNet: unsupported depth {depth!r}; the depth must be 6n + 2 "
                         f"for n >= 1: 8, 14, 20, 26, 32, ... (the paper's: "
                         f"{', '.join(map(str, PAPER_DEPTHS))})")
    return (depth - 2) // 6


class CifarResNet(ResNetBase):
    """ResNet-(6n+2) for 32x32 images: x (N, 3, 32, 32) -> logits (N, num_classes).

    `shortcut` is "A", "B", "C" or "none" (the plain net; see blocks.py). `input_size` is the
    image size the model accepts (32, the paper's); None accepts any size (the network ends in
    global average pooling, so it runs on any map of at least 1x1).
    """

    # the PyTorch CIFAR ResNets call the classifier "linear"; tinyres (and torchvision) "fc"
    _state_dict_aliases = {"linear.": "fc."}

    def __init__(self, depth, num_classes=10, shortcut="A", input_size=32):
        super().__init__()
        n = blocks_per_stage(depth)
        check_shortcut_option(shortcut, f"CIFAR ResNet-{depth}")
        self.depth, self.num_classes = depth, num_classes
        self.shortcut, self.input_size = shortcut, input_size

        self.conv1 = Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = BatchNorm2d(16)
        in_channels = 16
        for index, (channels, stride) in enumerate(STAGES, start=1):
            setattr(self, f"layer{index}", make_stage(BasicBlock, n, in_channels, channels, stride,
                                                      shortcut=shortcut))
            in_channels = channels
        self.avgpool = AdaptiveAvgPool2d(1)
        self.fc = Linear(in_channels, num_classes)
        he_init_(self)

    def forward(self, x):
        check_images(self.conv1, x, 3, self.input_size)
        x = F.relu(self.bn1(self.conv1(x)))          # (N, 16, 32, 32)
        x = self.layer1(x)                           # (N, 16, 32, 32)
        x = self.layer2(x)                           # (N, 32, 16, 16)
        x = self.layer3(x)                           # (N, 64, 8, 8)
        x = self.avgpool(x).flatten(1)               # (N, 64)
        return self.fc(x)                            # (N, num_classes)


def cifar_resnet(depth, num_classes=10, shortcut="A", input_size=32):
    """ResNet-`depth` for CIFAR-10 (depth = 6n + 2) with shortcut option "A", "B" or "C"."""
    return CifarResNet(depth, num_classes, shortcut, input_size)


def cifar_plain(depth, num_classes=10, input_size=32):
    """The plain twin of ResNet-`depth`: the same layers, no shortcuts."""
    return CifarResNet(depth, num_classes, "none", input_size)


# ----------------------------------------------------------------------------------------------
# The networks by name, as in torchvision: resnet20(), plain56(), ... (the model registry's names)
# ----------------------------------------------------------------------------------------------
# The paper's depths with their parameters (Table 6, option A; n = (depth - 2) / 6). A plain net
# is the same stack without shortcuts (the paper's Fig. 6 trains plain-56 worse than plain-20).
# Depths 8 and 14 (n = 1, 2) are not in the paper: the labs train them on a small machine.
def resnet8(num_classes=10, shortcut="A", input_size=32):
    """ResNet-8 (n = 1): 0.08M parameters with option A (not in the paper)."""
    return cifar_resnet(8, num_classes, shortcut, input_size)


def resnet14(num_classes=10, shortcut="A", input_size=32):
    """ResNet-14 (n = 2): 0.17M parameters with option A (not in the paper)."""
    return cifar_resnet(14, num_classes, shortcut, input_size)


def resnet20(num_classes=10, shortcut="A", input_size=32):
    """ResNet-20 (n = 3): 0.27M parameters with option A (the paper's Table 6)."""
    return cifar_resnet(20, num_classes, shortcut, input_size)


def resnet32(num_classes=10, shortcut="A", input_size=32):
    """ResNet-32 (n = 5): 0.46M parameters with option A (the paper's Table 6)."""
    return cifar_resnet(32, num_classes, shortcut, input_size)


def resnet44(num_classes=10, shortcut="A", input_size=32):
    """ResNet-44 (n = 7): 0.66M parameters with option A (the paper's Table 6)."""
    return cifar_resnet(44, num_classes, shortcut, input_size)


def resnet56(num_classes=10, shortcut="A", input_size=32):
    """ResNet-56 (n = 9): 0.85M parameters with option A (the paper's Table 6)."""
    return cifar_resnet(56, num_classes, shortcut, input_size)


def resnet110(num_classes=10, shortcut="A", input_size=32):
    """ResNet-110 (n = 18): 1.7M parameters with option A (the paper's Table 6)."""
    return cifar_resnet(110, num_classes, shortcut, input_size)


def resnet1202(num_classes=10, shortcut="A", input_size=32):
    """ResNet-1202 (n = 200): 19.4M parameters with option A (the paper's Table 6)."""
    return cifar_resnet(1202, num_classes, shortcut, input_size)


def plain8(num_classes=10, input_size=32):
    """Plain-8: ResNet-8's layers without shortcuts."""
    return cifar_plain(8, num_classes, input_size)


def plain14(num_classes=10, input_size=32):
    """Plain-14: ResNet-14's layers without shortcuts."""
    return cifar_plain(14, num_classes, input_size)


def plain20(num_classes=10, input_size=32):
    """Plain-20: ResNet-20's layers without shortcuts."""
    return cifar_plain(20, num_classes, input_size)


def plain32(num_classes=10, input_size=32):
    """Plain-32: ResNet-32's layers without shortcuts."""
    return cifar_plain(32, num_classes, input_size)


def plain44(num_classes=10, input_size=32):
    """Plain-44: ResNet-44's layers without shortcuts."""
    return cifar_plain(44, num_classes, input_size)


def plain56(num_classes=10, input_size=32):
    """Plain-56: ResNet-56's layers without shortcuts."""
    return cifar_plain(56, num_classes, input_size)


def plain110(num_classes=10, input_size=32):
    """Plain-110: ResNet-110's layers without shortcuts."""
    return cifar_plain(110, num_classes, input_size)


# name -> constructor, for the registry in tinyres/models/__init__.py: get_model("resnet56",
# shortcut="B") calls resnet56(shortcut="B")
MODELS = {f.__name__: f for f in (resnet8, resnet14, resnet20, resnet32, resnet44, resnet56,
                                  resnet110, resnet1202, plain8, plain14, plain20, plain32,
                                  plain44, plain56, plain110)}
