"""The ResNet family: parameter counts, names, initialisation, gradients, shortcuts, errors.

Multiply-add counts (and the ImageNet nets' parameter counts, asserted on the same built model)
are in test_summary.py; PyTorch-trained weights in test_pretrained.py.
"""
import math

import numpy
import pytest

import tinyres
from tinyres import Function, models, nn
from tinyres.gradcheck import gradcheck
from tinyres.models import BasicBlock, Bottleneck, ZeroPadShortcut
from tinyres.models.views import compare_gradient_norms


def float64(module):
    """The module with every parameter and buffer cast to float64, in place (for gradcheck)."""
    return module.to(dtype=numpy.float64)


def images(rng, *shape, dtype=numpy.float64, requires_grad=False):
    return tinyres.tensor(rng.standard_normal(shape).astype(dtype), requires_grad=requires_grad)


# -- parameter counts ------------------------------------------------------------------------
# The paper's Table 6 (option A): 0.27M, 0.46M, 0.66M, 0.85M, 1.7M, 19.4M
CIFAR_OPTION_A = {"resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586,
                  "resnet56": 853_018, "resnet110": 1_727_962}


@pytest.mark.parametrize("name, count", CIFAR_OPTION_A.items())
def test_cifar_resnet_parameter_counts(name, count):
    model = models.get_model(name)
    assert model.num_parameters() == count
    plain = models.get_model(name.replace("resnet", "plain"))
    assert plain.num_parameters() == count          # option A adds no parameters


def test_resnet1202_parameter_count():
    assert models.resnet1202().num_parameters() == 19_421_274        # "19.4M"


def test_cifar_count_formula_holds_for_every_depth():
    """Counted by hand: per stage, 2n 3x3 convs + 2n BNs (the first conv of stages 2 and 3
    takes half as many input channels), plus conv1 + bn1 and the 64 -> 10 classifier."""
    for n in (1, 2, 3):
        total = 3 * 9 * 16 + 2 * 16 + 64 * 10 + 10
        for c_in, c in ((16, 16), (16, 32), (32, 64)):
            total += c_in * c * 9 + (2 * n - 1) * c * c * 9 + 2 * n * 2 * c
        assert models.cifar_resnet(6 * n + 2).num_parameters() == total


def test_cifar_option_b_and_c_add_projections():
    # B: two projections (16->32 and 32->64, 1x1 conv + BN)
    assert models.resnet20(shortcut="B").num_parameters() == 269_722 + (16 * 32 + 64) + (
        32 * 64 + 128)
    # C: a projection on all 9 blocks
    c = sum(cin * c + 2 * c for cin, c in [(16, 16)] * 3 + [(16, 32)] + [(32, 32)] * 2
            + [(32, 64)] + [(64, 64)] * 2)
    assert models.resnet20(shortcut="C").num_parameters() == 269_722 + c


@pytest.mark.parametrize("name, kwargs, count", [
    ("resnet34", {"shortcut": "C"}, 22_716_840),
    ("resnet34", {"shortcut": "A"}, 21_623_848),
    ("resnet18", {"shortcut": "A"}, 11_515_688),
    ("plain18", {}, 11_515_688),
    ("plain34", {}, 21_623_848),
])
def test_imagenet_shortcut_options_parameter_counts(name, kwargs, count):
    # (resnet18/34/50/101/152 with torchvision's option B: test_summary.py, with their MACs)
    assert models.get_model(name, **kwargs).num_parameters() == count


# -- structure and names -------------------------------------------------------------------------
def test_cifar_names_follow_the_common_pytorch_layout():
    keys = list(models.resnet20(shortcut="B").state_dict())
    assert keys[:6] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean",
                        "bn1.running_var", "layer1.0.conv1.weight"]
    for key in ("layer1.0.bn1.weight", "layer1.0.conv2.weight", "layer1.0.bn2.running_var",
                "layer2.0.shortcut.0.weight", "layer2.0.shortcut.1.running_mean",
                "layer3.0.shortcut.0.weight", "layer3.2.conv2.weight", "fc.weight", "fc.bias"):
        assert key in keys
    assert not any("shortcut" in k for k in models.resnet20().state_dict())   # option A
    assert len(models.resnet20().state_dict()) == 1 + 4 + 9 * (2 + 8) + 2


