"""PyTorch's API with PyTorch's meaning (issue 26): every Tensor method, creation function and
functional op that shares a name with PyTorch computes what PyTorch computes, value and gradient.

Each case is one expression written once for both libraries (`lib` is tinyres or torch, `F` its
nn.functional). Without torch the tinyres half still runs: values against NumPy where the case
gives them, and every differentiable case through the gradient checker.
"""
import inspect

import numpy
import pytest

import tinyres
import tinyres.nn.functional as TF
from tinyres import gradcheck, nn, optim
from tinyres.errors import NotSupportedError

X_SHAPE = (2, 3, 4)

# name, expression of (lib, F, x), differentiable
CASES = [
    ("transpose(0, 1)", lambda lib, F, x: x.transpose(0, 1), True),
    ("transpose(-1, 0)", lambda lib, F, x: x.transpose(-1, 0), True),
    ("permute(2, 0, 1)", lambda lib, F, x: x.permute(2, 0, 1), True),
    ("x[0].T", lambda lib, F, x: x[0].T, True),
    ("sum(dim=1, keepdim=True)", lambda lib, F, x: x.sum(dim=1, keepdim=True), True),
    ("sum((0, 2))", lambda lib, F, x: x.sum((0, 2)), True),
    ("sum()", lambda lib, F, x: x.sum(), True),
    ("sum(axis=1, keepdims=True)", lambda lib, F, x: x.sum(axis=1, keepdims=True), True),
    ("mean(dim=-1)", lambda lib, F, x: x.mean(dim=-1), True),
    ("mean(dim=(0, 2), keepdim=True)", lambda lib, F, x: x.mean(dim=(0, 2), keepdim=True), True),
    ("max(dim=1).values", lambda lib, F, x: x.max(dim=1).values, True),
    ("max(1, keepdim=True)[0]", lambda lib, F, x: x.max(1, keepdim=True)[0], True),
    ("max()", lambda lib, F, x: x.max(), True),
    ("min(dim=0).values", lambda lib, F, x: x.min(dim=0).values, True),
    ("min()", lambda lib, F, x: x.min(), True),
    ("var(dim=1)", lambda lib, F, x: x.var(dim=1), True),
    ("var(unbiased=False)", lambda lib, F, x: x.var(unbiased=False), True),
    ("std(dim=(0, 2), keepdim=True)", lambda lib, F, x: x.std(dim=(0, 2), keepdim=True), True),
    ("std(1, correction=0)", lambda lib, F, x: x.std(1, correction=0), True),
    ("view(-1, 4)", lambda lib, F, x: x.view(-1, 4), True),
    ("view(6, 4)", lambda lib, F, x: x.view((6, 4)), True),
    ("view_as", lambda lib, F, x: x.view_as(x.reshape(4, 6)), True),
    ("flatten()", lambda lib, F, x: x.flatten(), True),
    ("flatten(1)", lambda lib, F, x: x.flatten(1), True),
    ("flatten(0, 1)", lambda lib, F, x: x.flatten(0, 1), True),
    ("lib.flatten(x, 1)", lambda lib, F, x: lib.flatten(x, 1), True),
    ("unsqueeze(1)", lambda lib, F, x: x.unsqueeze(1), True),
    ("unsqueeze(-1)", lambda lib, F, x: x.unsqueeze(-1), True),
    ("squeeze()", lambda lib, F, x: x[:, :1].squeeze(), True),
    ("squeeze(1)", lambda lib, F, x: x[:, :1].squeeze(1), True),
    ("squeeze(0) of size 2", lambda lib, F, x: x.squeeze(0), True),
    ("expand(2, 3, 4)", lambda lib, F, x: x[:, :1].expand(2, 3, 4), True),
    ("expand(5, -1, -1, -1)", lambda lib, F, x: x.expand(5, -1, -1, -1), True),
    ("expand_as", lambda lib, F, x: x[:1].expand_as(x), True),
    ("repeat(2, 1, 3)", lambda lib, F, x: x.repeat(2, 1, 3), True),
    ("repeat(2, 1, 1, 1)", lambda lib, F, x: x.repeat(2, 1, 1, 1), True),
    ("clone()", lambda lib, F, x: x.clone() * 2, True),
    ("float()", lambda lib, F, x: x.float().double(), True),
    ("to(float32)", lambda lib, F, x: x.to(lib.float32).to(dtype=lib.float64), True),
    ("lib.cat(dim=1)", lambda lib, F, x: lib.cat([x, 2 * x], dim=1), True),
    ("lib.cat(dim=-1)", lambda lib, F, x: lib.cat((x, x[:, :, :1]), -1), True),
    ("lib.stack(dim=0)", lambda lib, F, x: lib.stack([x, x * x]), True),
    ("lib.stack(dim=-1)", lambda lib, F, x: lib.stack([x, x * 3], dim=-1), True),
    ("lib.transpose", lambda lib, F, x: lib.transpose(x, 2, 1), True),
    ("lib.sum(dim)", lambda lib, F, x: lib.sum(x, 1), True),
    ("lib.mean(dim)", lambda lib, F, x: lib.mean(x, dim=2), True),
    ("F.pad (left, right)", lambda lib, F, x: F.pad(x, (1, 2)), True),
    ("F.pad option A", lambda lib, F, x: F.pad(x[:, ::2, ::2], (0, 0, 0, 0, 2, 2), "constant", 0),
     True),
    ("F.pad value", lambda lib, F, x: F.pad(x, (0, 1, 2, 0), value=0.5), True),
    ("F.softmax", lambda lib, F, x: F.softmax(x, dim=1), True),
    ("F.log_softmax", lambda lib, F, x: F.log_softmax(x, dim=-1), True),
    ("F.cross_entropy sum",
     lambda lib, F, x: F.cross_entropy(x[0], lib.tensor([1, 0, 3]), reduction="sum"), True),
    ("CrossEntropyLoss", lambda lib, F, x: lib.nn.CrossEntropyLoss()(x[1], lib.tensor([2, 2, 0])),
     True),
    ("F.conv2d padding same", lambda lib, F, x: F.conv2d(x.reshape(2, 1, 3, 4),
                                                          x[:1, :2, :3].reshape(2, 1, 3, 1),
                                                          padding="same"), True),
    ("F.relu inplace", lambda lib, F, x: F.relu(x * 1, inplace=True), True),
    ("argmax(1)", lambda lib, F, x: x.argmax(1), False),
    ("argmax()", lambda lib, F, x: x.argmax(), False),
    ("argmin(dim=2, keepdim=True)", lambda lib, F, x: x.argmin(dim=2, keepdim=True), False),
    ("max(dim=1).indices", lambda lib, F, x: x.max(dim=1).indices, False),
    ("min(2)[1]", lambda lib, F, x: x.min(2)[1], False),
    ("== and float().mean()", lambda lib, F, x: (x.argmax(1) == x.argmax(1)[:1]).float().mean(),
     False),
    ("!=", lambda lib, F, x: (x > 0) != (x > 0.5), False),
    ("long()", lambda lib, F, x: (x * 10).long(), False),
    ("zeros_like", lambda lib, F, x: lib.zeros_like(x) + lib.ones_like(x), False),
    ("full_like", lambda lib, F, x: lib.full_like(x, 7.0), False),
    ("arange", lambda lib, F, x: lib.arange(2, 11, 3), False),
    ("arange float", lambda lib, F, x: lib.arange(0.0, 1.0, 0.25), False),
    ("zeros(2, 3)", lambda lib, F, x: lib.zeros(2, 3) + lib.ones((2, 3)), False),
    ("full int", lambda lib, F, x: lib.full((2,), 3), False),
]


