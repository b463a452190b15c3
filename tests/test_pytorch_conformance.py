"""A learner's PyTorch model code runs on tinyres with only the import changed (issue 26).

tests/torch_idiom_models.py is written against `torch` (a CIFAR ResNet with option-A lambda
shortcuts, a small VGG, a training loop). Here it is imported with ``sys.modules`` mapping
torch, torch.nn, torch.nn.functional, torch.nn.init and torch.optim to tinyres's modules: it must
build, run and train on tinyres alone (no torch needed), and, where torch is installed, load the
state dict of the same file's PyTorch model and give PyTorch's logits and losses in float64.
"""
import importlib.util
import pathlib
import sys

import numpy
import pytest

import tinyres

MODEL_FILE = pathlib.Path(__file__).with_name("torch_idiom_models.py")
TINYRES_AS_TORCH = {"torch": tinyres, "torch.nn": tinyres.nn,
                    "torch.nn.functional": tinyres.nn.functional, "torch.nn.init": tinyres.nn.init,
                    "torch.optim": tinyres.optim}


def load_model_file(name, modules):
    """Import the model file as module `name` while `modules` stand in sys.modules (restored
    afterwards: the loaded module keeps the modules it imported)."""
    saved = {key: sys.modules.get(key) for key in modules}
    sys.modules.update(modules)
    try:
        spec = importlib.util.spec_from_file_location(name, MODEL_FILE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        for key, value in saved.items():
            if value is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = value
    return module


@pytest.fixture(scope="module")
def on_tinyres():
    return load_model_file("torch_idiom_models_on_tinyres", TINYRES_AS_TORCH)


def batch(lib, seed=0, n=8, size=16):
    rng = numpy.random.default_rng(seed)
    images = rng.standard_normal((n, 3, size, size))
    labels = rng.integers(0, 10, n)
    return lib.tensor(images), lib.tensor(labels)


def test_the_import_swap_binds_tinyres(on_tinyres):
    assert on_tinyres.torch is tinyres and on_tinyres.F is tinyres.nn.functional
    assert on_tinyres.init is tinyres.nn.init and on_tinyres.nn is tinyres.nn


@pytest.mark.parametrize("build", ["resnet8", "VGG"])
def test_the_pytorch_file_builds_runs_and_trains_on_tinyres(on_tinyres, build):
    tinyres.manual_seed(0)
    model = getattr(on_tinyres, build)().double()
    images, labels = batch(tinyres)
    assert model(images).shape == (8, 10)
    keys = list(model.state_dict())
    if build == "resnet8":                              # PyTorch's names, the lambda has none
        assert keys[:3] == ["conv1.weight", "bn1.weight", "bn1.bias"]
        assert "layer2.0.bn2.running_var" in keys and keys[-2:] == ["linear.weight",
                                                                    "linear.bias"]
    losses, accuracy = on_tinyres.train_steps(model, images, labels, steps=4)
    assert all(numpy.isfinite(losses)) and losses[-1] < losses[0]
    assert 0.0 <= accuracy <= 1.0


def _torch_twin(torch, on_torch, build, tinyres_model, seed):
    """The same file's PyTorch model, with random BN statistics (so eval mode is tested), its
    state dict loaded into the tinyres model."""
    torch.manual_seed(seed)
    theirs = getattr(on_torch, build)(**({"dropout": 0.0} if build == "VGG" else {})).double()
    generator = torch.Generator().manual_seed(seed)
    for module in theirs.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            c = module.num_features
            module.running_mean.copy_(torch.randn(c, generator=generator, dtype=torch.float64))
            module.running_var.copy_(torch.rand(c, generator=generator, dtype=torch.float64) + .5)
            module.weight.data.copy_(torch.randn(c, generator=generator, dtype=torch.float64))
            module.bias.data.copy_(torch.randn(c, generator=generator, dtype=torch.float64))
    state = {key: value.numpy() for key, value in theirs.state_dict().items()}
    result = tinyres_model.load_state_dict(state)
    assert result.missing_keys == [] and result.unexpected_keys == []
    return theirs


@pytest.mark.torch
@pytest.mark.parametrize("build", ["resnet8", pytest.param("resnet20", marks=pytest.mark.slow),
                                   "VGG"])
def test_same_logits_and_training_as_pytorch(on_tinyres, build):
    torch = pytest.importorskip("torch")
    on_torch = load_model_file("torch_idiom_models_on_torch", {})
    assert on_torch.torch is torch
    kwargs = {"dropout": 0.0} if build == "VGG" else {}   # no random masks in the comparison
    mine = getattr(on_tinyres, build)(**kwargs).double()
    theirs = _torch_twin(torch, on_torch, build, mine, seed=1)
    images, labels = batch(tinyres, seed=2)
    t_images, t_labels = batch(torch, seed=2)
    for mode in ("eval", "train"):
        getattr(mine, mode)(), getattr(theirs, mode)()
        with tinyres.no_grad(), torch.no_grad():
            numpy.testing.assert_allclose(mine(images).numpy(), theirs(t_images).numpy(),
                                          rtol=1e-9, atol=1e-10, err_msg=f"{build} {mode}")
    losses, accuracy = on_tinyres.train_steps(mine, images, labels, steps=3)
    t_losses, t_accuracy = on_torch.train_steps(theirs, t_images, t_labels, steps=3)
    numpy.testing.assert_allclose(losses, t_losses, rtol=1e-7)
    assert accuracy == t_accuracy
    for key, value in theirs.state_dict().items():          # the same weights after 3 steps
        if not key.endswith("num_batches_tracked"):
            numpy.testing.assert_allclose(mine.state_dict()[key], value.numpy(), rtol=1e-6,
                                          atol=1e-9, err_msg=key)
