"""Example 3: batch normalisation — statistics, normalisation, running averages, train vs eval,
and the backward formula checked numerically.

Per channel c, over the m = N*H*W values it has in a batch:

    mean_c = sum(x) / m,    var_c = sum((x - mean_c)^2) / m
    x_hat = (x - mean_c) / sqrt(var_c + eps),    y = gamma_c * x_hat + beta_c

    python examples/03_batch_norm.py          # a few seconds
    python examples/03_batch_norm.py --step   # pause between the steps

The code: tinyres/functional/batchnorm.py (the closed form), batchnorm_graph.py (the same from
primitive ops) and tinyres/nn/norm.py; the math: docs/batchnorm.md.
"""
import time

import numpy

import tinyres
import tinyres.functional as F
from tinyres import nn
from tinyres.functional.batchnorm_graph import batch_norm_graph
from tinyres.gradcheck import gradcheck

from lesson import Lesson, table, relative_error

lesson = Lesson(__file__, __doc__)
rng = lesson.rng
EPS = 1e-5
TRUE_MEAN = numpy.array([5.0, -2.0, 0.0])          # three channels, each with its own
TRUE_STD = numpy.array([2.0, 0.5, 1.0])             # centre and spread


def batch(n, h=2):
    """n images of 3 channels, h x h, channel c drawn from N(TRUE_MEAN[c], TRUE_STD[c]^2)."""
    z = rng.standard_normal((n, 3, h, h))
    return TRUE_MEAN.reshape(1, 3, 1, 1) + TRUE_STD.reshape(1, 3, 1, 1) * z


# -------------------------------------------------------------------------------------------
lesson.step("batch statistics, per channel")
x = batch(4)                                                 # (N, C, H, W) = (4, 3, 2, 2)
m = x.shape[0] * x.shape[2] * x.shape[3]
mean = x.mean(axis=(0, 2, 3))                                # (C,)
var = ((x - mean.reshape(1, 3, 1, 1)) ** 2).mean(axis=(0, 2, 3))   # (C,) biased: / m
print(f"x {x.shape}: each channel's statistics average m = N*H*W = {m} values")
table(["channel", "batch mean", "batch var (/m)", "drawn from mean", "drawn from var"],
      [(c, mean[c], var[c], TRUE_MEAN[c], TRUE_STD[c] ** 2) for c in range(3)],
      {1: "{:+.4f}", 2: "{:.4f}", 3: "{:+.1f}", 4: "{:.2f}"})

# -------------------------------------------------------------------------------------------
lesson.step("normalise, then scale and shift")
gamma, beta = numpy.array([1.0, 2.0, 0.5]), numpy.array([0.0, 1.0, -1.0])
x_hat = (x - mean.reshape(1, 3, 1, 1)) / numpy.sqrt(var.reshape(1, 3, 1, 1) + EPS)
y_hand = gamma.reshape(1, 3, 1, 1) * x_hat + beta.reshape(1, 3, 1, 1)
y = F.batch_norm(tinyres.tensor(x), None, None, tinyres.tensor(gamma), tinyres.tensor(beta),
                 training=True, eps=EPS)
print("x_hat per channel: mean", x_hat.mean(axis=(0, 2, 3)), " var", x_hat.var(axis=(0, 2, 3)))
print("(zero mean and unit variance, up to eps); y = gamma * x_hat + beta then gives each")
print("channel the mean beta and the standard deviation gamma the network learns:")
print("y per channel: mean", y.numpy().mean(axis=(0, 2, 3)), " std", y.numpy().std(axis=(0, 2, 3)))
print(f"F.batch_norm against the formulas: max relative difference "
      f"{relative_error(y.numpy(), y_hand):.1e}")

# -------------------------------------------------------------------------------------------
lesson.step("running averages: what evaluation will use")
bn = nn.BatchNorm2d(3)
print(bn)
print("running = (1 - momentum) * running + momentum * batch statistic, momentum 0.1;")
print("the variance averaged is the unbiased one, var * m / (m - 1).")
steps = lesson.pick(60, 20)
history = []
for i in range(1, steps + 1):
    bn(tinyres.tensor(batch(8).astype(numpy.float32)))       # training mode: updates them
    history.append((bn.running_mean.numpy().copy(), bn.running_var.numpy().copy()))
    if i in (1, 2, 5, 10, 20, steps):
        mean_i, var_i = history[-1]
        print(f"after {i:2d} batches: running_mean {mean_i}, running_var {var_i}")
print(f"they approach the true mean {TRUE_MEAN} and variance {TRUE_STD ** 2} from the start")
print("values 0 and 1, like 1 - 0.9^k: about 20 batches to get most of the way.")
fig, (left, right) = lesson.figure(1, 2, figsize=(9, 3.2))
for c in range(3):
    left.plot([h[0][c] for h in history], label=f"channel {c}")
    left.axhline(TRUE_MEAN[c], color="0.6", linestyle=":")
    right.plot([h[1][c] for h in history], label=f"channel {c}")
    right.axhline(TRUE_STD[c] ** 2, color="0.6", linestyle=":")