# a float32 round trip: finite differences in float64 would measure float32's rounding
ROUND_TRIPS = {"float()", "to(float32)"}


def _data(seed=0):
    return numpy.random.default_rng(seed).standard_normal(X_SHAPE)


def _numpy_of(t):
    return t.detach().numpy() if hasattr(t, "detach") else numpy.asarray(t)


@pytest.mark.parametrize("name, expression, differentiable", CASES, ids=[c[0] for c in CASES])
def test_tinyres_side_runs_and_differentiates(name, expression, differentiable):
    """Without torch: each case runs, and the differentiable ones pass the gradient checker."""
    x = tinyres.tensor(_data(), requires_grad=differentiable)
    y = expression(tinyres, TF, x)
    assert isinstance(y, tinyres.Tensor)
    if differentiable and name not in ROUND_TRIPS:
        gradcheck(lambda x: expression(tinyres, TF, x), [tinyres.tensor(_data(),
                                                                         requires_grad=True)])


@pytest.mark.torch
@pytest.mark.parametrize("name, expression, differentiable", CASES, ids=[c[0] for c in CASES])
def test_values_and_gradients_match_pytorch(name, expression, differentiable):
    torch = pytest.importorskip("torch")
    data = _data()
    mine = tinyres.tensor(data, requires_grad=differentiable)
    theirs = torch.tensor(data, requires_grad=differentiable)
    y, ty = expression(tinyres, TF, mine), expression(torch, torch.nn.functional, theirs)
    assert tuple(y.shape) == tuple(ty.shape), name
    assert y.dtype == numpy.dtype(str(ty.dtype).replace("torch.", "")), name
    numpy.testing.assert_allclose(_numpy_of(y), _numpy_of(ty), rtol=1e-6, atol=1e-6,
                                  err_msg=name)
    if differentiable:
        projection = numpy.random.default_rng(1).standard_normal(tuple(y.shape))
        (y * tinyres.tensor(projection, dtype=y.dtype)).sum().backward()
        (ty * torch.tensor(projection, dtype=ty.dtype)).sum().backward()
        numpy.testing.assert_allclose(mine.grad, theirs.grad.numpy(), rtol=1e-6, atol=1e-6,
                                      err_msg=name)


