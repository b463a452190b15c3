"""Tests of tinyres.optim: the update rules by hand, against torch.optim where torch is installed,
dtype and device preservation, parameter groups, and state_dict round trips (exact resume).

Parameters here are a minimal stand-in (``.data``, ``.grad``): the optimizers need nothing more.
"""
import io
import math

import numpy
import pytest

from tinyres.backend import to_device
from tinyres.optim import (SGD, Adam, AdamW, CosineAnnealingLR, MultiStepLR, Warmup,
                           paper_schedule)


class Param:
    def __init__(self, data, grad=None):
        self.data, self.grad = data, grad


def f32(*values):
    return numpy.array(values, dtype=numpy.float32)


def run(optimizer, params, gradients):
    """One optimizer.step() per entry of ``gradients`` (a list of per-param gradient lists)."""
    for step_gradients in gradients:
        for p, g in zip(params, step_gradients):
            p.grad = g
        optimizer.step()


def random_problem(seed=0, steps=6, shapes=((3, 4), (5,))):
    rng = numpy.random.default_rng(seed)
    weights = [rng.standard_normal(s).astype(numpy.float32) for s in shapes]
    gradients = [[rng.standard_normal(s).astype(numpy.float32) for s in shapes]
                 for _ in range(steps)]
    return weights, gradients


# ----------------------------------------------------------------------------------------------
# Update rules, by hand.
# ----------------------------------------------------------------------------------------------
def test_sgd_momentum_weight_decay_by_hand():
    """w=1, lr=0.1, mu=0.9, lambda=0.01, g=0.5 each step:
    step 1: d = 0.5 + 0.01*1 = 0.51;  b = d = 0.51;  w = 1 - 0.1*0.51 = 0.949
    step 2: d = 0.5 + 0.01*0.949 = 0.50949;  b = 0.9*0.51 + 0.50949 = 0.96849;
            w = 0.949 - 0.1*0.96849 = 0.852151
    """
    p = Param(f32(1.0))
    run(SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01), [p], [[f32(0.5)]] * 2)
    assert p.data[0] == pytest.approx(0.852151, rel=1e-6)


def test_sgd_dampening_and_nesterov_by_hand():
    """Dampening tau=0.5 (mu=0.9, lr=1, g=1): b1 = 1 (first step: no dampening), w = -1;
    b2 = 0.9*1 + 0.5*1 = 1.4, w = -2.4.
    Nesterov (mu=0.9, lr=1, g=1): b1 = 1, step g + mu*b1 = 1.9, w = -1.9;
    b2 = 0.9 + 1 = 1.9, step 1 + 0.9*1.9 = 2.71, w = -4.61."""
    damped, nesterov = Param(f32(0.0)), Param(f32(0.0))
    run(SGD([damped], lr=1.0, momentum=0.9, dampening=0.5), [damped], [[f32(1.0)]] * 2)
    run(SGD([nesterov], lr=1.0, momentum=0.9, nesterov=True), [nesterov], [[f32(1.0)]] * 2)
    assert damped.data[0] == pytest.approx(-2.4, rel=1e-6)
    assert nesterov.data[0] == pytest.approx(-4.61, rel=1e-6)


def test_adam_by_hand():
    """lr=0.1, betas=(0.9, 0.999), eps=1e-8, g=2 then g=-1, w=0:
    step 1: m = 0.2, v = 0.004; m_hat = 0.2/0.1 = 2, v_hat = 0.004/0.001 = 4;
            w = 0 - 0.1 * 2 / (2 + 1e-8) = -0.1
    step 2: m = 0.18 - 0.1 = 0.08, v = 0.003996 + 0.001 = 0.004996;
            m_hat = 0.08/0.19, v_hat = 0.004996/0.001999; w = -0.1 - 0.1 * m_hat / sqrt(v_hat)
    """
    p = Param(f32(0.0))
    run(Adam([p], lr=0.1), [p], [[f32(2.0)], [f32(-1.0)]])
    expected = -0.1 - 0.1 * (0.08 / 0.19) / (math.sqrt(0.004996 / 0.001999) + 1e-8)
    assert p.data[0] == pytest.approx(expected, rel=1e-6)


def test_adam_l2_and_adamw_decoupled_decay_by_hand():
    """w=1, g=0, lr=0.1, lambda=0.5, one step.
    Adam: g = 0 + 0.5*1 = 0.5, m_hat = 0.5, v_hat = 0.25, w = 1 - 0.1 * 0.5/0.5 = 0.9.
    AdamW: w = 1 * (1 - 0.1*0.5) = 0.95, then g = 0 moves nothing: w = 0.95."""
    adam, adamw = Param(f32(1.0)), Param(f32(1.0))
    run(Adam([adam], lr=0.1, weight_decay=0.5), [adam], [[f32(0.0)]])
    run(AdamW([adamw], lr=0.1, weight_decay=0.5), [adamw], [[f32(0.0)]])
    assert adam.data[0] == pytest.approx(0.9, rel=1e-6)
    assert adamw.data[0] == pytest.approx(0.95, rel=1e-6)


