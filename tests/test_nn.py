"""tinyres.nn: Module registration and traversal, modes, devices, state dicts, repr, hooks,
the layers (forward, backward, errors naming the layer's path), and initialisation.
PyTorch, where installed, is the oracle for outputs, gradients, reprs and state-dict names."""
import math

import numpy
import pytest

import tinyres
from tinyres import nn
from tinyres.backend import DeviceArray
from tinyres.nn import init


# -- a small ResNet-shaped model: two basic blocks of tinyres.nn layers ----------------------------
class Block(nn.Module):
    def __init__(self, channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + x)


class TinyNet(nn.Module):
    def __init__(self, width=4, classes=3):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = nn.Sequential(Block(width), Block(width))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(width, classes)

    def forward(self, x):
        x = tinyres.functional.relu(self.bn1(self.conv1(x)))
        return self.fc(self.flatten(self.avgpool(self.layer1(x))))


def images(shape=(2, 3, 6, 6), seed=0, dtype=numpy.float32):
    return tinyres.tensor(numpy.random.default_rng(seed).standard_normal(shape).astype(dtype))


# -- registration ---------------------------------------------------------------------------------
def test_parameters_buffers_and_children_register_in_assignment_order():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.z = nn.Parameter(numpy.zeros(2))
            self.b = nn.Linear(2, 2)
            self.register_buffer("counts", numpy.arange(3))
            self.a = nn.Parameter(numpy.ones(3))
            self.plain = 5                                    # a plain attribute, not registered

    net = Net()
    assert [n for n, _ in net.named_parameters()] == ["z", "a", "b.weight", "b.bias"]
    assert [n for n, _ in net.named_buffers()] == ["counts"]
    assert [n for n, _ in net.named_children()] == ["b"]
    assert [n for n, _ in net.named_modules()] == ["", "b"]
    assert net.plain == 5 and isinstance(net.z, nn.Parameter) and net.z.requires_grad
    assert net.num_parameters() == 2 + 3 + 4 + 2


def test_a_replaced_child_or_parameter_keeps_its_place_as_in_pytorch():
    net = TinyNet()
    before = [n for n, _ in net.named_parameters()]
    net.bn1 = nn.BatchNorm2d(4)                               # a child replaced by setattr
    net.fc.bias = nn.Parameter(numpy.zeros(net.fc.out_features))   # a parameter replaced
    assert [n for n, _ in net.named_parameters()] == before
    assert net.bn1.path == "bn1" and [n for n, _ in net.named_children()][:2] == ["conv1", "bn1"]


def test_nested_names_follow_pytorch():
    net = TinyNet()
    names = [n for n, _ in net.named_parameters()]
    assert names[:3] == ["conv1.weight", "bn1.weight", "bn1.bias"]
    assert "layer1.0.conv1.weight" in names and "layer1.1.bn2.bias" in names
    assert names[-2:] == ["fc.weight", "fc.bias"]
    assert list(net.state_dict())[:5] == ["conv1.weight", "bn1.weight", "bn1.bias",
                                          "bn1.running_mean", "bn1.running_var"]
    modules = [n for n, _ in net.named_modules()]
    assert modules[:5] == ["", "conv1", "bn1", "layer1", "layer1.0"]
    features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
    assert [n for n, _ in features.named_parameters()] == ["0.weight", "0.bias", "2.weight",
                                                           "2.bias"]


def test_reassigning_and_deleting_attributes():
    net = TinyNet()
    net.fc = nn.Linear(4, 7)                      # replaced in place, keeping its position
    assert [n for n, _ in net.named_children()][-1] == "fc" and net.fc.out_features == 7
    del net.fc
    assert "fc" not in dict(net.named_children())
    with pytest.raises(AttributeError):
        net.fc
    conv = nn.Conv2d(1, 1, 1)
    conv.bias = None                              # a declared but absent parameter
    assert [n for n, _ in conv.named_parameters()] == ["weight"]
    with pytest.raises(TypeError, match="wrap it in nn.Parameter"):
        conv.weight = numpy.zeros((1, 1, 1, 1))