def test_transpose_swaps_two_dims_and_size_is_a_method():
    x = tinyres.tensor(numpy.arange(6.0).reshape(2, 3))
    assert x.transpose(0, 1).shape == (3, 2)                    # NumPy's meaning gave (2, 3)
    numpy.testing.assert_array_equal(x.transpose(0, 1).numpy(), numpy.arange(6.0).reshape(2, 3).T)
    assert x.size() == (2, 3) and x.size(1) == 3 and x.size(-2) == 2
    assert x.dim() == 2 and x.numel() == 6 and x.ndim == 2 and x.shape == (2, 3)
    values, indices = x.max(dim=1)
    numpy.testing.assert_array_equal(values.numpy(), [2.0, 5.0])
    numpy.testing.assert_array_equal(indices.numpy(), [2, 2])


def test_in_place_updates_run_under_no_grad_only():
    w = tinyres.tensor(numpy.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"add_ on a tensor that requires grad.*no_grad\(\)"):
        w.add_(1.0)
    with tinyres.no_grad():
        assert w.add_(tinyres.tensor(numpy.full(3, 2.0)), alpha=0.5) is w
        w.mul_(4.0).sub_(1.0)
    numpy.testing.assert_array_equal(w.data, [7.0, 7.0, 7.0])
    plain = tinyres.tensor(numpy.arange(3.0))
    assert plain.zero_() is plain and plain.sum().item() == 0.0
    plain.fill_(2.0).div_(4.0).copy_(plain * 2)
    numpy.testing.assert_array_equal(plain.data, [1.0, 1.0, 1.0])
    assert w.requires_grad_(False) is w and not w.requires_grad


def test_truth_and_numbers_of_a_tensor():
    one = tinyres.tensor([2.5])
    assert float(one) == 2.5 and int(one) == 2 and bool(one)
    with pytest.raises(ValueError, match="ambiguous"):
        bool(tinyres.tensor([1.0, 2.0]))                        # never silently True
    x = tinyres.tensor([1.0, 2.0])
    assert {x: 1}[x] == 1                                      # == is element-wise, hash is id


def test_creation_functions_take_pytorch_arguments():
    tinyres.manual_seed(3)
    a = tinyres.randn(2, 3, dtype=tinyres.float64, requires_grad=True)
    tinyres.manual_seed(3)
    b = tinyres.randn((2, 3), dtype=tinyres.float64)
    numpy.testing.assert_array_equal(a.data, b.data)           # one seeded generator
    assert a.requires_grad and a.dtype == numpy.float64 and a.is_leaf
    assert tinyres.zeros(2, 3).dtype == numpy.float32          # PyTorch's default dtype
    assert tinyres.rand_like(a).shape == (2, 3) and tinyres.randn_like(a).dtype == numpy.float64
    assert tinyres.arange(5).dtype == numpy.int64
    labels = tinyres.randint(0, 10, (4,))
    assert labels.dtype == numpy.int64 and labels.shape == (4,) and 0 <= labels.min().item() < 10
    assert tinyres.randint(3, (2, 2)).max().item() < 3
    assert tinyres.from_numpy(numpy.zeros(2)).dtype == numpy.float64


def test_device_strings_and_moves():
    x = tinyres.tensor([1.0, 2.0], requires_grad=True)
    assert x.to("cpu") is x and x.to(device="cpu", dtype=tinyres.float32) is x
    assert x.to("cpu", copy=True) is not x
    y = x * 2
    with pytest.raises(RuntimeError, match="does not differentiate through a device move"):
        y.to("leakproof")
    with pytest.raises(ValueError, match="unknown device 'cuda:1'"):
        x.detach().to("cuda:1")


def test_module_apply_visits_children_first_then_self():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.ReLU(), nn.Linear(2, 1)))
    seen = []
    assert model.apply(lambda m: seen.append(type(m).__name__)) is model
    assert seen == ["Linear", "ReLU", "Linear", "Sequential", "Sequential"]


