"""Floor 6: the building blocks of a ResNet — the residual block and its shortcut.

A plain network stacks layers and hopes each learns the mapping H(x) it needs. A residual block
(He et al. 2015, section 3) lets its layers learn only the *residual* F(x) = H(x) - x and adds the
input back through a shortcut:

    y = relu( F(x) + x )                    identity shortcut (eq. 1): no parameters
    y = relu( F(x) + W_s x )                projection shortcut (eq. 2), where shapes change

F is two 3x3 convs in a BasicBlock, or 1x1 - 3x3 - 1x1 convs in a Bottleneck; batch norm
follows every conv, a ReLU follows every BN except the last, and the second ReLU comes *after*
the addition. Because the shortcut adds x unchanged, the gradient of the loss L reaching x is

    dL/dx = dL/dy' (dF/dx + I)              (y' = F(x) + x, before the final ReLU)

so even when dF/dx is tiny the gradient still arrives through the identity term I. That is
the whole trick; docs/residual.md works it out.

Where a block changes the shape (stride 2, more channels), x and F(x) no longer add up. The paper
has three answers, its shortcut "options":

    "A"     identity; where the shape changes, take every second pixel (stride s) and pad the new
            channels with zeros: half before the existing channels, half after, as the widely
            used PyTorch CIFAR ResNets do. No parameters. The paper's choice for CIFAR-10.
    "B"     identity; where the shape changes, a projection: 1x1 conv with stride s, then BN.
            torchvision's choice, and this module's default.
    "C"     a projection on every block, even where the shapes match.
    "none"  no shortcut at all: the *plain* network the paper compares against.

The same BasicBlock and Bottleneck class serve all four: the option only picks which module
stands in the shortcut slot (`make_shortcut`). Read `ResidualBlock.forward` for the addition.

The shortcut slot is called ``shortcut`` (the CIFAR layout: ``layer2.0.shortcut.0.weight``) or,
for torchvision's ImageNet names, ``downsample`` (``layer2.0.downsample.0.weight``).

At the end, what the CIFAR and ImageNet networks share: `make_stage` (a stage of blocks),
`ResNetBase`, the paper's initialisation `he_init_`, and `check_images` (also VGG's).
"""
import tinyres.functional as F
from tinyres import ops
from tinyres.nn import BatchNorm2d, Conv2d, Identity, Linear, Module, Sequential, init

SHORTCUT_OPTIONS = {
    "A": "identity; zero-padded channels and stride-s subsampling where the shape changes",
    "B": "identity; 1x1 conv + BN projection where the shape changes",
    "C": "1x1 conv + BN projection on every block",
    "none": "no shortcut (the plain network)",
}


def check_shortcut_option(option, who="shortcut"):
    """Raise a ValueError listing the valid options unless `option` is one of them."""
    if option not in SHORTCUT_OPTIONS:
        valid = "; ".join(f"{name!r}: {meaning}" for name, meaning in SHORTCUT_OPTIONS.items())
        raise ValueError(f"{who}: unknown shortcut option {option!r}; valid options are {valid}")
    return option


class ZeroPadShortcut(Module):
    """Option A: the identity, made to fit a block that halves the map and adds channels.

    x (N, C_in, H, W) -> (N, C_out, ceil(H/s), ceil(W/s)):

        x[:, :, ::s, ::s]             every s-th row and column (the output grid of a stride-s
                                      3x3 conv with padding 1), no arithmetic
        pad channels with zeros       (C_out - C_in) // 2 zero channels before, the rest after

    For CIFAR's 16 -> 32 channels that is 8 zero channels, the 16 real ones, 8 zero channels:
    PyTorch's ``F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))``. Its gradient
    (ops.pad and indexing know their own backward) passes the real channels' gradient back to
    the sampled pixels and drops the rest. No parameters.
    """

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"ZeroPadShortcut: option A can only add channels, got "
                             f"{in_channels} -> {out_channels}; use a projection (option B)")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.pad_before = (out_channels - in_channels) // 2
        self.pad_after = out_channels - in_channels - self.pad_before

    def forward(self, x):
        # BEGIN SOLUTION A4 zero_pad_shortcut
        s = self.stride
        if s > 1:
            x = x[:, :, ::s, ::s]                                    # (N, C_in, H/s, W/s)
        if self.pad_before or self.pad_after:
            x = ops.pad(x, ((0, 0), (self.pad_before, self.pad_after), (0, 0), (0, 0)))
        return x                                                     # (N, C_out, H/s, W/s)
        # END SOLUTION

    def extra_repr(self):
        return (f"{self.in_channels} -> {self.out_channels}, stride={self.stride}, zero channels "
                f"before={self.pad_before}, after={self.pad_after}")