def test_assigning_a_parameter_before_super_init_explains_the_fix():
    class Forgetful(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(numpy.zeros(1))

    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        Forgetful()


def test_shared_parameters_are_listed_once():
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    net[1].weight = net[0].weight
    assert len(list(net.parameters())) == 3


def test_non_persistent_buffers_are_not_saved():
    m = nn.Module()
    m.register_buffer("kept", numpy.zeros(2, dtype=numpy.float32))
    m.register_buffer("scratch", numpy.zeros(2, dtype=numpy.float32), persistent=False)
    assert [n for n, _ in m.named_buffers()] == ["kept", "scratch"]
    assert list(m.state_dict()) == ["kept"]


def test_modes_propagate_and_zero_grad_clears():
    net = TinyNet()
    assert all(m.training for m in net.modules())
    assert net.eval() is net and not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net(images()).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_apply_visits_children_before_parent():
    seen = []
    TinyNet().apply(lambda m: seen.append(type(m).__name__))
    assert seen[0] == "Conv2d" and seen[-1] == "TinyNet" and seen.count("Block") == 2


def test_to_leakproof_moves_parameters_buffers_and_grads_in_place():
    net = TinyNet()
    net(images()).sum().backward()
    params = list(net.parameters())
    assert net.to("leakproof") is net
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]   # same objects
    for tensor in list(net.parameters()) + list(net.buffers()):
        assert isinstance(tensor.data, DeviceArray)
    assert all(isinstance(p.grad, DeviceArray) for p in net.parameters())
    x = tinyres.tensor(images().numpy(), device="leakproof")
    out = net(x)                                  # the whole forward runs on the device
    assert out.device == "leakproof"
    state = net.state_dict()                      # host copies, whatever the device
    assert all(type(v) is numpy.ndarray for v in state.values())
    net.to("cpu")
    assert all(type(p.data) is numpy.ndarray for p in net.parameters())


def test_to_dtype_casts_floating_parameters():
    net = TinyNet().to(dtype=numpy.float64)
    assert {p.dtype for p in net.parameters()} == {numpy.dtype(numpy.float64)}
    assert net(images(dtype=numpy.float64)).dtype == numpy.float64


def test_layers_are_made_on_the_current_backend(backend):
    conv = nn.Conv2d(2, 3, 3)
    bn = nn.BatchNorm2d(3)
    assert type(conv.weight.data) is backend.ndarray and type(bn.running_var.data) is \
        backend.ndarray
    assert conv.weight.dtype == numpy.float32


# -- the path of a module in its model, in error messages ------------------------------------------
def test_a_layer_deep_in_a_model_names_its_path():
    net = TinyNet(width=16)
    assert net.layer1[0].conv1.path == "layer1.0.conv1"
    x = images((8, 3, 32, 32))
    with pytest.raises(ValueError) as error:
        net.layer1(x)
    assert str(error.value) == ("Conv2d layer1.0.conv1: expected input with 16 channels "
                                "(N, 16, H, W), got shape (8, 3, 32, 32)")


def test_paths_follow_modules_attached_bottom_up_and_replaced():
    block = Block(4)
    assert block.conv1.path == "conv1"
    outer = nn.Module()
    outer.stages = nn.Sequential(nn.Identity(), block)
    assert block.conv1.path == "stages.1.conv1"
    block.conv1 = nn.Conv2d(4, 4, 3, padding=1)          # replaced after attaching
    assert block.conv1.path == "stages.1.conv1"
    head = outer.stages[1:]                                # a slice keeps the model's paths
    assert block.conv1.path == "stages.1.conv1" and list(dict(head.named_children())) == ["1"]