# ----------------------------------------------------------------------------------------------
# Against torch.optim.
# ----------------------------------------------------------------------------------------------
OPTIMIZERS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=1e-4)),       # the paper's
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=1e-2)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)),
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("AdamW", dict(lr=1e-2)),
    ("AdamW", dict(lr=1e-2, betas=(0.85, 0.995), weight_decay=0.3)),
]
TINYRES = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}


@pytest.mark.parametrize("name, hyper", OPTIMIZERS)
def test_matches_torch_optim(name, hyper):
    torch = pytest.importorskip("torch")
    weights, gradients = random_problem(steps=8)
    params = [Param(w.copy()) for w in weights]
    mine = TINYRES[name]([{"params": params[:1]}, {"params": params[1:], "lr": 0.03}], **hyper)
    tensors = [torch.tensor(w.copy(), requires_grad=True) for w in weights]
    theirs = getattr(torch.optim, name)([{"params": tensors[:1]},
                                         {"params": tensors[1:], "lr": 0.03}], **hyper)
    for step_gradients in gradients:
        for p, t, g in zip(params, tensors, step_gradients):
            p.grad, t.grad = g, torch.tensor(g)
        mine.step()
        theirs.step()
        for p, t in zip(params, tensors):
            numpy.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------------------------
# dtype, in place, skipping, groups.
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True),
    lambda ps: Adam(ps, lr=numpy.float64(1e-3), weight_decay=1e-2),   # even a float64 lr
    lambda ps: AdamW(ps),
], ids=["SGD", "Adam", "AdamW"])
def test_update_is_in_place_keeps_float32_and_skips_missing_grads(make):
    weights, gradients = random_problem(steps=3)
    with_grad, without_grad = Param(weights[0]), Param(weights[1].copy())
    untouched = weights[1].copy()
    optimizer = make([with_grad, without_grad])
    run(optimizer, [with_grad], [[g[0]] for g in gradients])
    assert with_grad.data is weights[0] and with_grad.data.dtype == numpy.float32
    numpy.testing.assert_array_equal(without_grad.data, untouched)
    assert all(value.dtype == numpy.float32 for state in optimizer.state.values()
               for value in state.values() if isinstance(value, numpy.ndarray))
    assert id(without_grad) not in optimizer.state


def test_zero_grad_clears_gradients():
    p = Param(f32(1.0), grad=f32(3.0))
    SGD([p], lr=0.1).zero_grad()
    assert p.grad is None


def test_param_groups_take_defaults_and_own_values():
    a, b = Param(f32(0.0)), Param(f32(0.0))
    optimizer = SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1, momentum=0.9)
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, 1.0]
    assert [g["momentum"] for g in optimizer.param_groups] == [0.9, 0.9]
    run(optimizer, [a, b], [[f32(1.0), f32(1.0)]])
    assert (a.data[0], b.data[0]) == pytest.approx((-0.1, -1.0))


def test_bad_arguments_are_explained():
    p = Param(f32(0.0))
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(ValueError, match="appears twice"):
        SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match=r"unknown hyperparameter\(s\) \['momentun'\]"):
        SGD([{"params": [p], "momentun": 0.9}], lr=0.1)
    with pytest.raises(TypeError, match=r"parameters need \.data and \.grad, got ndarray"):
        SGD([f32(1.0)], lr=0.1)
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"betas = \(beta1, beta2\) in \[0, 1\)"):
        Adam([p], betas=(0.9, 1.0))


def test_updates_and_state_stay_on_the_device(backend):
    """On the leak-proof device (arrays that refuse host numpy calls, as CuPy's do) the updates
    equal the host ones, state_dict() holds host arrays, load_state_dict() moves them back."""
    xp = backend
    weights, gradients = random_problem(steps=3)
    for make in (lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True),
                 lambda ps: Adam(ps, lr=1e-2, weight_decay=1e-3),
                 lambda ps: AdamW(ps, lr=1e-2)):
        host = [Param(w.copy()) for w in weights]
        device = [Param(xp.asarray(w.copy())) for w in weights]
        device_type = type(device[0].data)
        device_optimizer = make(device)
        run(make(host), host, gradients)
        run(device_optimizer, device, [[xp.asarray(g) for g in gs] for gs in gradients])
        for h, d in zip(host, device):
            assert type(d.data) is device_type
            numpy.testing.assert_array_equal(to_device(d.data, "cpu"), h.data)
        saved = device_optimizer.state_dict()
        assert all(type(v) is numpy.ndarray or isinstance(v, (int, float))
                   for s in saved["state"].values() for v in s.values())
        restored = make(device)
        restored.load_state_dict(saved)
        assert all(type(v) is device_type for s in restored.state.values()
                   for v in s.values() if not isinstance(v, (int, float)))


