"""VGG (tinyres/models/vgg.py): the paper's and torchvision's parameter counts and multiply-adds,
forward shapes, torchvision's layer names and initialisation, gradient checks of small VGG stacks
(with the adaptive pool's uneven windows), errors, and (where installed) PyTorch's logits."""
import math

import numpy
import pytest

import tinyres
import tinyres.functional as F
from tinyres import gradcheck, models, nn
from tinyres.models import get_model, list_models, summary
from tinyres.models import vgg as vgg_module
from tinyres.models.vgg import VGG, cifar_vgg, imagenet_head, imagenet_vgg, make_features

IMAGENET_COUNTS = {     # 1000 classes; torchvision's counts, and the paper's Table 2 (millions)
    "vgg11": 132_863_336, "vgg11_lrn": 132_863_336, "vgg13": 133_047_848,
    "vgg16_c": 133_638_952, "vgg16": 138_357_544, "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736, "vgg16_bn": 138_365_992,
    "vgg19_bn": 143_678_248,
}
CIFAR_COUNTS = {        # depth: (with batch norm, without)
    11: (9_231_114, 9_225_610), 13: (9_416_010, 9_410_122),
    16: (14_728_266, 14_719_818), 19: (20_040_522, 20_029_514),
}


@pytest.fixture
def shapes_only(monkeypatch):
    """Build models without drawing their random weights (all zeros): a parameter count or a
    multiply-add count depends on the shapes only, and drawing 140 M numbers takes seconds."""
    monkeypatch.setattr(nn.init, "default_layer_init_", lambda weight, bias=None: None)
    monkeypatch.setattr(vgg_module, "init_weights_", lambda model: model)


def images(*shape, seed=0, dtype=numpy.float32):
    return tinyres.tensor(numpy.random.default_rng(seed).standard_normal(shape).astype(dtype))


# ----------------------------------------------------------------------------------------------
# Counts: parameters of every configuration, multiply-adds of VGG-16 and VGG-19
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", IMAGENET_COUNTS)
def test_imagenet_parameter_counts(shapes_only, name):
    model = get_model(name)
    assert model.num_parameters() == IMAGENET_COUNTS[name]


@pytest.mark.parametrize("batch_norm", [True, False])
@pytest.mark.parametrize("depth", sorted(CIFAR_COUNTS))
def test_cifar_parameter_counts(shapes_only, depth, batch_norm):
    expected = CIFAR_COUNTS[depth][0 if batch_norm else 1]
    assert cifar_vgg(depth, batch_norm=batch_norm).num_parameters() == expected
    if batch_norm:      # the registry's default is the batch-norm net
        assert get_model(f"cifar_vgg{depth}", num_classes=10).num_parameters() == expected


@pytest.mark.parametrize("name, giga_macs", [("vgg16", 15.470), ("vgg19", 19.632)])
def test_multiply_adds_at_224(shapes_only, name, giga_macs):
    """The ResNet paper's "VGG-19 (19.6 billion FLOPs)": conv and linear multiply-adds at 224."""
    result = summary(get_model(name), (3, 224, 224), show=False)
    assert result.total_macs / 1e9 == pytest.approx(giga_macs, rel=1e-3)
    assert result.total_params == IMAGENET_COUNTS[name]
    assert result.output_shape == (1, 1000)
    # the convs do nearly all the arithmetic, the fully connected head holds most parameters
    head = sum(r.macs for r in result.rows if r.path.startswith("classifier"))
    assert head == 25088 * 4096 + 4096 * 4096 + 4096 * 1000


def test_cifar_multiply_adds(shapes_only):
    result = summary(cifar_vgg(19), (3, 32, 32), show=False)
    assert result.total_macs == 398_136_320
    assert result.output_shape == (1, 10)


# ----------------------------------------------------------------------------------------------
# The configurations and torchvision's layer names
# ----------------------------------------------------------------------------------------------
def conv_layout(features):
    return [(m.kernel_size[0], m.out_channels) for m in features if isinstance(m, nn.Conv2d)]


def test_configurations_follow_table_1(shapes_only):
    weight_layers = {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}
    for name, depth in weight_layers.items():
        features = make_features(name)
        assert len(conv_layout(features)) + 3 == depth, name
        assert sum(isinstance(m, nn.MaxPool2d) for m in features) == 5, name
    assert [k for k, _ in conv_layout(make_features("C"))].count(1) == 3
    lrn = make_features("A-LRN")[2]
    assert isinstance(lrn, nn.LocalResponseNorm)
    assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 5e-4, 0.75, 2.0)
    assert conv_layout(make_features("A-LRN")) == conv_layout(make_features("A"))