def projection(in_channels, out_channels, stride):
    """Options B and C: W_s x as a 1x1 conv (stride s, no bias) followed by batch norm."""
    return Sequential(Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                      BatchNorm2d(out_channels))


def make_shortcut(option, in_channels, out_channels, stride):
    """The module in a block's shortcut slot for `option` ("A", "B", "C" or "none").

    Returns Identity where the shapes match (options A and B), ZeroPadShortcut (A) or a
    projection (B) where they do not, a projection always (C), and None for "none" (plain).
    """
    check_shortcut_option(option)
    if option == "none":
        return None
    same_shape = stride == 1 and in_channels == out_channels
    if option == "C" or (option == "B" and not same_shape):
        return projection(in_channels, out_channels, stride)
    if same_shape:
        return Identity()
    return ZeroPadShortcut(in_channels, out_channels, stride)


class ResidualBlock(Module):
    """What every block shares: y = relu(F(x) + shortcut(x)), or relu(F(x)) when plain.

    Subclasses build their convs and define `residual` (the branch F); this class owns the
    shortcut slot and the addition.
    """

    expansion = 1      # out_channels = channels * expansion

    def _add_shortcut(self, option, in_channels, out_channels, stride, shortcut_name):
        self.shortcut_option = option
        self.shortcut_name = shortcut_name
        # Registered even when None (the plain block), so printing the block shows
        # "(shortcut): None": the missing shortcut is the whole difference.
        self.add_module(shortcut_name, make_shortcut(option, in_channels, out_channels, stride))

    @property
    def is_plain(self):
        return self.shortcut_option == "none"

    def shortcut_path(self):
        """The module on the shortcut (Identity, ZeroPadShortcut, a projection), None if plain."""
        return self._modules[self.shortcut_name]

    def residual(self, x):
        raise NotImplementedError(f"{type(self).__name__} must define residual(x), the branch F")

    def forward(self, x):
        # BEGIN SOLUTION A4 residual_forward
        out = self.residual(x)                       # F(x): the layers of the block
        shortcut = self.shortcut_path()
        if shortcut is not None:
            out = out + shortcut(x)                  # F(x) + x   (or F(x) + W_s x)
        return F.relu(out)                           # the second ReLU, after the addition
        # END SOLUTION


class BasicBlock(ResidualBlock):
    """Two 3x3 convs (ResNet-18/34 and all CIFAR ResNets):

        F(x) = BN(conv3x3(ReLU(BN(conv3x3_stride_s(x)))))

    x (N, in_channels, H, W) -> (N, channels, ceil(H/s), ceil(W/s)).
    Parameters: conv1, bn1, conv2, bn2, and the shortcut's (options B/C).
    """

    expansion = 1

    def __init__(self, in_channels, channels, stride=1, shortcut="B", shortcut_name="shortcut"):
        super().__init__()
        self.conv1 = Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = BatchNorm2d(channels)
        self.conv2 = Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = BatchNorm2d(channels)
        self._add_shortcut(shortcut, in_channels, channels, stride, shortcut_name)

    def residual(self, x):
        # BEGIN SOLUTION A4 basic_block_residual
        out = F.relu(self.bn1(self.conv1(x)))        # (N, channels, H/s, W/s)
        return self.bn2(self.conv2(out))             # (N, channels, H/s, W/s), no ReLU yet
        # END SOLUTION