# ----------------------------------------------------------------------------------------------
# state_dict: save, load, continue identically.
# ----------------------------------------------------------------------------------------------
def through_savez(state_dict):
    """Write an optimizer state to a .npz and read it back (as a checkpoint would)."""
    flat = {}
    for g, group in enumerate(state_dict["param_groups"]):
        for key, value in group.items():
            flat[f"group.{g}.{key}"] = numpy.asarray(value)
    for i, state in state_dict["state"].items():
        for key, value in state.items():
            flat[f"state.{i}.{key}"] = value
    buffer = io.BytesIO()
    numpy.savez(buffer, **flat)
    buffer.seek(0)
    loaded = dict(numpy.load(buffer))
    rebuilt = {"param_groups": [{} for _ in state_dict["param_groups"]], "state": {}}
    for name, value in loaded.items():
        kind, index, key = name.split(".")
        if kind == "group":
            rebuilt["param_groups"][int(index)][key] = value
        else:
            rebuilt["state"].setdefault(int(index), {})[key] = value
    return rebuilt


@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-4),
    lambda ps: Adam(ps, lr=1e-2, weight_decay=1e-3),
    lambda ps: AdamW([{"params": ps[:1]}, {"params": ps[1:], "lr": 0.05}], lr=1e-2),
], ids=["SGD", "Adam", "AdamW-groups"])
def test_state_dict_round_trip_continues_identically(make):
    weights, gradients = random_problem(steps=6)
    params = [Param(w.copy()) for w in weights]
    optimizer = make(params)
    run(optimizer, params, gradients[:3])
    saved = through_savez(optimizer.state_dict())
    resumed_params = [Param(p.data.copy()) for p in params]     # the weights saved with it
    resumed = make(resumed_params)
    resumed.load_state_dict(saved)
    run(optimizer, params, gradients[3:])
    run(resumed, resumed_params, gradients[3:])
    for p, q in zip(params, resumed_params):
        numpy.testing.assert_array_equal(p.data, q.data)
        assert q.data.dtype == numpy.float32
    assert all(isinstance(group["lr"], float) for group in resumed.param_groups)


def test_state_dict_is_a_copy():
    p = Param(f32(1.0))
    optimizer = SGD([p], lr=0.1, momentum=0.9)
    run(optimizer, [p], [[f32(1.0)]])
    saved = optimizer.state_dict()
    run(optimizer, [p], [[f32(1.0)]])
    assert saved["state"][0]["momentum_buffer"][0] == 1.0


def test_load_state_dict_checks_the_model_matches():
    p, q = Param(f32(1.0)), Param(f32(1.0, 2.0))
    optimizer = SGD([p], lr=0.1, momentum=0.9)
    run(optimizer, [p], [[f32(1.0)]])
    with pytest.raises(ValueError, match=r"parameter 0 has shape \(2,\), its saved state has "
                                         r"shape \(1,\)"):
        SGD([q], lr=0.1, momentum=0.9).load_state_dict(optimizer.state_dict())
    with pytest.raises(ValueError, match="group 0 has 1 parameters in the state, 2 here"):
        SGD([p, q], lr=0.1).load_state_dict(optimizer.state_dict())


# ----------------------------------------------------------------------------------------------
# Learning-rate schedules.
# ----------------------------------------------------------------------------------------------
def lrs_over(scheduler, iterations):
    """The lr of each group at iterations 0..iterations-1 (what those iterations train with)."""
    history = []
    for _ in range(iterations):
        history.append([g["lr"] for g in scheduler.optimizer.param_groups])
        scheduler.step()
    return history


def two_group_sgd(lrs=(0.1, 0.02)):
    return SGD([{"params": [Param(f32(0.0))], "lr": lrs[0]},
                {"params": [Param(f32(0.0))], "lr": lrs[1]}], lr=0.1, momentum=0.9)


def test_paper_schedule_milestones():
    """lr 0.1, divided by 10 at 32k and 48k of 64k iterations."""
    schedule = paper_schedule(SGD([Param(f32(0.0))], lr=0.1), total_iterations=64000)
    assert schedule.milestones == [32000, 48000]
    lr = lambda t: schedule.lr_at(t, 0.1)                     # noqa: E731
    assert (lr(0), lr(31999)) == pytest.approx((0.1, 0.1))
    assert (lr(32000), lr(47999)) == pytest.approx((0.01, 0.01))
    assert (lr(48000), lr(63999)) == pytest.approx((0.001, 0.001))
    assert paper_schedule(SGD([Param(f32(0.0))], lr=0.1), 42 * 30).milestones == [630, 945]