def torchvision_keys(depth):
    """torchvision's state dict names for ResNet-`depth`, written out independently here
    (without num_batches_tracked, which tinyres does not keep)."""
    bottleneck = depth >= 50
    counts = {18: (2, 2, 2, 2), 50: (3, 4, 6, 3)}[depth]
    bn = ["weight", "bias", "running_mean", "running_var"]
    keys = ["conv1.weight"] + [f"bn1.{k}" for k in bn]
    for stage, count in enumerate(counts, start=1):
        for b in range(count):
            prefix = f"layer{stage}.{b}"
            for i in (1, 2, 3) if bottleneck else (1, 2):
                keys += [f"{prefix}.conv{i}.weight"] + [f"{prefix}.bn{i}.{k}" for k in bn]
            if b == 0 and (stage > 1 or bottleneck):
                keys += [f"{prefix}.downsample.0.weight"] + [f"{prefix}.downsample.1.{k}"
                                                             for k in bn]
    return keys + ["fc.weight", "fc.bias"]


@pytest.mark.parametrize("depth", [18, 50])
def test_imagenet_names_are_torchvisions(depth):
    model = models.imagenet_resnet(depth, num_classes=10)
    assert list(model.state_dict()) == torchvision_keys(depth)


def test_plain_block_has_no_shortcut_and_says_so():
    block = BasicBlock(16, 32, stride=2, shortcut="none")
    assert block.is_plain and block.shortcut is None
    assert "(shortcut): None" in repr(block)
    assert "shortcut" not in "".join(block.state_dict())


def test_one_block_class_for_every_option():
    kinds = {option: type(BasicBlock(16, 32, 2, shortcut=option).shortcut_path()).__name__
             for option in ("A", "B", "C", "none")}
    assert kinds == {"A": "ZeroPadShortcut", "B": "Sequential", "C": "Sequential",
                     "none": "NoneType"}
    same = {option: type(BasicBlock(16, 16, 1, shortcut=option).shortcut_path()).__name__
            for option in ("A", "B", "C")}
    assert same == {"A": "Identity", "B": "Identity", "C": "Sequential"}


def test_option_a_pads_half_the_new_channels_before_and_half_after(rng):
    x = images(rng, 2, 16, 8, 8)
    y = ZeroPadShortcut(16, 32, stride=2)(x).numpy()
    assert y.shape == (2, 32, 4, 4)
    numpy.testing.assert_array_equal(y[:, 8:24], x.numpy()[:, :, ::2, ::2])
    assert not y[:, :8].any() and not y[:, 24:].any()
    odd = ZeroPadShortcut(3, 8, stride=2)(images(rng, 1, 3, 7, 7)).numpy()
    assert odd.shape == (1, 8, 4, 4) and not odd[:, :2].any() and not odd[:, 5:].any()


def test_bottleneck_stride_sits_on_the_3x3_or_on_the_first_1x1():
    v15, paper = Bottleneck(64, 64, stride=2), Bottleneck(64, 64, stride=2, stride_in_1x1=True)
    assert (v15.conv1.stride, v15.conv2.stride) == ((1, 1), (2, 2))
    assert (paper.conv1.stride, paper.conv2.stride) == ((2, 2), (1, 1))


def test_he_initialisation():
    tinyres.nn.init.manual_seed(0)
    model = models.resnet56()
    for path, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            w = module.weight.numpy()
            fan_in = w[0].size
            if w.size >= 2000:
                assert abs(w.std() / math.sqrt(2 / fan_in) - 1) < 0.08, path
            assert abs(w.mean()) < 4 * math.sqrt(2 / fan_in / w.size) + 1e-3, path
        if isinstance(module, nn.BatchNorm2d):
            assert (module.weight.numpy() == 1).all() and (module.bias.numpy() == 0).all()


def test_seeded_construction_is_repeatable():
    tinyres.nn.init.manual_seed(3)
    a = models.resnet20().state_dict()
    tinyres.nn.init.manual_seed(3)
    b = models.resnet20().state_dict()
    assert all(numpy.array_equal(a[k], b[k]) for k in a)


def test_classifier_named_linear_loads_into_fc():
    source = models.resnet20().state_dict()
    renamed = {k.replace("fc.", "linear."): v for k, v in source.items()}
    target = models.resnet20()
    target.load_state_dict(renamed)
    numpy.testing.assert_array_equal(target.fc.weight.numpy(), source["fc.weight"])


# -- forward shapes ------------------------------------------------------------------------------
def test_cifar_forward_shapes_and_registry(rng):
    x = images(rng, 2, 3, 32, 32, dtype=numpy.float32)
    for name in ("resnet20", "plain20"):
        model = models.get_model(name, num_classes=7)
        assert model(x).shape == (2, 7)
    any_size = models.cifar_resnet(8, input_size=None)
    assert any_size(images(rng, 2, 3, 9, 9, dtype=numpy.float32)).shape == (2, 10)


