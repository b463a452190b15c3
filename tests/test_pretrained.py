"""Weights trained in PyTorch load into tinyres and give PyTorch's outputs.

The reference files in tests/data were written by tools/export_pytorch_resnet.py: a CIFAR
ResNet-20 in the common PyTorch layout (option-A shortcut, classifier "linear"), trained for a
few epochs on the CIFAR-10 subset, its state dict, its logits on the first 256 test images and
its accuracy on all 1,017. Those tests need no torch. Where torch is installed, the tests below
them export randomly initialised PyTorch networks (CIFAR ResNet-56, and torchvision's ImageNet
layout) and compare outputs, batch norm statistics and gradients directly.
"""
import importlib.util
import json
from pathlib import Path

import numpy
import pytest

import tinyres
from tinyres import models
from tinyres.data import CIFAR10, bundled_sample
from tinyres.functional import cross_entropy

DATA = Path(__file__).parent / "data"
WEIGHTS = DATA / "resnet20_pytorch.npz"
REFERENCE = DATA / "resnet20_pytorch_reference.npz"
TOOL = Path(__file__).resolve().parents[1] / "tools" / "export_pytorch_resnet.py"


def normalise(images, mean, std):
    """As the export script: uint8 -> float32 (x / 255 - mean) / std per channel."""
    x = images.astype(numpy.float32) / numpy.float32(255)
    return (x - mean.reshape(1, 3, 1, 1)) / std.reshape(1, 3, 1, 1)


def logits_of(model, x, batch=256):
    with tinyres.no_grad():
        return numpy.concatenate([model(tinyres.tensor(x[i:i + batch])).numpy()
                                  for i in range(0, len(x), batch)])


@pytest.fixture(scope="module")
def reference():
    return numpy.load(REFERENCE)


@pytest.fixture(scope="module")
def pytorch_resnet20():
    model = models.resnet20()
    model.load_state_dict(numpy.load(WEIGHTS))       # keys "linear.*" land in "fc.*"
    return model.eval()


def test_reference_files_are_small_and_complete(reference):
    assert WEIGHTS.stat().st_size < 1_300_000
    state = numpy.load(WEIGHTS)
    assert "linear.weight" in state and state["conv1.weight"].dtype == numpy.float32
    assert reference["logits"].shape == (256, 10) and reference["predictions"].shape == (1017,)
    assert json.loads(str(reference["info"]))["test_images"] == 1017


@pytest.fixture(scope="module")
def first_images_and_logits(pytorch_resnet20, reference):
    """The first 256 test images and tinyres's logits for them. The first 512 test images of
    the subset are also bundled with tinyres, so this needs no data set."""
    images = bundled_sample(train=False).images[:256]
    x = normalise(images, reference["mean"], reference["std"])
    return images, logits_of(pytorch_resnet20, x)


def test_pytorch_logits_on_the_first_test_images(first_images_and_logits, reference):
    _, logits = first_images_and_logits
    expected = reference["logits"]
    scale = numpy.abs(expected).max()
    numpy.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4 * scale)
    numpy.testing.assert_array_equal(logits.argmax(1), reference["predictions"][:256])


def test_pytorch_accuracy_on_the_whole_test_subset(pytorch_resnet20, reference,
                                                   first_images_and_logits, cifar_subset):
    test_set = CIFAR10(cifar_subset, train=False, download=False)
    assert len(test_set) == 1017
    first_images, first_logits = first_images_and_logits
    numpy.testing.assert_array_equal(test_set.images[:256], first_images)
    rest = normalise(test_set.images[256:], reference["mean"], reference["std"])
    logits = numpy.concatenate([first_logits, logits_of(pytorch_resnet20, rest)])
    predictions = logits.argmax(1)
    correct = int((predictions == test_set.labels).sum())
    assert correct / len(test_set) == float(reference["accuracy"])
    assert correct == int(reference["correct"])
    assert (predictions == reference["predictions"]).all()


# -- live comparisons with PyTorch ---------------------------------------------------------------
@pytest.fixture(scope="module")
def tool():
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location("export_pytorch_resnet", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_close(actual, expected, tolerance=1e-4):
    """Equal to float32 accuracy, relative to the array's scale."""
    expected = numpy.asarray(expected)
    numpy.testing.assert_allclose(actual, expected, rtol=tolerance,
                                  atol=tolerance * numpy.abs(expected).max())


@pytest.mark.torch
def test_pytorch_resnet56_exported_gives_the_same_outputs(tool, tmp_path, rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = tool.randomize_batch_norm(tool.CifarResNet(56), torch.Generator().manual_seed(0))
    path = tmp_path / "resnet56.npz"
    tool.export_state_dict(net, path)
    model = models.resnet56()
    model.load_state_dict(numpy.load(path))

    x = rng.standard_normal((4, 3, 32, 32)).astype(numpy.float32)
    labels = numpy.array([0, 3, 9, 1])
    with torch.no_grad():
        expected = net.eval()(torch.from_numpy(x)).numpy()
    assert_close(logits_of(model.eval(), x), expected)

    # Training mode: batch statistics, the running-average update, and the gradients, in
    # float64. (In float32 a pre-activation within rounding of 0 can land on the other side of
    # a ReLU in one implementation, which changes the gradient below it by O(1) there.)
    net.double().train(), model.to(dtype=numpy.float64).train()
    x64, labels = x[:2].astype(numpy.float64), labels[:2]
    xt = torch.from_numpy(x64).requires_grad_(True)
    torch_loss = torch.nn.functional.cross_entropy(net(xt), torch.from_numpy(labels))
    torch_loss.backward()
    xs = tinyres.tensor(x64, requires_grad=True)
    loss = cross_entropy(model(xs), labels)
    loss.backward()
    assert loss.item() == pytest.approx(torch_loss.item(), rel=1e-10)
    assert_close(xs.grad, xt.grad.numpy(), 1e-9)
    torch_params = dict(net.named_parameters())
    for name, param in model.named_parameters():
        assert_close(param.grad, torch_params[name.replace("fc.", "linear.")].grad.numpy(),
                     1e-9)
    state, torch_state = model.state_dict(), tool.state_dict_arrays(net)
    for key in ("bn1.running_mean", "layer2.0.bn1.running_var", "layer3.8.bn2.running_var"):
        assert_close(state[key], torch_state[key], 1e-9)


@pytest.mark.torch
@pytest.mark.parametrize("depth, stride_in_1x1",
                         [(18, False), pytest.param(50, False, marks=pytest.mark.slow)])
def test_torchvision_layout_imagenet_resnet_gives_the_same_logits(tool, tmp_path, rng, depth,
                                                                  stride_in_1x1):
    torch = pytest.importorskip("torch")
    torch.manual_seed(depth)
    net = tool.ImageNetResNet(depth, num_classes=20, stride_in_1x1=stride_in_1x1)
    tool.randomize_batch_norm(net, torch.Generator().manual_seed(1)).eval()
    path = tmp_path / f"resnet{depth}.npz"
    tool.export_state_dict(net, path)                # torchvision's names, unchanged
    kwargs = {"stride_in_1x1": True} if stride_in_1x1 else {}
    model = models.imagenet_resnet(depth, num_classes=20, **kwargs)
    model.load_state_dict(numpy.load(path))          # num_batches_tracked is ignored
    x = rng.standard_normal((2, 3, 64, 64)).astype(numpy.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert_close(logits_of(model.eval(), x), expected)