def test_paper_warmup_for_resnet110():
    """ResNet-110: lr 0.01 for the first 400 iterations, then 0.1, then the usual drops."""
    optimizer = SGD([Param(f32(0.0))], lr=0.1)
    schedule = paper_schedule(optimizer, 64000, warmup_iterations=400)
    history = [lrs[0] for lrs in lrs_over(schedule, 401)]
    assert history[0] == history[399] == 0.01 and history[400] == 0.1
    assert schedule.lr_at(32000, 0.1) == pytest.approx(0.01)


def test_multistep_and_cosine_by_hand():
    multistep = MultiStepLR(SGD([Param(f32(0.0))], lr=1.0), milestones=[2, 4], gamma=0.5)
    assert [lrs[0] for lrs in lrs_over(multistep, 6)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    cosine = CosineAnnealingLR(SGD([Param(f32(0.0))], lr=1.0), T_max=4, eta_min=0.2)
    # eta_min + (1 - eta_min) * (1 + cos(pi t / 4)) / 2 for t = 0..4
    expected = [0.2 + 0.8 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(5)]
    assert [lrs[0] for lrs in lrs_over(cosine, 5)] == pytest.approx(expected)
    assert cosine.get_last_lr() == pytest.approx([0.2 + 0.8 * (1 + math.cos(math.pi * 5 / 4)) / 2])


def torch_twin(torch, lrs=(0.1, 0.02)):
    tensors = [torch.zeros(1, requires_grad=True) for _ in lrs]
    return torch.optim.SGD([{"params": [t], "lr": lr} for t, lr in zip(tensors, lrs)],
                           lr=0.1, momentum=0.9)


def torch_lrs_over(torch_scheduler, optimizer, iterations):
    history = []
    for _ in range(iterations):
        history.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        torch_scheduler.step()
    return history


@pytest.mark.parametrize("case", ["multistep", "cosine", "warmup-constant", "warmup-linear"])
def test_schedules_match_torch(case):
    torch = pytest.importorskip("torch")
    from torch.optim import lr_scheduler as torch_lr
    theirs_optimizer = torch_twin(torch)
    mine_optimizer = two_group_sgd()
    iterations = 60
    if case == "multistep":
        mine = MultiStepLR(mine_optimizer, [10, 25, 40], gamma=0.3)
        theirs = torch_lr.MultiStepLR(theirs_optimizer, [10, 25, 40], gamma=0.3)
    elif case == "cosine":
        mine = CosineAnnealingLR(mine_optimizer, T_max=45, eta_min=1e-3)
        theirs = torch_lr.CosineAnnealingLR(theirs_optimizer, T_max=45, eta_min=1e-3)
    else:
        # Warm-up with warmup_lr = base_lr / 10 for both groups is torch's ConstantLR(factor=0.1)
        # (or LinearLR from 0.1) chained with the main schedule. Here group 0 (base 0.1).
        mine_optimizer, theirs_optimizer = two_group_sgd((0.1, 0.1)), torch_twin(torch, (0.1, 0.1))
        mode = case.split("-")[1]
        mine = Warmup(MultiStepLR(mine_optimizer, [30, 45]), 12, warmup_lr=0.01, mode=mode)
        first = (torch_lr.ConstantLR(theirs_optimizer, factor=0.1, total_iters=12)
                 if mode == "constant" else
                 torch_lr.LinearLR(theirs_optimizer, start_factor=0.1, total_iters=12))
        theirs = torch_lr.ChainedScheduler([first, torch_lr.MultiStepLR(theirs_optimizer,
                                                                       [30, 45])])
    expected = torch_lrs_over(theirs, theirs_optimizer, iterations)
    assert lrs_over(mine, iterations) == [pytest.approx(lrs, rel=1e-9) for lrs in expected]


@pytest.mark.parametrize("make", [
    lambda opt: MultiStepLR(opt, [5, 9]),
    lambda opt: CosineAnnealingLR(opt, T_max=12),
    lambda opt: Warmup(MultiStepLR(opt, [8]), 4, warmup_lr=0.001, mode="linear"),
], ids=["multistep", "cosine", "warmup"])
def test_scheduler_state_dict_round_trip(make):
    scheduler = make(two_group_sgd())
    lrs_over(scheduler, 6)
    saved = {k: numpy.asarray(v) for k, v in scheduler.state_dict().items()}   # as from savez
    resumed = make(two_group_sgd())
    resumed.load_state_dict(saved)
    assert [g["lr"] for g in resumed.optimizer.param_groups] == scheduler.get_last_lr()
    assert lrs_over(resumed, 8) == lrs_over(scheduler, 8)