@pytest.mark.parametrize("layer, x, message", [
    (nn.Conv2d(3, 4, 3), (3, 8, 8),
     "Conv2d: expected a 4-D input (N, C, H, W), got shape (3, 8, 8)"),
    (nn.BatchNorm2d(4), (2, 3, 5, 5),
     "BatchNorm2d: expected input with 4 channels (N, 4, H, W), got shape (2, 3, 5, 5)"),
    (nn.BatchNorm2d(4), (2, 4),
     "BatchNorm2d: expected a 4-D input (N, C, H, W), got shape (2, 4)"),
    (nn.BatchNorm1d(4), (2, 3),
     "BatchNorm1d: expected input with 4 channels (N, 4), got shape (2, 3)"),
    (nn.Linear(64, 10), (8, 256),
     "Linear: expected input with 64 features (N, 64), got shape (8, 256)"),
    (nn.MaxPool2d(2), (2, 3, 8),
     "MaxPool2d: expected a 4-D input (N, C, H, W), got shape (2, 3, 8)"),
    (nn.AdaptiveAvgPool2d(3), (2, 8, 8),
     "AdaptiveAvgPool2d: expected a 4-D input (N, C, H, W), got shape (2, 8, 8)"),
])
def test_layer_errors_state_expected_and_actual(layer, x, message):
    with pytest.raises(ValueError) as error:
        layer(images(x))
    assert str(error.value).startswith(message)


@pytest.mark.parametrize("make, message", [
    (lambda: nn.Conv2d(3, 4, 0), r"Conv2d: kernel_size must be positive, got \(0, 0\)"),
    (lambda: nn.Conv2d(0, 4, 3), "Conv2d: in_channels must be a positive int"),
    (lambda: nn.Linear(3, -1), "Linear: out_features must be a positive int"),
    (lambda: nn.BatchNorm2d(4, momentum=None), "BatchNorm2d: momentum must be"),
    (lambda: nn.AdaptiveAvgPool2d(0), "AdaptiveAvgPool2d: output_size must be positive"),
    (lambda: nn.Dropout(1.0), r"Dropout: p must be a probability in \[0, 1\)"),
])
def test_bad_layer_arguments_are_refused_at_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_linear_error_names_its_path():
    net = TinyNet()
    with pytest.raises(ValueError, match=r"^Linear fc: expected input with 4 features"):
        net.fc(images((2, 5)))


# -- hooks ----------------------------------------------------------------------------------------
def test_forward_hook_sees_activations_and_can_be_removed():
    net = TinyNet()
    seen = []
    handle = net.layer1[1].bn2.register_forward_hook(
        lambda module, inputs, output: seen.append((module.path, output.shape)))
    net(images())
    assert seen == [("layer1.1.bn2", (2, 4, 6, 6))]
    handle.remove()
    net(images())
    assert len(seen) == 1
    net.fc.register_forward_hook(lambda m, i, out: out * 0.0)   # a returned value replaces it
    assert numpy.all(net(images()).numpy() == 0)


# -- state dicts -----------------------------------------------------------------------------------
def test_state_dict_is_a_copy_and_round_trips():
    tinyres.manual_seed(1)
    source = TinyNet()
    source(images())                                   # training step: running stats change
    state = source.state_dict()
    assert "layer1.0.bn1.running_mean" in state
    assert not numpy.all(state["layer1.0.bn1.running_mean"] == 0)
    state["fc.bias"][...] = 123.0                      # editing the copy leaves the model alone
    assert not numpy.any(source.fc.bias.numpy() == 123.0)
    state = source.state_dict()

    target = TinyNet()
    result = target.load_state_dict(state)
    assert result.missing_keys == [] and result.unexpected_keys == []
    source.eval(), target.eval()
    numpy.testing.assert_array_equal(source(images()).numpy(), target(images()).numpy())


