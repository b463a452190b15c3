"""Floor 6: the ImageNet ResNets of the paper's Table 1 (18, 34, 50, 101, 152 layers).

Every one is the same stem, four stages and the same head; only the block and the number of
blocks per stage change (the paper's Table 1, as a dict below):

    output (224 in)  layers
    112x112          conv1  7x7, 64, stride 2  (+ bn1, ReLU)
    56x56            maxpool 3x3, stride 2;  then layer1: blocks with 64 channels
    28x28            layer2: blocks with 128 channels, the first with stride 2
    14x14            layer3: blocks with 256 channels, the first with stride 2
    7x7              layer4: blocks with 512 channels, the first with stride 2
    1x1              global average pool (avgpool), fully connected (fc) to num_classes

ResNet-18/34 use BasicBlocks (two 3x3 convs); ResNet-50/101/152 Bottlenecks (1x1, 3x3, 1x1
with 4x as many output channels). The average pool is adaptive, so any input size runs: with the
paddings of these layers a feature map never shrinks below 1x1 (a 32x32 image reaches layer4 as
a 1x1 map).

Names follow torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0``,
``fc``), so a torchvision state dict exported to .npz loads unchanged. Options:

    shortcut="B"          torchvision's: 1x1 projections where the shape changes (the default)
    shortcut="A"          zero-padding, no parameters;  "C": a projection on every block
    shortcut="none"       the plain network (plain18, plain34: the paper's Table 2 baselines)
    stride_in_1x1=True    the paper's bottleneck (stride on the first 1x1 conv) instead of
                          torchvision's v1.5 (stride on the 3x3); same parameters, fewer
                          multiply-adds.
"""
from tinyres import functional as F
from tinyres.models.blocks import (BasicBlock, Bottleneck, ResNetBase, check_images,
                                   check_shortcut_option, he_init_, make_stage)
from tinyres.nn import AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Linear, MaxPool2d

# depth -> (block, blocks in each of the four stages): the paper's Table 1
TABLE_1 = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}
STAGE_CHANNELS = (64, 128, 256, 512)    # the 3x3 convs' channels in layer1..layer4


class ImageNetResNet(ResNetBase):
    """ResNet-`depth` of Table 1: x (N, 3, H, W) -> logits (N, num_classes), any H, W >= 1."""

    def __init__(self, depth, num_classes=1000, shortcut="B", stride_in_1x1=False):
        super().__init__()
        if depth not in TABLE_1:
            raise ValueError(f"ImageNet ResNet: unsupported depth {depth!r}; Table 1 has depths "
                             f"{', '.join(map(str, TABLE_1))}")
        check_shortcut_option(shortcut, f"ImageNet ResNet-{depth}")
        block, stage_sizes = TABLE_1[depth]
        if stride_in_1x1 and block is not Bottleneck:
            raise ValueError(f"ImageNet ResNet-{depth}: stride_in_1x1 chooses where a bottleneck "
                             f"block strides; ResNet-{depth} has basic blocks (depths with "
                             f"bottlenecks: 50, 101, 152)")
        self.depth, self.num_classes = depth, num_classes
        self.shortcut, self.stride_in_1x1 = shortcut, stride_in_1x1
        options = {"shortcut": shortcut, "shortcut_name": "downsample"}   # torchvision's name
        if block is Bottleneck:
            options["stride_in_1x1"] = stride_in_1x1

        self.conv1 = Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = BatchNorm2d(64)
        self.maxpool = MaxPool2d(3, stride=2, padding=1)
        in_channels = 64
        for index, (channels, count) in enumerate(zip(STAGE_CHANNELS, stage_sizes), start=1):
            stride = 1 if index == 1 else 2          # layer1 follows the max pool: no stride
            setattr(self, f"layer{index}", make_stage(block, count, in_channels, channels, stride,
                                                      **options))
            in_channels = channels * block.expansion
        self.avgpool = AdaptiveAvgPool2d(1)
        self.fc = Linear(in_channels, num_classes)
        he_init_(self)

    def forward(self, x):
        check_images(self.conv1, x, 3)
        x = F.relu(self.bn1(self.conv1(x)))          # (N, 64, H/2, W/2)      112x112
        x = self.maxpool(x)                          # (N, 64, H/4, W/4)      56x56
        x = self.layer1(x)                           # (N, 64 or 256, H/4, W/4)
        x = self.layer2(x)                           # (N, 128 or 512, H/8, W/8)
        x = self.layer3(x)                           # (N, 256 or 1024, H/16, W/16)
        x = self.layer4(x)                           # (N, 512 or 2048, H/32, W/32)  7x7
        x = self.avgpool(x).flatten(1)               # (N, 512 or 2048)
        return self.fc(x)                            # (N, num_classes)

    def extra_repr(self):
        paper = ", stride_in_1x1=True (the paper's bottleneck)" if self.stride_in_1x1 else ""
        return super().extra_repr() + paper


def imagenet_resnet(depth, num_classes=1000, shortcut="B", stride_in_1x1=False):
    """ResNet-`depth` of Table 1 (18, 34, 50, 101, 152); see the module docstring for options."""
    return ImageNetResNet(depth, num_classes, shortcut, stride_in_1x1)


def resnet18(num_classes=1000, shortcut="B"):
    """ResNet-18: basic blocks (2, 2, 2, 2); 11.7M parameters, 1.8G multiply-adds at 224x224."""
    return ImageNetResNet(18, num_classes, shortcut)


def resnet34(num_classes=1000, shortcut="B"):
    """ResNet-34: basic blocks (3, 4, 6, 3); 21.8M parameters, 3.6G multiply-adds."""
    return ImageNetResNet(34, num_classes, shortcut)


def resnet50(num_classes=1000, shortcut="B", stride_in_1x1=False):
    """ResNet-50: bottlenecks (3, 4, 6, 3); 25.6M parameters, 4.1G multiply-adds (v1.5)."""
    return ImageNetResNet(50, num_classes, shortcut, stride_in_1x1)


def resnet101(num_classes=1000, shortcut="B", stride_in_1x1=False):
    """ResNet-101: bottlenecks (3, 4, 23, 3); 44.5M parameters, 7.8G multiply-adds (v1.5)."""
    return ImageNetResNet(101, num_classes, shortcut, stride_in_1x1)


def resnet152(num_classes=1000, shortcut="B", stride_in_1x1=False):
    """ResNet-152: bottlenecks (3, 8, 36, 3); 60.2M parameters, 11.5G multiply-adds (v1.5)."""
    return ImageNetResNet(152, num_classes, shortcut, stride_in_1x1)


def plain18(num_classes=1000):
    """Plain-18 (the paper's Table 2 baseline): ResNet-18's layers without shortcuts."""
    return ImageNetResNet(18, num_classes, "none")


def plain34(num_classes=1000):
    """Plain-34: ResNet-34's layers without shortcuts (it trains worse than plain-18)."""
    return ImageNetResNet(34, num_classes, "none")


# name -> constructor, for the registry in tinyres/models/__init__.py
MODELS = {f.__name__: f for f in (resnet18, resnet34, resnet50, resnet101, resnet152,
                                  plain18, plain34)}