def test_nn_functional_is_the_functional_floor():
    import tinyres.functional as F
    for name in TF.__all__:
        assert getattr(TF, name) is getattr(F, name)
    assert tinyres.nn.functional is TF and tinyres.nn.init.kaiming_normal_


def test_batch_norm_takes_pytorchs_argument_order():
    """A call ported by position: (input, running_mean, running_var, weight, bias, training)."""
    rng = numpy.random.default_rng(0)
    x = tinyres.tensor(rng.standard_normal((4, 3, 2, 2)))
    mean, var = numpy.zeros(3), numpy.ones(3)
    weight = tinyres.tensor(numpy.array([1.0, 2.0, 3.0]), requires_grad=True)
    bias = tinyres.tensor(numpy.zeros(3), requires_grad=True)
    y = TF.batch_norm(x, mean, var, weight, bias, True)
    numpy.testing.assert_array_equal(weight.data, [1.0, 2.0, 3.0])     # the weight untouched
    assert not numpy.allclose(mean, 0.0)                               # the running mean moved
    numpy.testing.assert_allclose(y.data.std(axis=(0, 2, 3)), [1.0, 2.0, 3.0], rtol=1e-3)


@pytest.mark.torch
def test_batch_norm_and_running_stats_match_pytorch():
    torch = pytest.importorskip("torch")
    rng = numpy.random.default_rng(5)
    data, w, b = rng.standard_normal((4, 3, 5, 5)), rng.standard_normal(3), rng.standard_normal(3)
    ours = [tinyres.tensor(v, requires_grad=True) for v in (data, w, b)]
    theirs = [torch.tensor(v, requires_grad=True) for v in (data, w, b)]
    mean, var = numpy.zeros(3), numpy.ones(3)
    t_mean, t_var = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    y = TF.batch_norm(ours[0], mean, var, ours[1], ours[2], training=True, momentum=0.2)
    ty = torch.nn.functional.batch_norm(theirs[0], t_mean, t_var, theirs[1], theirs[2],
                                        training=True, momentum=0.2)
    projection = rng.standard_normal(data.shape)
    (y * tinyres.tensor(projection)).sum().backward()
    (ty * torch.tensor(projection)).sum().backward()
    numpy.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    for mine, reference in zip(ours, theirs):
        numpy.testing.assert_allclose(mine.grad, reference.grad.numpy(), rtol=1e-9, atol=1e-10)
    numpy.testing.assert_allclose(mean, t_mean.numpy(), rtol=1e-12)
    numpy.testing.assert_allclose(var, t_var.numpy(), rtol=1e-12)


@pytest.mark.torch
def test_multistep_lr_gives_pytorchs_learning_rates():
    torch = pytest.importorskip("torch")
    mine = optim.SGD([tinyres.tensor(numpy.zeros(1), requires_grad=True)], lr=0.1, momentum=0.9)
    theirs = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
    ours = optim.lr_scheduler.MultiStepLR(mine, milestones=[2, 4], gamma=0.5)
    reference = torch.optim.lr_scheduler.MultiStepLR(theirs, milestones=[2, 4], gamma=0.5)
    for _ in range(6):
        assert ours.get_last_lr() == pytest.approx(reference.get_last_lr())
        assert ours.last_epoch == reference.last_epoch
        theirs.step()
        ours.step()
        reference.step()


# -- the audit: PyTorch's names, argument order and defaults ------------------------------------
def _pairs(torch):
    """(tinyres callable, torch callable) pairs whose signatures are compared."""
    pairs = [(getattr(TF, name), getattr(torch.nn.functional, name)) for name in
             ("relu", "log_softmax", "softmax", "cross_entropy", "dropout", "batch_norm", "pad",
              "local_response_norm", "adaptive_avg_pool2d")]
    pairs += [(getattr(nn, name).__init__, getattr(torch.nn, name).__init__) for name in
              ("Conv2d", "Linear", "BatchNorm2d", "BatchNorm1d", "MaxPool2d", "AvgPool2d",
               "AdaptiveAvgPool2d", "ReLU", "Dropout", "Flatten", "CrossEntropyLoss",
               "LocalResponseNorm")]
    pairs += [(getattr(tinyres.nn.init, name), getattr(torch.nn.init, name)) for name in
              ("kaiming_normal_", "kaiming_uniform_", "xavier_normal_", "xavier_uniform_",
               "normal_", "uniform_", "constant_", "zeros_", "ones_", "calculate_gain")]
    pairs += [(optim.SGD.__init__, torch.optim.SGD.__init__),
              (optim.Adam.__init__, torch.optim.Adam.__init__),
              (optim.lr_scheduler.MultiStepLR.__init__,
               torch.optim.lr_scheduler.MultiStepLR.__init__),
              (tinyres.nn.Module.apply, torch.nn.Module.apply)]
    return pairs