def test_load_state_dict_lists_every_problem_in_one_error_and_copies_nothing():
    net = TinyNet()
    before = net.state_dict()
    state = dict(before)
    del state["fc.bias"], state["layer1.1.bn2.running_var"]
    state["head.weight"] = numpy.zeros((3, 4), numpy.float32)
    state["conv1.weight"] = numpy.zeros((4, 1, 3, 3), numpy.float32)
    state["bn1.weight"] = numpy.full(4, 7.0, numpy.float32)     # fine, but must not be copied
    with pytest.raises(nn.StateDictError) as error:
        net.load_state_dict(state)
    message = str(error.value)
    assert "4 problems" in message
    assert "missing key 'fc.bias'" in message
    assert "missing key 'layer1.1.bn2.running_var'" in message
    assert "unexpected key 'head.weight'" in message
    assert ("shape mismatch for 'conv1.weight': the model has (4, 3, 3, 3), the state dict has "
            "(4, 1, 3, 3)") in message
    numpy.testing.assert_array_equal(net.bn1.weight.numpy(), before["bn1.weight"])


def test_load_state_dict_non_strict_returns_skipped_keys_but_refuses_shapes():
    net = TinyNet()
    state = {"fc.weight": numpy.ones((3, 4)), "extra": numpy.zeros(1)}
    result = net.load_state_dict(state, strict=False)
    assert "fc.bias" in result.missing_keys and result.unexpected_keys == ["extra"]
    assert numpy.all(net.fc.weight.numpy() == 1) and net.fc.weight.dtype == numpy.float32
    with pytest.raises(nn.StateDictError, match="shape mismatch for 'fc.weight'"):
        net.load_state_dict({"fc.weight": numpy.ones((4, 4))}, strict=False)


def test_load_state_dict_strips_module_prefix_and_ignores_num_batches_tracked():
    source, target = TinyNet(), TinyNet()
    state = {"module." + k: v.astype(numpy.float64) for k, v in source.state_dict().items()}
    state["module.bn1.num_batches_tracked"] = numpy.array(5)
    state["module.layer1.0.bn1.num_batches_tracked"] = numpy.array(5)
    target.load_state_dict(state)
    for (name, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        numpy.testing.assert_array_equal(a, b, err_msg=name)
        assert b.dtype == numpy.float32                    # cast to the parameter's dtype


def test_state_dict_aliases_let_a_model_accept_other_key_names():
    class Net(TinyNet):
        _state_dict_aliases = {"linear.": "fc."}

    source, target = Net(), nn.Sequential(Net())
    state = {k.replace("fc.", "linear."): v for k, v in source.state_dict().items()}
    Net().load_state_dict(state)
    target.load_state_dict({"0." + k: v for k, v in state.items()})   # aliases work nested too
    numpy.testing.assert_array_equal(target[0].fc.weight.numpy(), source.fc.weight.numpy())
    with pytest.raises(nn.StateDictError, match="unexpected key 'linear.weight'"):
        TinyNet().load_state_dict(state)                    # no alias declared: refused


def test_load_state_dict_keeps_the_device():
    net = TinyNet().to("leakproof")
    data = net.conv1.weight.data
    net.load_state_dict(TinyNet().state_dict())
    assert net.conv1.weight.data is data and isinstance(data, DeviceArray)


# -- repr ---------------------------------------------------------------------------------------
def test_repr_prints_the_tree():
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False),
                        nn.Sequential(nn.BatchNorm2d(16), nn.ReLU()), nn.Linear(16, 10))
    assert repr(net) == (
        "Sequential(\n"
        "  (0): Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)\n"
        "  (1): Sequential(\n"
        "    (0): BatchNorm2d(16, eps=1e-05, momentum=0.1, affine=True, bias=True, "
        "track_running_stats=True)\n"
        "    (1): ReLU()\n"
        "  )\n"
        "  (2): Linear(in_features=16, out_features=10, bias=True)\n"
        ")")
    assert repr(nn.Conv2d(3, 8, (1, 3), stride=2)) == (
        "Conv2d(3, 8, kernel_size=(1, 3), stride=(2, 2))")


