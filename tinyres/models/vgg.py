"""Floor 6: VGG (Simonyan & Zisserman 2014) — the plain stack the ResNet paper starts from.

VGG's idea is one rule applied again and again: 3x3 convolutions (padding 1, so the size stays),
each followed by a ReLU, in five stages; a 2x2 max pool (stride 2) halves the image after each
stage, and the stage width starts at 64 and doubles after every pool until it reaches 512.
Two 3x3 convs see a 5x5 window and three see 7x7, with fewer weights and more ReLUs than one
big filter. The paper's Table 1 lists six configurations, A to E, by the convs of each stage:

    A  (11 weight layers)  conv3-64 | 128 | 256 x2 | 512 x2 | 512 x2          vgg11
    A-LRN                  A with local response normalisation after the first conv
    B  (13)                64 x2 | 128 x2 | 256 x2 | 512 x2 | 512 x2           vgg13
    C  (16)                B + one conv1 (1x1) at the end of stages 3, 4, 5   vgg16_c
    D  (16)                64 x2 | 128 x2 | 256 x3 | 512 x3 | 512 x3           vgg16
    E  (19)                64 x2 | 128 x2 | 256 x4 | 512 x4 | 512 x4           vgg19

"weight layers" counts the convs and the three fully connected layers of the head,
4096 -> 4096 -> classes (with ReLU and dropout 0.5 between them). For a 224x224 image the five
pools leave a 7x7x512 map, so the first head layer alone holds 25088 x 4096 = 103 M of VGG's
~140 M parameters, while the convs do nearly all of its ~15-20 G multiply-adds.

Below, CONFIGS is that table, written as the paper writes it; `make_features` turns one list
into layers; `VGG` adds the head; the builders at the end give the networks
torchvision's names (``vgg16()``, ``vgg16_bn()``). The names of parameters are torchvision's too
(``features.0.weight``, ``classifier.6.bias``), so a torchvision state dict, exported to numpy
arrays, loads unchanged.

CIFAR-10 (``cifar_vgg``): the same conv stacks on a 32x32 image, where the five pools take
32 -> 16 -> 8 -> 4 -> 2 -> 1, so the map is 1x1x512 and the head is one Linear(512, classes).
Batch norm is on by default there: without it (or a careful start) a VGG this deep trains badly
from scratch; the paper initialised its deeper nets partly from the trained A.
"""
from tinyres import nn
from tinyres.models.blocks import check_images
from tinyres.nn import init