def test_imagenet_resnet_runs_on_any_input_size(rng):
    model = models.resnet18(num_classes=5).eval()
    for size in (1, 7, 32, 65):
        x = images(rng, 1, 3, size, size, dtype=numpy.float32)
        assert model(x).shape == (1, 5)


def test_registry_lists_every_family():
    names = models.list_models()
    for name in ("resnet20", "resnet1202", "plain56", "resnet18", "resnet152", "plain34"):
        assert name in names
    assert len(names) == len(set(names))
    with pytest.raises(ValueError, match="already registered"):
        models.register_models({"resnet20": lambda **kw: None})


# -- errors --------------------------------------------------------------------------------------
def test_unknown_model_lists_the_valid_names():
    with pytest.raises(ValueError) as err:
        models.get_model("resnet21")
    message = str(err.value)
    assert "resnet21" in message and "did you mean" in message
    assert all(name in message for name in models.list_models())


@pytest.mark.parametrize("depth", [21, 2, 0, 7, 20.0, "20"])
def test_unsupported_cifar_depth_lists_the_valid_depths(depth):
    with pytest.raises(ValueError, match=r"6n \+ 2.*8, 14, 20.*20, 32, 44, 56, 110, 1202"):
        models.cifar_resnet(depth)


def test_unsupported_imagenet_depth_lists_table_1():
    with pytest.raises(ValueError, match="18, 34, 50, 101, 152"):
        models.imagenet_resnet(26)


@pytest.mark.parametrize("build", [lambda: models.cifar_resnet(20, shortcut="D"),
                                   lambda: models.resnet18(shortcut="b"),
                                   lambda: BasicBlock(16, 16, shortcut="identity")])
def test_unknown_shortcut_option_lists_the_options(build):
    with pytest.raises(ValueError, match="'A'.*'B'.*'C'.*'none'"):
        build()


def test_stride_in_1x1_needs_a_bottleneck():
    with pytest.raises(ValueError, match="basic blocks"):
        models.imagenet_resnet(18, stride_in_1x1=True)


def test_wrong_input_raises_from_the_first_layer(rng):
    cifar, imagenet = models.resnet20(), models.resnet18(num_classes=10)
    with pytest.raises(ValueError, match=r"Conv2d conv1: expected input with 3 channels.*"
                                         r"\(8, 1, 32, 32\)"):
        cifar(images(rng, 8, 1, 32, 32, dtype=numpy.float32))
    with pytest.raises(ValueError, match=r"Conv2d conv1: expected 32x32 images.*"
                                         r"\(2, 3, 28, 28\).*input_size=None"):
        cifar(images(rng, 2, 3, 28, 28, dtype=numpy.float32))
    with pytest.raises(ValueError, match=r"Conv2d conv1: expected a batch of images.*"
                                         r"\(3, 32, 32\)"):
        cifar(images(rng, 3, 32, 32, dtype=numpy.float32))
    with pytest.raises(ValueError, match=r"Conv2d conv1: expected input with 3 channels"):
        imagenet(images(rng, 1, 4, 64, 64, dtype=numpy.float32))


def test_a_layer_deep_inside_names_itself(rng):
    block = BasicBlock(16, 16)
    model = nn.Sequential(block)
    with pytest.raises(ValueError, match=r"Conv2d 0.conv1: expected input with 16 channels"):
        model(images(rng, 1, 8, 4, 4, dtype=numpy.float32))


# -- gradients -------------------------------------------------------------------------------
@pytest.mark.parametrize("make, x_shape", [
    (lambda: BasicBlock(3, 3, 1, shortcut="A"), (2, 3, 5, 5)),            # identity shortcut
    (lambda: BasicBlock(3, 6, 2, shortcut="A"), (2, 3, 6, 5)),            # option A (zero pad)
    (lambda: BasicBlock(3, 6, 2, shortcut="B"), (2, 3, 5, 6)),            # option B (projection)
    (lambda: BasicBlock(3, 3, 1, shortcut="C"), (2, 3, 4, 4)),            # option C
    (lambda: BasicBlock(3, 6, 2, shortcut="none"), (2, 3, 5, 5)),         # plain
    (lambda: Bottleneck(8, 2, 2, shortcut="B"), (2, 8, 5, 5)),            # bottleneck, v1.5
    (lambda: Bottleneck(8, 2, 1, shortcut="A", stride_in_1x1=True), (3, 8, 3, 4)),
    (lambda: Bottleneck(4, 2, 2, shortcut="A", stride_in_1x1=True), (2, 4, 5, 5)),
], ids=["basic-identity", "basic-A", "basic-B", "basic-C", "basic-plain", "bottleneck-B",
        "bottleneck-identity", "bottleneck-A-paper"])