# -- containers ----------------------------------------------------------------------------------
def test_sequential_indexing_iteration_and_append():
    a, b, c = nn.ReLU(), nn.Identity(), nn.Flatten()
    seq = nn.Sequential(a, b)
    assert len(seq) == 2 and list(seq) == [a, b] and seq[-1] is b and seq[0] is a
    seq.append(c)
    assert seq[2] is c and c.path == "2"
    assert list(seq[1:]) == [b, c]
    with pytest.raises(IndexError, match="out of range"):
        seq[3]
    named = nn.Sequential({"conv": nn.Conv2d(1, 1, 1), "act": nn.ReLU()})
    assert list(named.state_dict()) == ["conv.weight", "conv.bias"]


def test_identity_passes_input_through():
    x = images()
    assert nn.Identity(5, anything=1)(x) is x


# -- layers: forward and backward ------------------------------------------------------------------
def test_small_model_gradients_pass_gradcheck():
    tinyres.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                        nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))
    net.to(dtype=numpy.float64)
    x = images((3, 2, 4, 4), dtype=numpy.float64)
    x.requires_grad = True
    params = list(net.parameters())
    tinyres.gradcheck(lambda x, *p: net(x), [x, *params], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("make, shape", [
    (lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1), (2, 3, 7, 7)),
    (lambda: nn.BatchNorm2d(3), (2, 3, 4, 4)),
    (lambda: nn.BatchNorm1d(3), (4, 3, 5)),
    (lambda: nn.MaxPool2d(3, 2, 1), (2, 3, 7, 7)),
    (lambda: nn.AvgPool2d(2), (2, 3, 4, 4)),
    (lambda: nn.AdaptiveAvgPool2d(1), (2, 3, 4, 4)),
    (lambda: nn.ReLU(), (2, 3)),
    (lambda: nn.Linear(3, 2), (4, 3)),
    (lambda: nn.Flatten(), (2, 3, 2, 2)),
    (lambda: nn.Dropout(0.5), (4, 3)),
    (lambda: nn.LocalResponseNorm(3), (2, 5, 3, 3)),
])
def test_every_layer_runs_forward_and_backward_on_the_device(backend, make, shape):
    layer = make()
    x = tinyres.tensor(numpy.random.default_rng(0).standard_normal(shape), dtype=numpy.float32,
                       requires_grad=True)
    out = layer(x)
    assert type(out.data) is backend.ndarray and out.dtype == numpy.float32
    (out * out).sum().backward()
    assert type(x.grad) is backend.ndarray
    for p in layer.parameters():
        assert type(p.grad) is backend.ndarray


def test_batchnorm_updates_running_stats_only_in_training():
    bn = nn.BatchNorm2d(2, momentum=0.5)
    x = images((4, 2, 3, 3))
    bn.eval()
    out = bn(x).numpy()
    numpy.testing.assert_allclose(out, x.numpy() / math.sqrt(1 + 1e-5), rtol=1e-6)
    assert numpy.all(bn.running_mean.numpy() == 0)
    bn.train()
    bn(x)
    expected = 0.5 * x.numpy().mean(axis=(0, 2, 3))
    numpy.testing.assert_allclose(bn.running_mean.numpy(), expected, rtol=1e-5, atol=1e-7)


def test_batchnorm_without_running_stats_always_uses_the_batch():
    bn = nn.BatchNorm2d(2, affine=False, track_running_stats=False).eval()
    assert list(bn.state_dict()) == []
    out = bn(images((4, 2, 3, 3))).numpy()
    numpy.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-6)


def test_dropout_is_seeded_and_identity_in_eval():
    drop = nn.Dropout(0.25)
    x = tinyres.tensor(numpy.ones((100, 100), numpy.float32))
    tinyres.manual_seed(3)
    first = drop(x).numpy()
    tinyres.manual_seed(3)
    numpy.testing.assert_array_equal(first, drop(x).numpy())
    assert abs((first == 0).mean() - 0.25) < 0.03
    numpy.testing.assert_allclose(first[first != 0], 1 / 0.75)
    assert drop.eval()(x) is x