def _positional(fn):
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()
            if p.kind in kinds]


@pytest.mark.torch
def test_signatures_follow_pytorchs_names_order_and_defaults():
    """tinyres's positional parameters are PyTorch's, in order, with its defaults (a prefix:
    a later PyTorch argument is refused by Python, never taken for another); tinyres's own
    extras (name=, rng=) are keyword-only."""
    torch = pytest.importorskip("torch")
    for mine, theirs in _pairs(torch):
        ours, reference = _positional(mine), _positional(theirs)
        assert ours == reference[:len(ours)], (mine.__qualname__, ours, reference)


UNSUPPORTED = [
    (lambda: TF.pad(tinyres.zeros(1, 1, 3, 3), (1, 1), mode="reflect"), "mode='reflect'"),
    (lambda: TF.pad(tinyres.zeros(1, 3), (-1, 0)), "negative"),
    (lambda: TF.conv2d(tinyres.zeros(1, 2, 4, 4), tinyres.zeros(2, 1, 3, 3), groups=2),
     "groups=2"),
    (lambda: TF.conv2d(tinyres.zeros(1, 1, 4, 4), tinyres.zeros(1, 1, 3, 3), dilation=2),
     "dilation=2"),
    (lambda: TF.conv2d(tinyres.zeros(1, 1, 4, 4), tinyres.zeros(1, 1, 3, 3), stride=2,
                       padding="same"), "padding='same'"),
    (lambda: nn.Conv2d(1, 1, 3, padding_mode="reflect"), "padding_mode='reflect'"),
    (lambda: TF.max_pool2d(tinyres.zeros(1, 1, 4, 4), 2, ceil_mode=True), "ceil_mode=True"),
    (lambda: TF.max_pool2d(tinyres.zeros(1, 1, 4, 4), 2, return_indices=True),
     "return_indices=True"),
    (lambda: TF.avg_pool2d(tinyres.zeros(1, 1, 4, 4), 2, count_include_pad=False),
     "count_include_pad=False"),
    (lambda: TF.cross_entropy(tinyres.zeros(2, 3), [0, 1], label_smoothing=0.1),
     "label_smoothing="),
    (lambda: TF.cross_entropy(tinyres.zeros(2, 3), [0, 1], reduction="none"),
     "reduction='none'"),
    (lambda: optim.SGD([tinyres.zeros(1, requires_grad=True)], lr=0.1, maximize=True),
     "maximize=True"),
    (lambda: optim.lr_scheduler.MultiStepLR(optim.SGD([tinyres.zeros(1, requires_grad=True)]),
                                            [1], last_epoch=3), "last_epoch=3"),
    (lambda: tinyres.zeros(2).contiguous(memory_format="channels_last"),
     "memory_format='channels_last'"),
    (lambda: nn.Linear(2, 2).to(memory_format="channels_last"), "memory_format='channels_last'"),
]


@pytest.mark.parametrize("call, feature", UNSUPPORTED, ids=[u[1] for u in UNSUPPORTED])
def test_unsupported_pytorch_features_raise_one_line(call, feature):
    with pytest.raises(NotSupportedError) as error:
        call()
    message = str(error.value)
    assert feature in message and "not supported in tinyres" in message and "\n" not in message


def test_max_over_everything_shares_the_gradient_among_ties_as_pytorch():
    """PyTorch: x.max() sends 1/k of the gradient to each of k tied maxima; max(dim) sends it to
    the first maximal element of each slice."""
    x = tinyres.tensor(numpy.ones((2, 3)), requires_grad=True)
    x.max().backward()
    numpy.testing.assert_allclose(x.grad, numpy.full((2, 3), 1 / 6))
    y = tinyres.tensor(numpy.array([[1.0, 3.0, 3.0], [0.0, 0.0, -1.0]]), requires_grad=True)
    (y.min(dim=1).values.sum() + y.min(keepdim=True).sum()).backward()
    numpy.testing.assert_allclose(y.grad, [[1, 0, 0], [0, 0, 2]])


@pytest.mark.parametrize("name", ["device", "cuda", "Size", "compile"])
def test_pytorch_names_tinyres_lacks_say_what_to_use(name):
    with pytest.raises(AttributeError, match=rf"torch\.{name} is not supported in tinyres; "):
        getattr(tinyres, name)
    assert not hasattr(tinyres, name) and hasattr(tinyres, "zeros")