left.set_title("running_mean (dotted: the true mean)")
right.set_title("running_var (dotted: the true variance)")
for ax in (left, right):
    ax.set_xlabel("training batches")
    ax.legend(fontsize=8)
lesson.save(fig, "running_averages.png")

# -------------------------------------------------------------------------------------------
lesson.step("train vs eval: one image, two different batches")
image = batch(1).astype(numpy.float32)
others = [batch(3).astype(numpy.float32), batch(3).astype(numpy.float32) + 3.0]
for mode in ("train", "eval"):
    getattr(bn, mode)()
    outs = [bn(tinyres.tensor(numpy.concatenate([image, o]))).numpy()[0] for o in others]
    prefix = f"{mode:5s} mode: the image's channel-0 output "
    print(f"{prefix}in batch A {outs[0][0].ravel()}")
    print(f"{'':{len(prefix)}s}in batch B {outs[1][0].ravel()}")
bn.eval()
scale = bn.weight.numpy() / numpy.sqrt(bn.running_var.numpy() + bn.eps)
shift = bn.bias.numpy() - bn.running_mean.numpy() * scale
alone = bn(tinyres.tensor(image)).numpy()
affine = scale.reshape(1, 3, 1, 1) * image + shift.reshape(1, 3, 1, 1)
print("In training an image's output depends on its batch mates (the batch statistics); in")
print("evaluation BN is a fixed per-channel affine map y = scale * x + shift:")
print(f"   scale {scale}, shift {shift}; max difference from bn(x): "
      f"{numpy.abs(alone - affine).max():.1e}")

# -------------------------------------------------------------------------------------------
lesson.step("the backward, two ways: the closed form, and autograd through primitive ops")
print("closed form (batch_norm_train_backward): per channel,")
print("    dx = (gamma * inv_std / m) * (m*dy - sum(dy) - x_hat * sum(dy * x_hat))")
print("graph (batch_norm_graph): mean, -, *, /, ** ops, each with its own backward")
dy = rng.standard_normal(x.shape)
inv_std = 1.0 / numpy.sqrt(var + EPS)
gamma_t, beta_t = tinyres.tensor(gamma), tinyres.tensor(beta)


def closed_form(x):
    return F.batch_norm(x, None, None, gamma_t, beta_t, training=True, eps=EPS)


def graph(x):
    return batch_norm_graph(x, gamma_t, beta_t, EPS)


def dx_and_backward_seconds(norm, x, dy):
    leaf = tinyres.tensor(x, requires_grad=True)
    y = norm(leaf)
    start = time.perf_counter()
    y.backward(dy)
    return leaf.grad, time.perf_counter() - start


dx_closed, _ = dx_and_backward_seconds(closed_form, x, dy)
dx_graph, _ = dx_and_backward_seconds(graph, x, dy)
print(f"closed form vs autograd through mean, -, *, /, ** ops:  "
      f"{relative_error(dx_closed, dx_graph):.1e}")
big = rng.standard_normal((128, 3, 32, 32))
big_dy = rng.standard_normal(big.shape)
seconds = {name: min(dx_and_backward_seconds(norm, big, big_dy)[1] for _ in range(3))
           for name, norm in (("closed form", closed_form), ("graph", graph))}
print(f"backward of a (128, 3, 32, 32) batch, best of 3: closed form "
      f"{1e3 * seconds['closed form']:.1f} ms, graph of primitive ops "
      f"{1e3 * seconds['graph']:.1f} ms ({seconds['graph'] / seconds['closed form']:.1f}x)")
xc = tinyres.tensor(x[:, :, :1, :].copy(), requires_grad=True)
gc, bc = tinyres.tensor(gamma, requires_grad=True), tinyres.tensor(beta, requires_grad=True)
report = gradcheck(lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True), [xc, gc, bc])
print(f"finite differences (gradcheck, dx, dgamma, dbeta): {report}")

# -------------------------------------------------------------------------------------------
lesson.step("the sum trap: why the check must not use dy = ones")
ones = numpy.ones_like(x)


def dx_of(dy, forget_variance_term=False):
    """dL/dx by F.batch_norm's backward; 'buggy' adds back the term that a backward which forgot
    the variance's dependence on x would lack."""
    dx, _ = dx_and_backward_seconds(closed_form, x, dy)
    if not forget_variance_term:
        return dx
    s2 = (dy * x_hat).sum(axis=(0, 2, 3)).reshape(1, 3, 1, 1)
    return dx + (gamma * inv_std / m).reshape(1, 3, 1, 1) * x_hat * s2


print("With dy = ones, L = sum(BN(x)) = m * sum(beta): it does not depend on x at all, so the")
print("true dL/dx is zero, and a backward that forgot a term can still give zero:")
table(["upstream dy", "correct |dx|max", "buggy |dx|max", "buggy caught?"],
      [(name, float(numpy.abs(dx_of(up)).max()), float(numpy.abs(dx_of(up, True)).max()),
        "yes" if numpy.abs(dx_of(up) - dx_of(up, True)).max() > 1e-8 else "NO")
       for name, up in (("ones", ones), ("random", dy))])
print("That is why tinyres.gradcheck projects the output on a random direction.")