# -- initialisation -------------------------------------------------------------------------------
def test_kaiming_normal_has_he_std():
    tinyres.manual_seed(0)
    w = nn.Parameter(numpy.zeros((128, 64, 3, 3), numpy.float32))
    data = w.data
    assert init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu") is w
    assert w.data is data and w.dtype == numpy.float32           # in place, dtype kept
    assert abs(w.numpy().std() / math.sqrt(2 / (64 * 9)) - 1) < 0.01
    init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert abs(w.numpy().std() / math.sqrt(2 / (128 * 9)) - 1) < 0.01
    assert abs(w.numpy().mean()) < 1e-3


def test_uniform_initialisers_respect_their_bounds():
    tinyres.manual_seed(0)
    w = nn.Parameter(numpy.zeros((200, 300)))
    bound = math.sqrt(3) * math.sqrt(2) / math.sqrt(300)
    init.kaiming_uniform_(w, nonlinearity="relu")
    assert w.numpy().max() <= bound and w.numpy().max() > 0.99 * bound
    init.xavier_uniform_(w, gain=2.0)
    bound = 2.0 * math.sqrt(6 / 500)
    assert abs(w.numpy()).max() <= bound and abs(w.numpy()).max() > 0.99 * bound
    init.normal_(w, mean=1.0, std=0.5)
    assert abs(w.numpy().mean() - 1.0) < 0.01 and abs(w.numpy().std() - 0.5) < 0.01
    init.uniform_(w, -2, -1)
    assert w.numpy().min() >= -2 and w.numpy().max() <= -1
    assert numpy.all(init.ones_(w).numpy() == 1) and numpy.all(init.zeros_(w).numpy() == 0)
    assert numpy.all(init.constant_(w, 0.25).numpy() == 0.25)


def test_pytorch_default_init_of_conv_and_linear():
    tinyres.manual_seed(0)
    conv = nn.Conv2d(64, 128, 3)
    bound = 1 / math.sqrt(64 * 9)
    for p in (conv.weight, conv.bias):
        assert abs(p.numpy()).max() <= bound
    assert abs(conv.weight.numpy().std() / (bound / math.sqrt(3)) - 1) < 0.02
    linear = nn.Linear(256, 100)
    assert abs(linear.weight.numpy()).max() <= 1 / 16 and abs(linear.bias.numpy()).max() <= 1 / 16
    bn = nn.BatchNorm2d(5)
    assert numpy.all(bn.weight.numpy() == 1) and numpy.all(bn.bias.numpy() == 0)


def test_float64_draws_are_the_generators_own():
    """Drawing in the parameter's dtype changes nothing in float64: the numbers are exactly
    Generator.uniform's and Generator.normal's for the same seed."""
    w = numpy.zeros((64, 3, 3, 3))
    bound = 1 / math.sqrt(27)
    tinyres.manual_seed(5)
    init.uniform_(w, -bound, bound)
    numpy.testing.assert_array_equal(w, numpy.random.default_rng(5).uniform(-bound, bound,
                                                                            w.shape))
    tinyres.manual_seed(5)
    init.normal_(w, 0.5, 2.0)
    numpy.testing.assert_array_equal(w, numpy.random.default_rng(5).normal(0.5, 2.0, w.shape))


def test_float32_draws_keep_the_distribution_and_its_bounds():
    tinyres.manual_seed(0)
    w = nn.Parameter(numpy.zeros((256, 1024), numpy.float32))
    bound = numpy.float32(1 / math.sqrt(1024))
    init.default_layer_init_(w)                     # U(-bound, bound): variance bound^2 / 3
    assert -bound <= w.numpy().min() and w.numpy().max() <= bound
    assert w.numpy().max() > 0.999 * bound and w.numpy().min() < -0.999 * bound
    assert abs(w.numpy().var() / (bound ** 2 / 3) - 1) < 0.01
    init.uniform_(w, 0.1, 0.3)                      # asymmetric bounds hold after rounding too
    assert w.numpy().min() >= numpy.float32(0.1) and w.numpy().max() <= numpy.float32(0.3)
    noncontiguous = numpy.zeros((8, 512), numpy.float32)[:, ::2]
    init.normal_(noncontiguous, 0.0, 0.01)         # drawn aside, then copied in
    assert noncontiguous.dtype == numpy.float32 and abs(noncontiguous.std() - 0.01) < 1e-3