def test_block_gradcheck(make, x_shape, rng):
    """A float64, training-mode block w.r.t. its input and every parameter, every element."""
    tinyres.nn.init.manual_seed(1)
    block = float64(make()).train()
    x = images(rng, *x_shape, requires_grad=True)
    params = list(block.parameters())
    report = gradcheck(lambda x, *p: block(x), [x] + params)
    assert not report.sampled and report.checked == x.numel() + sum(p.numel() for p in params)


def test_resnet8_gradcheck_on_a_tiny_batch(rng):
    """A whole ResNet-8 (n = 1; option A, training-mode BN), every parameter, sampled."""
    tinyres.nn.init.manual_seed(2)
    model = float64(models.cifar_resnet(8, input_size=None)).train()
    x = images(rng, 2, 3, 8, 8, requires_grad=True)
    params = list(model.parameters())
    report = gradcheck(lambda x, *p: model(x), [x] + params, max_elements=12, seed=1)
    assert report.checked == sum(min(12, t.numel()) for t in [x] + params)


def test_identity_path_adds_the_incoming_gradient(rng):
    """y = relu(z), z = F(x) + x: dL/dx = dL/dz (dF/dx) + dL/dz, with the last term the
    identity path, the reason gradients reach the early layers of a deep ResNet."""
    tinyres.nn.init.manual_seed(4)
    block = float64(BasicBlock(4, 4, 1, shortcut="A")).train()
    x = images(rng, 2, 4, 5, 5, requires_grad=True)
    g = rng.standard_normal((2, 4, 5, 5))                    # dL/dy, the incoming gradient

    block(x).backward(g)
    through_block = x.grad.copy()

    z = (block.residual(x) + x).numpy()
    g_z = g * (z > 0)                                          # through the final ReLU
    x.grad = None
    block.residual(x).backward(g_z)                            # through F only
    through_f = x.grad.copy()

    numpy.testing.assert_allclose(through_block, through_f + g_z, rtol=1e-10, atol=1e-12)
    assert numpy.abs(g_z).sum() > 0.1 * numpy.abs(through_f).sum()   # the term matters

    # The plain twin (same weights) has only the first term: dL/dx = dL/dz dF/dx, z = F(x).
    plain = float64(BasicBlock(4, 4, 1, shortcut="none")).train()
    plain.load_state_dict(block.state_dict())
    x.grad = None
    plain(x).backward(g)
    through_plain = x.grad.copy()
    x.grad = None
    plain.residual(x).backward(g * (plain.residual(x).numpy() > 0))
    numpy.testing.assert_allclose(through_plain, x.grad, rtol=1e-10, atol=1e-12)


def test_blocks_run_on_the_leakproof_backend(backend, rng):
    """The shortcut ops (strided indexing, channel padding) stay on the device."""
    tinyres.nn.init.manual_seed(5)
    block = BasicBlock(4, 8, 2, shortcut="A")
    x = tinyres.tensor(backend.asarray(rng.standard_normal((2, 4, 6, 6)).astype(numpy.float32)),
                       requires_grad=True)
    y = block(x)
    y.sum().backward()
    assert y.shape == (2, 8, 3, 3) and x.grad.shape == (2, 4, 6, 6)