def test_lrn_is_alexnets():
    """A-LRN's layer computes AlexNet's b_c = a_c / (k + alpha * sum of a^2 over n = 5
    neighbouring channels)^beta with k = 2, alpha = 1e-4, beta = 0.75 (alpha not divided by n)."""
    a = numpy.random.default_rng(0).standard_normal((1, 7, 2, 3)) * 10
    b = make_features("A-LRN")[2](tinyres.tensor(a)).numpy()
    for c in range(7):
        window = (a[:, max(0, c - 2):c + 3] ** 2).sum(axis=1)
        numpy.testing.assert_allclose(b[:, c], a[:, c] / (2 + 1e-4 * window) ** 0.75, rtol=1e-12)


def test_torchvision_names(shapes_only):
    names = list(get_model("vgg11").state_dict())
    convs = [0, 3, 6, 8, 11, 13, 16, 18]
    expected = [f"features.{i}.{p}" for i in convs for p in ("weight", "bias")]
    expected += [f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")]
    assert names == expected
    bn = get_model("vgg11_bn").state_dict()
    assert bn["features.1.running_var"].shape == (64,)
    assert bn["features.4.weight"].shape == (128, 64, 3, 3)      # conv, bn, relu, pool, conv
    assert "classifier.weight" in cifar_vgg(11).state_dict()


@pytest.mark.slow
def test_every_vgg_name_is_a_builder_in_tinyres_models(shapes_only):
    """As torchvision.models.vgg16(): tinyres.models.vgg16() builds what get_model("vgg16") does."""
    for name in vgg_module.MODELS:
        built, by_name = getattr(models, name)(num_classes=7), get_model(name, num_classes=7)
        assert list(built.state_dict()) == list(by_name.state_dict()), name
        assert built.num_parameters() == by_name.num_parameters(), name


def test_initialisation_as_torchvision():
    tinyres.manual_seed(0)
    model = cifar_vgg(11)
    conv = model.features[0]                      # (64, 3, 3, 3): fan_out = 64 * 9
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    weights = numpy.concatenate([c.weight.numpy().ravel() / math.sqrt(2 / (c.out_channels * 9))
                                 for c in convs])
    assert weights.std() == pytest.approx(1.0, rel=0.01)          # He normal, fan_out
    assert all(not c.bias.numpy().any() for c in convs)
    assert conv.weight.numpy().mean() == pytest.approx(0, abs=0.05)
    bn = model.features[1]
    assert (bn.weight.numpy() == 1).all() and not bn.bias.numpy().any()
    assert model.classifier.weight.numpy().std() == pytest.approx(0.01, rel=0.05)
    assert not model.classifier.bias.numpy().any()


# ----------------------------------------------------------------------------------------------
# Forward shapes
# ----------------------------------------------------------------------------------------------
def test_cifar_forward_and_training_step():
    tinyres.manual_seed(0)
    model = cifar_vgg(19, width=8)                 # 8 ... 64 channels: VGG-19's stack, narrow
    x, labels = images(4, 3, 32, 32), tinyres.tensor(numpy.array([0, 1, 2, 3]))
    logits = model(x)
    assert logits.shape == (4, 10)
    F.cross_entropy(logits, labels).backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())


@pytest.mark.parametrize("size, final_map", [(32, 1), (64, 2), (96, 3)])
def test_imagenet_net_on_small_images(shapes_only, size, final_map):
    """A 224-net on smaller images works as torchvision's: the adaptive pool makes any final
    map 7x7 (1x1 -> copied, 2x2 and 3x3 -> overlapping uneven windows)."""
    model = get_model("vgg11_lrn", num_classes=7).eval()
    seen = []
    model.avgpool.register_forward_hook(lambda m, inputs, out: seen.append(
        (inputs[0].shape, out.shape)))
    with tinyres.no_grad():
        assert model(images(1, 3, size, size)).shape == (1, 7)
    assert seen == [((1, 512, final_map, final_map), (1, 512, 7, 7))]


# ----------------------------------------------------------------------------------------------
# Gradient checks of whole (small) VGGs in float64
# ----------------------------------------------------------------------------------------------
def check_model_gradients(model, x, reseed=None, max_elements=6):
    """gradcheck of model(x) with respect to x and every parameter (a sample of each)."""
    params = list(model.parameters())

    def forward(x, *params):
        if reseed is not None:      # dropout draws from the global generator: same masks
            tinyres.manual_seed(reseed)
        return model(x)
    report = gradcheck(forward, [x] + params, max_elements=max_elements)
    assert report.checked > len(params)


def test_gradcheck_cifar_vgg_with_batch_norm():
    tinyres.manual_seed(1)
    model = cifar_vgg(11, width=2).to(dtype=numpy.float64)    # 2, 4, 8, 16, 16 channels
    x = images(2, 3, 32, 32, seed=1, dtype=numpy.float64)
    x.requires_grad = True
    check_model_gradients(model, x)