def test_skip_default_weight_init_leaves_weights_for_the_model_to_draw():
    with init.skip_default_weight_init():
        conv, linear = nn.Conv2d(3, 4, 3), nn.Linear(5, 2)
    assert not conv.weight.numpy().any() and not linear.weight.numpy().any()
    assert conv.bias.numpy().all() and linear.bias.numpy().all()    # biases keep their default
    assert nn.Conv2d(3, 4, 3).weight.numpy().all()                  # outside: the default again


def test_manual_seed_repeats_weights_on_every_device():
    tinyres.manual_seed(7)
    a = nn.Conv2d(3, 4, 3).weight.numpy()
    tinyres.manual_seed(7)
    w = nn.Parameter(numpy.zeros((4, 3, 3, 3), numpy.float32)).to("leakproof")
    init.default_layer_init_(w)
    assert isinstance(w.data, DeviceArray)
    numpy.testing.assert_array_equal(w.numpy(), a)
    state = init.get_rng_state()
    draw = init.generator().random(3)
    init.set_rng_state(state)
    numpy.testing.assert_array_equal(init.generator().random(3), draw)


def test_fan_and_gain_errors():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.kaiming_normal_(nn.Parameter(numpy.zeros(5)))
    with pytest.raises(ValueError, match="mode must be"):
        init.kaiming_normal_(nn.Parameter(numpy.zeros((2, 2))), mode="fan")
    with pytest.raises(ValueError, match="unknown nonlinearity"):
        init.calculate_gain("swish")


# -- PyTorch as the oracle ------------------------------------------------------------------------
@pytest.mark.torch
def test_gains_match_pytorch():
    torch = pytest.importorskip("torch")
    for name, param in [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None),
                        ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2),
                        ("selu", None)]:
        assert init.calculate_gain(name, param) == pytest.approx(
            torch.nn.init.calculate_gain(name, param))


@pytest.mark.torch
def test_reprs_match_pytorch_exactly():
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    pairs = [
        (nn.Conv2d(3, 16, 3, padding=1, bias=False), tnn.Conv2d(3, 16, 3, padding=1, bias=False)),
        (nn.Conv2d(16, 32, 1, stride=2), tnn.Conv2d(16, 32, 1, stride=2)),
        (nn.Conv2d(3, 64, (7, 5), 2, (3, 2)), tnn.Conv2d(3, 64, (7, 5), 2, (3, 2))),
        (nn.BatchNorm2d(16), tnn.BatchNorm2d(16)),
        (nn.BatchNorm2d(8, eps=2e-5, momentum=0.9, affine=False, track_running_stats=False),
         tnn.BatchNorm2d(8, eps=2e-5, momentum=0.9, affine=False, track_running_stats=False)),
        (nn.BatchNorm1d(10, bias=False), tnn.BatchNorm1d(10, bias=False)),
        (nn.Linear(64, 10), tnn.Linear(64, 10)),
        (nn.Linear(3, 2, bias=False), tnn.Linear(3, 2, bias=False)),
        (nn.ReLU(), tnn.ReLU()),
        (nn.ReLU(inplace=True), tnn.ReLU(inplace=True)),
        (nn.AvgPool2d(2), tnn.AvgPool2d(2)),
        (nn.AdaptiveAvgPool2d((1, 1)), tnn.AdaptiveAvgPool2d((1, 1))),
        (nn.LocalResponseNorm(5, k=2.0), tnn.LocalResponseNorm(5, k=2.0)),
        (nn.Identity(), tnn.Identity()),
        (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.BatchNorm2d(2), nn.ReLU())),
         tnn.Sequential(tnn.Conv2d(1, 2, 3), tnn.Sequential(tnn.BatchNorm2d(2), tnn.ReLU()))),
    ]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)