class Bottleneck(ResidualBlock):
    """1x1 (reduce) - 3x3 - 1x1 (expand to 4x) convs (ResNet-50/101/152, the paper's Fig. 5):

        F(x) = BN(conv1x1(ReLU(BN(conv3x3(ReLU(BN(conv1x1(x))))))))

    x (N, in_channels, H, W) -> (N, 4 * channels, ceil(H/s), ceil(W/s)).

    Where the stride sits is the one difference between the paper and torchvision:
    ``stride_in_1x1=True`` puts it on the first 1x1 conv (the paper's, and the original Caffe
    model's: the 3x3 then works on the already-halved map); the default False puts it on the 3x3
    conv (torchvision's "ResNet v1.5": the same parameters, more multiply-adds, a bit more
    accurate).
    """

    expansion = 4

    def __init__(self, in_channels, channels, stride=1, shortcut="B", shortcut_name="shortcut",
                 stride_in_1x1=False):
        super().__init__()
        out_channels = channels * self.expansion
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.stride_in_1x1 = stride_in_1x1
        self.conv1 = Conv2d(in_channels, channels, 1, stride=stride_1x1, bias=False)
        self.bn1 = BatchNorm2d(channels)
        self.conv2 = Conv2d(channels, channels, 3, stride=stride_3x3, padding=1, bias=False)
        self.bn2 = BatchNorm2d(channels)
        self.conv3 = Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = BatchNorm2d(out_channels)
        self._add_shortcut(shortcut, in_channels, out_channels, stride, shortcut_name)

    def residual(self, x):
        out = F.relu(self.bn1(self.conv1(x)))        # (N, channels, ...)    reduce
        out = F.relu(self.bn2(self.conv2(out)))      # (N, channels, H/s, W/s)
        return self.bn3(self.conv3(out))             # (N, 4*channels, H/s, W/s)  expand


# ----------------------------------------------------------------------------------------------
# What the CIFAR and ImageNet ResNets (and VGG's checks) share
# ----------------------------------------------------------------------------------------------
def make_stage(block, count, in_channels, channels, stride, **options):
    """One stage (layer1, layer2, ...): `count` blocks of `channels`. Only the first may change
    the shape (its `stride`, and in_channels -> channels * expansion), so only it may need a
    projection shortcut; the others keep the shape. `options` go to every block."""
    blocks = [block(in_channels, channels, stride, **options)]
    for _ in range(count - 1):
        blocks.append(block(channels * block.expansion, channels, 1, **options))
    return Sequential(*blocks)


class ResNetBase(Module):
    """What CifarResNet and ImageNetResNet share besides their blocks: the `shortcut` option
    ("none" makes the plain twin) and the printout. Each sets depth, num_classes and shortcut."""

    @property
    def is_plain(self):
        return self.shortcut == "none"

    def extra_repr(self):
        kind = "plain" if self.is_plain else f"shortcut={self.shortcut!r}"
        return f"depth={self.depth}, {kind}, num_classes={self.num_classes}"


def he_init_(model):
    """The paper's initialisation, in place: He et al.'s normal N(0, 2/fan_in) for every conv and
    linear weight; batch norm weight 1 and bias 0. Biases of Linear layers keep their default
    (PyTorch's U(-1/sqrt(fan_in), 1/sqrt(fan_in))), as in the reference PyTorch recipe.
    Returns the model."""
    for module in model.modules():
        if isinstance(module, (Conv2d, Linear)):
            init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(module, BatchNorm2d) and module.affine:
            init.ones_(module.weight)
            init.zeros_(module.bias)
    return model


def check_images(first_layer, x, channels=3, size=None):
    """Check a batch of images before a model's first layer, and raise naming that layer: a 4-D
    (N, channels, H, W) input (any channels when None), and H = W = `size` when `size` is given."""
    first = first_layer.label
    expected = f"(N, {channels or 'C'}, {size or 'H'}, {size or 'W'})"
    if x.ndim != 4:
        raise ValueError(f"{first}: expected a batch of images {expected}, got shape "
                         f"{tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{first}: expected input with {channels} channels {expected}, got "
                         f"shape {tuple(x.shape)}")
    if size is not None and tuple(x.shape[2:]) != (size, size):
        raise ValueError(f"{first}: expected {size}x{size} images {expected}, got shape "
                         f"{tuple(x.shape)} (build the model with input_size=None to accept "
                         f"any image size)")
