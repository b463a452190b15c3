"""tinyres.summary: the per-layer table, and the totals checked against the papers' figures.

The ImageNet nets are built once each (the biggest, ResNet-152, holds 60M parameters) and
both their parameter count and their multiply-adds at 224x224 are asserted on that one model.
"""
import gc

import numpy
import pytest

import tinyres
from tinyres import models, nn

# Published multiply-adds ("FLOPs"): the ResNet paper's Table 1 and torchvision's figures.
CIFAR_MACS = {"resnet20": 40.55e6, "resnet32": 68.86e6, "resnet44": 97.17e6,
              "resnet56": 125.49e6, "resnet110": 252.89e6}
IMAGENET = [  # name, options, parameters (torchvision), multiply-adds at 224x224
    ("resnet18", {}, 11_689_512, 1.814e9),
    ("resnet34", {}, 21_797_672, 3.664e9),
    ("resnet50", {}, 25_557_032, 4.089e9),                              # torchvision v1.5
    ("resnet50", {"stride_in_1x1": True}, 25_557_032, 3.858e9),         # the paper's
    ("resnet101", {}, 44_549_160, 7.801e9),
    ("resnet101", {"stride_in_1x1": True}, 44_549_160, 7.570e9),
    ("resnet152", {}, 60_192_808, 11.514e9),
    ("resnet152", {"stride_in_1x1": True}, 60_192_808, 11.282e9),
]


def cifar_macs_by_hand(n, num_classes=10):
    """Multiply-adds of a CIFAR ResNet-(6n+2), option A, from the paper's table: 3x3 convs on
    32x32, 16x16 and 8x8 maps, the first conv of stages 2 and 3 halving the map."""
    total = 32 * 32 * 16 * 3 * 9                                        # conv1
    for size, c_in, c in ((32, 16, 16), (16, 16, 32), (8, 32, 64)):
        total += size * size * c * c_in * 9                             # first conv of the stage
        total += (2 * n - 1) * size * size * c * c * 9                  # the other 2n - 1
    return total + 64 * num_classes                                     # fc


@pytest.mark.parametrize("name, published", CIFAR_MACS.items())
def test_cifar_resnet_macs(name, published):
    model = models.get_model(name)
    result = tinyres.summary(model, (3, 32, 32), show=False)
    n = (int(name[len("resnet"):]) - 2) // 6
    assert result.total_macs == cifar_macs_by_hand(n)
    assert result.total_macs == pytest.approx(published, rel=1e-3)
    assert result.total_params == model.num_parameters()


@pytest.mark.parametrize("name, options, params, macs", IMAGENET,
                         ids=[f"{n}{'-paper' if o else ''}" for n, o, _, _ in IMAGENET])
def test_imagenet_resnet_counts_and_macs(name, options, params, macs):
    model = models.get_model(name, **options)
    result = tinyres.summary(model, (3, 224, 224), show=False)
    assert result.total_params == params
    assert result.total_macs == pytest.approx(macs, rel=1e-3)
    assert result.output_shape == (1, 1000)
    shapes = {r.path: r.output_shape for r in result.rows}
    basic = name in ("resnet18", "resnet34")
    assert shapes["conv1"] == (1, 64, 112, 112) and shapes["maxpool"] == (1, 64, 56, 56)
    assert shapes["avgpool"] == (1, 512 if basic else 2048, 1, 1)
    # Where the stride sits: layer4's first conv halves 14x14 to 7x7, unless it is the 1x1 of
    # a v1.5 bottleneck (then the 3x3 after it halves the map).
    halves_in_conv1 = basic or options.get("stride_in_1x1", False)
    assert shapes["layer4.0.conv1"][2:] == ((7, 7) if halves_in_conv1 else (14, 14))
    del model, result
    gc.collect()


def test_the_table(capsys):
    result = tinyres.summary(models.resnet20(), (3, 32, 32))
    printed = capsys.readouterr().out
    assert printed.strip() == str(result)
    lines = printed.splitlines()
    assert lines[0] == "input (1, 3, 32, 32) -> output (1, 10)"
    assert lines[1].split() == ["layer", "type", "output", "shape", "params", "mult-adds"]
    assert lines[3].split()[:2] == ["conv1", "Conv2d"] and lines[3].endswith("442,368")
    assert "total: 269,722 parameters, 40.55M multiply-adds per image (40,551,040)" in printed
    # rows: every layer that computes something, in execution order; shortcuts included
    paths = [r.path for r in result.rows]
    assert paths[:4] == ["conv1", "bn1", "layer1.0.conv1", "layer1.0.bn1"]
    assert "layer2.0.shortcut" in paths and "layer1.0.shortcut" not in paths   # Identity: no row
    assert paths[-2:] == ["avgpool", "fc"]
    row = result.rows[paths.index("layer2.0.conv1")]
    assert (row.kind, row.output_shape, row.params, row.macs) == (
        "Conv2d", (1, 32, 16, 16), 16 * 32 * 9, 16 * 16 * 32 * 16 * 9)
    assert sum(r.params for r in result.rows) == result.total_params


def test_shortcut_options_change_macs_as_expected():
    def macs(model):
        return tinyres.summary(model, (3, 32, 32), show=False).total_macs
    a = macs(models.resnet20())
    assert macs(models.plain20()) == a                                # option A costs nothing
    projections = 16 * 16 * 32 * 16 + 8 * 8 * 64 * 32                 # two 1x1 stride-2 convs
    assert macs(models.resnet20(shortcut="B")) == a + projections


def test_summary_leaves_the_model_as_it_was(rng):
    model = models.resnet20()
    before = model.state_dict()
    tinyres.summary(model, (2, 3, 32, 32), show=False)
    assert model.training and all(m.training for m in model.modules())
    after = model.state_dict()
    assert all(numpy.array_equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks for m in model.modules())
    model.layer1.eval()                                  # a mixed model keeps its mix
    tinyres.summary(model, (3, 32, 32), show=False)
    assert model.training and model.layer2.training
    assert not any(m.training for m in model.layer1.modules())


def test_macs_are_per_image_and_any_module_works():
    conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
    result = tinyres.summary(conv, (4, 3, 9, 9), show=False)
    assert [r.path for r in result.rows] == ["(model)"]
    assert result.output_shape == (4, 8, 5, 5)
    assert result.total_macs == 8 * 5 * 5 * 3 * 9 and result.total_params == 8 * 27 + 8
    head = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    assert tinyres.summary(head, (3, 2, 2), show=False).total_macs == 60


def test_summary_of_a_float64_model():
    model = models.cifar_resnet(8, input_size=None).to(dtype=numpy.float64)
    result = tinyres.summary(model, (3, 8, 8), show=False)
    assert result.output_shape == (1, 10) and result.total_macs > 0