def _torch_twin(torch):
    """TinyNet in PyTorch, its blocks the one PyTorch CIFAR ResNet's (tinyres/bench/)."""
    from tinyres.bench.torch_resnet import CifarBasicBlock

    class TorchNet(torch.nn.Module):
        def __init__(self, width=4, classes=3):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(3, width, 3, padding=1, bias=False)
            self.bn1 = torch.nn.BatchNorm2d(width)
            self.layer1 = torch.nn.Sequential(CifarBasicBlock(width, width),
                                              CifarBasicBlock(width, width))
            self.avgpool = torch.nn.AdaptiveAvgPool2d(1)
            self.flatten = torch.nn.Flatten()
            self.fc = torch.nn.Linear(width, classes)

        def forward(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            return self.fc(self.flatten(self.avgpool(self.layer1(x))))

    return TorchNet


@pytest.mark.torch
def test_a_pytorch_state_dict_loads_and_gives_the_same_outputs_and_gradients():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    theirs = _torch_twin(torch)()
    with torch.no_grad():                          # make batch norm's running stats non-trivial
        for _ in range(2):
            theirs(torch.randn(4, 3, 6, 6))
    exported = {k: v.numpy() for k, v in theirs.state_dict().items()}
    assert any(k.endswith("num_batches_tracked") for k in exported)
    ours = TinyNet()
    ours.load_state_dict(exported)
    assert list(ours.state_dict()) == [k for k in exported if "num_batches_tracked" not in k]

    x = images((2, 3, 6, 6), seed=5)
    theirs.eval(), ours.eval()
    numpy.testing.assert_allclose(ours(x).numpy(), theirs(torch.from_numpy(x.numpy())).detach(),
                                  rtol=1e-4, atol=1e-5)

    theirs.train(), ours.train()                  # training mode: batch statistics, updates
    x_torch = torch.from_numpy(x.numpy())
    theirs(x_torch).pow(2).sum().backward()
    (ours(x) ** 2).sum().backward()
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
        numpy.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-3, atol=1e-5, err_msg=name)
    for name, value in theirs.state_dict().items():
        if "running" in name:
            numpy.testing.assert_allclose(ours.state_dict()[name], value.numpy(), rtol=1e-5,
                                          atol=1e-6, err_msg=name)

    back = _torch_twin(torch)()                    # and the way back, strictly
    back.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    back.eval(), ours.eval()
    numpy.testing.assert_allclose(ours(x).numpy(), back(x_torch).detach(), rtol=1e-4, atol=1e-5)


@pytest.mark.torch
def test_small_layers_match_pytorch():
    torch = pytest.importorskip("torch")
    x4 = images((2, 6, 8, 8), seed=2)
    t4 = torch.from_numpy(x4.numpy())
    cases = [
        (nn.MaxPool2d(3, 2, 1), torch.nn.MaxPool2d(3, 2, 1), x4, t4),
        (nn.AvgPool2d(2), torch.nn.AvgPool2d(2), x4, t4),
        (nn.AdaptiveAvgPool2d(2), torch.nn.AdaptiveAvgPool2d(2), x4, t4),
        (nn.AdaptiveAvgPool2d((3, 5)), torch.nn.AdaptiveAvgPool2d((3, 5)), x4, t4),
        (nn.AdaptiveAvgPool2d(1), torch.nn.AdaptiveAvgPool2d(1), x4, t4),
        (nn.LocalResponseNorm(3, alpha=1e-2, k=2.0), torch.nn.LocalResponseNorm(3, 1e-2, 0.75, 2.0),
         x4, t4),
    ]
    x3 = images((4, 5, 7), seed=3)
    x2 = images((4, 5), seed=4)
    for x in (x3, x2):
        theirs = torch.nn.BatchNorm1d(5)
        ours = nn.BatchNorm1d(5)
        ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
        cases.append((ours, theirs, x, torch.from_numpy(x.numpy())))
    for ours, theirs, x, t in cases:
        numpy.testing.assert_allclose(ours(x).numpy(), theirs(t).detach().numpy(), rtol=1e-5,
                                      atol=1e-6, err_msg=repr(ours))