# ----------------------------------------------------------------------------------------------
# Table 1 of the paper. An int n is "conv3-n" (a 3x3 conv with n filters, padding 1, then ReLU);
# "conv1-n" is C's 1x1 conv with n filters; "M" is a 2x2 max pool, stride 2; "LRN" is local
# response normalisation.
# ----------------------------------------------------------------------------------------------
CONFIGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "A-LRN": [64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "C": [64, 64, "M", 128, 128, "M", 256, 256, "conv1-256", "M",
          512, 512, "conv1-512", "M", 512, 512, "conv1-512", "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}

# The CIFAR-10 variants are named by depth (weight layers), as A, B, D, E are.
DEPTHS = {11: "A", 13: "B", 16: "D", 19: "E"}

# AlexNet's LRN (Krizhevsky et al. 2012: n = 5, alpha = 1e-4, beta = 0.75, k = 2), which A-LRN
# uses. AlexNet multiplies the sum of squares by alpha; PyTorch's (and tinyres's) LRN multiplies
# it by alpha / size (as Caffe's LRN does), so the same layer is alpha = 1e-4 * 5 = 5e-4 here.
LRN_ARGS = {"size": 5, "alpha": 5e-4, "beta": 0.75, "k": 2.0}


def _conv_entry(entry):
    """(kernel, filters) of a conv entry: 64 -> (3, 64), "conv1-256" -> (1, 256)."""
    if isinstance(entry, int) and not isinstance(entry, bool) and entry > 0:
        return 3, entry
    if isinstance(entry, str) and entry.startswith("conv"):
        kernel, _, filters = entry[len("conv"):].partition("-")
        if kernel.isdigit() and filters.isdigit() and int(kernel) % 2 == 1 and int(filters) > 0:
            return int(kernel), int(filters)
    raise ValueError(f"VGG configuration: unknown entry {entry!r}; expected a positive int n "
                     f"(conv3-n), 'convK-n' with an odd K (e.g. 'conv1-256'), 'M' (max pool) or "
                     f"'LRN'")


def make_features(config, batch_norm=False, in_channels=3):
    """The convolutional part of a VGG from one configuration list, as an nn.Sequential.

    Each conv is followed by ReLU (and, with batch_norm, by BatchNorm2d before the ReLU, as
    torchvision's *_bn models). Convs keep their bias also with batch norm, as torchvision does
    (that is what its parameter counts and weight files contain). Children are numbered in
    order: for A, features.0 is the first conv, features.1 its ReLU, features.2 the first pool.
    """
    if isinstance(config, str):
        config = CONFIGS[_config_name(config)]
    layers = []
    channels = in_channels
    for entry in config:
        if entry == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        elif entry == "LRN":
            layers.append(nn.LocalResponseNorm(**LRN_ARGS))
        else:
            kernel, filters = _conv_entry(entry)
            layers.append(nn.Conv2d(channels, filters, kernel, padding=kernel // 2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(filters))
            layers.append(nn.ReLU(inplace=True))
            channels = filters
    return nn.Sequential(*layers)


def _config_name(name):
    if name not in CONFIGS:
        raise ValueError(f"VGG: unknown configuration {name!r}; the paper's Table 1 has "
                         f"{', '.join(CONFIGS)}")
    return name


def _out_channels(features):
    """The number of channels the last conv of a features stack produces."""
    convs = [m for m in features if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("VGG: the configuration has no conv layer")
    return convs[-1].out_channels


# ----------------------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------------------
class VGG(nn.Module):
    """features (convs and pools) -> avgpool (optional) -> flatten -> classifier.

    `VGG(make_features("D"), imagenet_head(1000), nn.AdaptiveAvgPool2d((7, 7)))` is
    torchvision's vgg16; the CIFAR variants have no avgpool and a single Linear as classifier.
    The weights are initialised by `init_weights_`. `input_size` (an int) makes forward accept
    only input_size x input_size images.
    """

    def __init__(self, features, classifier, avgpool=None, input_size=None):
        super().__init__()
        self.features = features
        self.avgpool = avgpool          # a Module is registered; None stays a plain attribute
        self.classifier = classifier
        self.input_size = input_size    # None: any image size
        init_weights_(self)

    def forward(self, x):
        first = self.features[0]
        check_images(first, x, getattr(first, "in_channels", None), self.input_size)
        x = self.features(x)                                            # (N, 512, h, w)
        if self.avgpool is not None:
            x = self.avgpool(x)                                         # (N, 512, 7, 7)
        x = x.flatten(1)                                                # (N, 512 * 7 * 7)
        return self.classifier(x)                                       # (N, classes)


def imagenet_head(num_classes=1000, in_features=512 * 7 * 7, dropout=0.5, hidden=4096):
    """The paper's three fully connected layers: in -> 4096 -> 4096 -> classes, each of the first
    two followed by ReLU and dropout (torchvision's order, so classifier.0, .3 and .6 are the
    Linear layers). `hidden` (4096 in the paper) can shrink it for experiments and tests."""
    return nn.Sequential(
        nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Dropout(p=dropout),
        nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(p=dropout),
        nn.Linear(hidden, num_classes),
    )


def init_weights_(model):
    """torchvision's VGG initialisation, in place: He normal with fan_out for convs (std
    sqrt(2 / (out_channels * KH * KW))), N(0, 0.01^2) for linear weights, zero biases, batch
    norm scale 1 and shift 0. (The paper drew A's weights from a normal of variance 10^-2 and
    started the deeper nets partly from A's trained layers; He et al.'s init lets them start from
    scratch.)"""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            init.normal_(module.weight, 0.0, 0.01)
            if module.bias is not None:
                init.zeros_(module.bias)
    return model


# ----------------------------------------------------------------------------------------------
# The builders: one for ImageNet, one for CIFAR-10, and the names of the model registry
# ----------------------------------------------------------------------------------------------
def imagenet_vgg(config, batch_norm=False, num_classes=1000, dropout=0.5):
    """An ImageNet VGG (224x224 input) of configuration "A", "A-LRN", "B", "C", "D" or "E".

    Other input sizes work as in torchvision: the adaptive pool makes the last map 7x7 (a 32x32
    image leaves a 1x1 map, copied to 7x7; a 64x64 one a 2x2 map, pooled by uneven, overlapping
    windows); below 32x32 the map vanishes at a max pool, whose error names it (e.g.
    ``MaxPool2d features.20``).
    """
    with init.skip_default_weight_init():     # VGG() draws every weight (init_weights_)
        features = make_features(_config_name(config), batch_norm)
        head = imagenet_head(num_classes, _out_channels(features) * 7 * 7, dropout)
    return VGG(features, head, avgpool=nn.AdaptiveAvgPool2d((7, 7)))


def cifar_vgg(depth, batch_norm=True, num_classes=10, width=64, input_size=32):
    """A CIFAR-10 VGG: the conv stack of VGG-`depth` (11, 13, 16 or 19), whose five pools take
    32x32 to 1x1, then Linear(512, num_classes).

    `width` is the first stage's width (64 in the paper); the others scale with it, keeping the
    doubling rule (width=8 gives 8, 16, 32, 64, 64: a small net for quick experiments and
    tests). `input_size` is the image size the model accepts (None: any size whose last map is
    1x1, i.e. 32 to 63).
    """
    if depth not in DEPTHS:
        raise ValueError(f"cifar_vgg: unknown depth {depth!r}; choose one of "
                         f"{', '.join(str(d) for d in DEPTHS)}")
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ValueError(f"cifar_vgg: width must be a positive int, got {width!r}")
    config = [entry if entry == "M" else entry * width // 64 for entry in CONFIGS[DEPTHS[depth]]]
    with init.skip_default_weight_init():     # VGG() draws every weight (init_weights_)
        features = make_features(config, batch_norm)
        classifier = nn.Linear(_out_channels(features), num_classes)
    return VGG(features, classifier, input_size=input_size)


# ----------------------------------------------------------------------------------------------
# The networks by name (the model registry's names): torchvision's for the paper's ImageNet
# networks, vgg16(), vgg16_bn(), ...; cifar_vgg11() ... cifar_vgg19() for CIFAR-10. Parameters
# with 1000 classes are torchvision's counts (the paper's Table 2 rounds them to 133, 133, 134,
# 138, 144 M); multiply-adds at 224x224.
# ----------------------------------------------------------------------------------------------
def vgg11(num_classes=1000, dropout=0.5):
    """VGG-11, configuration "A": 132,863,336 parameters, 7.6G multiply-adds."""
    return imagenet_vgg("A", False, num_classes, dropout)


def vgg11_lrn(num_classes=1000, dropout=0.5):
    """VGG-11 with LRN, configuration "A-LRN": 132,863,336 parameters, 7.6G multiply-adds (no
    better than A: the paper's Table 3)."""
    return imagenet_vgg("A-LRN", False, num_classes, dropout)


def vgg13(num_classes=1000, dropout=0.5):
    """VGG-13, configuration "B": 133,047,848 parameters, 11.3G multiply-adds."""
    return imagenet_vgg("B", False, num_classes, dropout)


def vgg16_c(num_classes=1000, dropout=0.5):
    """VGG-16, configuration "C" (B + three 1x1 convs): 133,638,952 parameters, 11.8G
    multiply-adds."""
    return imagenet_vgg("C", False, num_classes, dropout)


def vgg16(num_classes=1000, dropout=0.5):
    """VGG-16, configuration "D": 138,357,544 parameters, 15.5G multiply-adds."""
    return imagenet_vgg("D", False, num_classes, dropout)


def vgg19(num_classes=1000, dropout=0.5):
    """VGG-19, configuration "E": 143,667,240 parameters, 19.6G multiply-adds."""
    return imagenet_vgg("E", False, num_classes, dropout)


def vgg11_bn(num_classes=1000, dropout=0.5):
    """VGG-11, configuration "A" with batch norm after every conv: 132,868,840 parameters."""
    return imagenet_vgg("A", True, num_classes, dropout)


def vgg13_bn(num_classes=1000, dropout=0.5):
    """VGG-13, configuration "B" with batch norm after every conv: 133,053,736 parameters."""
    return imagenet_vgg("B", True, num_classes, dropout)


def vgg16_bn(num_classes=1000, dropout=0.5):
    """VGG-16, configuration "D" with batch norm after every conv: 138,365,992 parameters."""
    return imagenet_vgg("D", True, num_classes, dropout)


def vgg19_bn(num_classes=1000, dropout=0.5):
    """VGG-19, configuration "E" with batch norm after every conv: 143,678,248 parameters."""
    return imagenet_vgg("E", True, num_classes, dropout)


def cifar_vgg11(batch_norm=True, num_classes=10, width=64, input_size=32):
    """CIFAR-10 VGG-11: 9,231,114 parameters with batch norm (9,225,610 without), 10 classes."""
    return cifar_vgg(11, batch_norm, num_classes, width, input_size)


def cifar_vgg13(batch_norm=True, num_classes=10, width=64, input_size=32):
    """CIFAR-10 VGG-13: 9,416,010 parameters with batch norm (9,410,122 without), 10 classes."""
    return cifar_vgg(13, batch_norm, num_classes, width, input_size)


def cifar_vgg16(batch_norm=True, num_classes=10, width=64, input_size=32):
    """CIFAR-10 VGG-16: 14,728,266 parameters with batch norm (14,719,818 without), 10 classes."""
    return cifar_vgg(16, batch_norm, num_classes, width, input_size)


def cifar_vgg19(batch_norm=True, num_classes=10, width=64, input_size=32):
    """CIFAR-10 VGG-19: 20,040,522 parameters with batch norm (20,029,514 without), 10 classes."""
    return cifar_vgg(19, batch_norm, num_classes, width, input_size)


# name -> constructor, for the registry in tinyres/models/__init__.py: get_model("vgg16",
# num_classes=10) calls vgg16(num_classes=10)
MODELS = {f.__name__: f for f in (vgg11, vgg11_lrn, vgg13, vgg16_c, vgg16, vgg19, vgg11_bn,
                                  vgg13_bn, vgg16_bn, vgg19_bn, cifar_vgg11, cifar_vgg13,
                                  cifar_vgg16, cifar_vgg19)}

# VGG with SGD at the ResNet recipe's lr 0.1 blows up within the first steps, in PyTorch as in
# tinyres (docs/vgg.md); 0.02 trains. `tinyres train` starts VGG models from this rate.
TRAINING_LR = 0.02