def test_gradcheck_lrn_uneven_pool_and_dropout_head():
    """A VGG-A-LRN in small: conv, LRN, pools, a 1x1 conv, the adaptive pool's uneven windows
    (3x3 -> 7x7), and the fully connected head with dropout in training mode."""
    tinyres.manual_seed(2)
    features = make_features([4, "LRN", "M", 6, "conv1-6", "M"])
    model = VGG(features, imagenet_head(5, in_features=6 * 7 * 7, hidden=8, dropout=0.3),
                avgpool=nn.AdaptiveAvgPool2d((7, 7))).to(dtype=numpy.float64)
    for param in model.parameters():            # break torchvision's zero biases' symmetry
        param.data[...] += numpy.random.default_rng(3).normal(0, 0.1, param.shape)
    x = images(2, 3, 12, 12, seed=2, dtype=numpy.float64)
    x.requires_grad = True
    check_model_gradients(model, x, reseed=7)


# ----------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------
def test_unknown_names_and_options(shapes_only):
    with pytest.raises(ValueError, match=r"unknown depth 12; choose one of 11, 13, 16, 19"):
        cifar_vgg(12)
    with pytest.raises(ValueError, match=r"unknown configuration 'F'.*A, A-LRN, B, C, D, E"):
        imagenet_vgg("F")
    with pytest.raises(ValueError, match=r"unknown entry 'conv2-8'"):
        make_features([8, "conv2-8"])
    with pytest.raises(ValueError, match=r"width must be a positive int"):
        cifar_vgg(11, width=0)
    with pytest.raises(ValueError, match=r"unknown model 'vgg17'.*vgg16.*cifar_vgg19"):
        get_model("vgg17")
    for name in IMAGENET_COUNTS:
        assert name in list_models()


def test_vanishing_feature_map_names_the_layer(shapes_only):
    model = get_model("vgg11").eval()
    # 16x16: four pools leave 1x1, the fifth (features.20) has nothing left to pool
    with pytest.raises(ValueError, match=r"MaxPool2d features\.20: kernel 2x2 is larger than "
                                         r"the padded input 1x1"):
        with tinyres.no_grad():
            model(images(1, 3, 16, 16))


def test_cifar_net_checks_the_image_size():
    model = cifar_vgg(11, width=1)
    with pytest.raises(ValueError, match=r"Conv2d features\.0: expected 32x32 images "
                                         r"\(N, 3, 32, 32\), got shape \(1, 3, 64, 64\)"):
        model(images(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"Conv2d features\.0: expected input with 3 channels "
                                         r"\(N, 3, 32, 32\), got shape \(1, 1, 32, 32\)"):
        model(images(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r"Conv2d features\.0: expected a batch of images"):
        model(images(3, 32, 32))
    assert cifar_vgg(11, width=1, input_size=None)(images(1, 3, 40, 40)).shape == (1, 10)


# ----------------------------------------------------------------------------------------------
# PyTorch: a VGG-11 in torchvision's layout loads unchanged and gives the same logits
# ----------------------------------------------------------------------------------------------
def torch_vgg(torch, batch_norm, num_classes):
    """torchvision's VGG-11 (configuration A) written out with torch.nn: nn.Sequential
    `features`, AdaptiveAvgPool2d((7, 7)) `avgpool`, nn.Sequential `classifier`."""
    tnn = torch.nn

    class TorchVGG(tnn.Module):
        def __init__(self):
            super().__init__()
            layers, channels = [], 3
            for v in [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]:
                if v == "M":
                    layers.append(tnn.MaxPool2d(kernel_size=2, stride=2))
                    continue
                layers.append(tnn.Conv2d(channels, v, kernel_size=3, padding=1))
                if batch_norm:
                    layers.append(tnn.BatchNorm2d(v))
                layers.append(tnn.ReLU(inplace=True))
                channels = v
            self.features = tnn.Sequential(*layers)
            self.avgpool = tnn.AdaptiveAvgPool2d((7, 7))
            self.classifier = tnn.Sequential(
                tnn.Linear(512 * 7 * 7, 4096), tnn.ReLU(True), tnn.Dropout(p=0.5),
                tnn.Linear(4096, 4096), tnn.ReLU(True), tnn.Dropout(p=0.5),
                tnn.Linear(4096, num_classes))

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    return TorchVGG()


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.parametrize("name", ["vgg11", "vgg11_bn"])
def test_torch_vgg11_state_dict_loads_and_agrees(shapes_only, name):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = torch_vgg(torch, batch_norm=name.endswith("_bn"), num_classes=10)
    with torch.no_grad():
        for module in theirs.modules():         # BN with statistics that matter in eval mode
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    theirs.eval()
    state = {key: value.numpy() for key, value in theirs.state_dict().items()}

    ours = get_model(name, num_classes=10)
    result = ours.load_state_dict(state)                # strict: every key fits, unchanged
    assert result.missing_keys == [] and result.unexpected_keys == []
    ours.eval()
    for shape in [(2, 3, 32, 32), (1, 3, 64, 64)]:       # final map 1x1 and 2x2 -> 7x7
        x = numpy.random.default_rng(1).standard_normal(shape).astype(numpy.float32)
        with tinyres.no_grad():
            got = ours(tinyres.tensor(x)).numpy()
        with torch.no_grad():
            want = theirs(torch.from_numpy(x)).numpy()
        scale = numpy.abs(want).max()
        numpy.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)