# -- views: activations and gradient norms ------------------------------------------------------
def test_gradient_norms_match_a_manual_backward_and_leave_the_model_alone(rng):
    tinyres.nn.init.manual_seed(6)
    model = models.cifar_resnet(8, input_size=None)
    x = rng.standard_normal((4, 3, 8, 8)).astype(numpy.float32)
    labels = numpy.array([1, 2, 3, 4])
    before = model.state_dict()

    per_layer = models.gradient_norms(model, x, labels)
    per_parameter = models.gradient_norms(model, x, labels, per="parameter")
    convs = [p for p, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert list(per_layer) == convs and convs[0] == "conv1" and convs[-1] == "fc"
    assert list(per_parameter) == [name for name, _ in model.named_parameters()]
    assert all(v > 0 for v in per_parameter.values())

    # left as found: running statistics, mode, gradients
    after = model.state_dict()
    assert all(numpy.array_equal(before[k], after[k]) for k in before)
    assert model.training and all(p.grad is None for p in model.parameters())

    tinyres.functional.cross_entropy(model(tinyres.tensor(x)), labels).backward()
    manual = numpy.linalg.norm(model.layer2[0].conv2.weight.grad.astype(numpy.float64))
    assert per_layer["layer2.0.conv2"] == pytest.approx(manual, rel=1e-6)
    assert per_parameter["layer2.0.conv2.weight"] == per_layer["layer2.0.conv2"]
    with pytest.raises(ValueError, match="'layer' or 'parameter'"):
        models.gradient_norms(model, x, labels, per="block")


def test_block_outputs_are_what_each_block_returns(rng):
    model = models.resnet20().eval()
    x = rng.standard_normal((2, 3, 32, 32)).astype(numpy.float32)
    outputs = models.block_outputs(model, x, training=False)
    assert list(outputs) == [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]
    assert outputs["layer1.0"].shape == (2, 16, 32, 32)
    assert outputs["layer3.2"].shape == (2, 64, 8, 8)
    with tinyres.no_grad():
        stem = tinyres.functional.relu(model.bn1(model.conv1(tinyres.tensor(x))))
        expected = model.layer1[0](stem).numpy()
    numpy.testing.assert_allclose(outputs["layer1.0"], expected, rtol=1e-6)
    assert not model.training


def test_plain56_gradients_spread_over_orders_of_magnitude_resnet56_not(rng, capsys):
    """The tool's use: at initialisation (BN in training mode), the conv gradient norms of a
    plain-56 span about three orders of magnitude from the first layer to the last; a
    ResNet-56's stay within about one (small 16x16 images keep this quick)."""
    tinyres.nn.init.manual_seed(0)
    x = rng.standard_normal((8, 3, 16, 16)).astype(numpy.float32)
    labels = rng.integers(0, 10, 8)
    reports = compare_gradient_norms({"plain56": models.plain56(input_size=None),
                                      "resnet56": models.resnet56(input_size=None)}, x, labels)
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split() == ["layer", "plain56", "resnet56"]
    assert len(printed.splitlines()) == 1 + 56

    def spread(norms):
        convs = [v for k, v in norms.items() if k != "fc"]
        return max(convs) / min(convs)
    assert spread(reports["plain56"]) > 20 * spread(reports["resnet56"])


# -- under no_grad, no op of a ResNet keeps an array (issue 27) ----------------------------------
def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _record_saved_arrays(monkeypatch):
    """Every (op, attribute) under which a Function keeps an array while its forward runs."""
    saved, running = [], []
    original = Function.__setattr__

    def spy(self, name, value):
        if running and isinstance(value, numpy.ndarray):
            saved.append((type(self).__name__, name))
        original(self, name, value)

    def watched(forward):
        def run(self, *arrays):
            running.append(True)
            try:
                return forward(self, *arrays)
            finally:
                running.pop()
        return run

    monkeypatch.setattr(Function, "__setattr__", spy)
    original_save = Function.save
    monkeypatch.setattr(Function, "save", lambda self, **arrays: (
        saved.extend((type(self).__name__, k) for k in arrays if self.recording),
        original_save(self, **arrays)))
    for cls in set(_subclasses(Function)):
        if "forward" in vars(cls):
            monkeypatch.setattr(cls, "forward", watched(vars(cls)["forward"]))
    return saved


def test_under_no_grad_a_function_saves_nothing(monkeypatch):
    """No op of a ResNet keeps an array for backward under no_grad() (it saved them and dropped
    them after, issue 27), nor when no input requires grad; with grad it does."""
    tinyres.manual_seed(0)
    model = tinyres.models.resnet20().to(dtype=numpy.float64)
    x = tinyres.tensor(numpy.random.default_rng(0).standard_normal((2, 3, 32, 32)))
    saved = _record_saved_arrays(monkeypatch)
    with tinyres.no_grad():
        model(x).sum()
        (x * 2.0).exp().log().max(dim=1).values @ tinyres.tensor(numpy.ones(32))
        tinyres.nn.functional.cross_entropy(model.eval()(x), [1, 2])
    assert saved == []
    (x * 2.0).exp()                                        # nothing requires grad: nothing kept
    assert saved == []
    model.train()(x).sum().backward()
    assert ("Conv2d", "x") in saved and ("ReLU", "y") in saved
