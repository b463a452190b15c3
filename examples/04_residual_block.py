"""Example 4: the residual block — forward through F and the shortcut, and where the gradient goes.

A basic block (He et al. 2015, section 3; tinyres/models/blocks.py) computes

    y' = F(x) + x,    y = relu(y'),    F(x) = BN(conv(relu(BN(conv(x)))))

so by the chain rule the gradient reaching its input is

    dL/dx = dL/dy' (dF/dx + I)  =  (dF/dx)^T dL/dy'   +   dL/dy'
                                    through F            through the shortcut

We compute both terms separately, add them, and compare with autograd; then look at a block whose
F is (nearly) zero, a stack of blocks with and without shortcuts, and the two shortcut options
where the shape changes, A (zero padding) and B (projection).

    python examples/04_residual_block.py          # a few seconds
    python examples/04_residual_block.py --step   # pause between the steps
"""
import numpy

import tinyres
from tinyres.gradcheck import gradcheck
from tinyres.models import BasicBlock
from tinyres.nn import Sequential

from lesson import Lesson, table, relative_error

lesson = Lesson(__file__, __doc__)
rng = lesson.rng
F64 = numpy.float64


def norm(a):
    return float(numpy.sqrt((numpy.asarray(a, dtype=F64) ** 2).sum()))


def leaf(array):
    return tinyres.tensor(array.copy(), requires_grad=True)


# -------------------------------------------------------------------------------------------
lesson.step("a basic block with an identity shortcut")
block = BasicBlock(16, 16, stride=1, shortcut="A").to(dtype=F64)   # float64: exact checks
print(block)
print(f"{block.num_parameters():,} parameters, all in F (two 3x3 convs 16 -> 16 and two BNs);")
print("the identity shortcut has none.")

# -------------------------------------------------------------------------------------------
lesson.step("forward: F(x), the shortcut, the addition, the ReLU")
x = rng.standard_normal((2, 16, 8, 8))
fx = block.residual(tinyres.tensor(x))                      # F(x)   (N, 16, 8, 8)
sx = block.shortcut_path()(tinyres.tensor(x))               # x      (the Identity module)
y_pre = fx + sx                                             # y' = F(x) + x
y = block(tinyres.tensor(x))                                # the block does all of it
print(f"x      {x.shape}   norm {norm(x):8.3f}")
print(f"F(x)   {tuple(fx.shape)}   norm {norm(fx.numpy()):8.3f}   (the residual: a correction)")
print(f"y'     {tuple(y_pre.shape)}   norm {norm(y_pre.numpy()):8.3f}   = F(x) + x")
print(f"y      {tuple(y.shape)}   norm {norm(y.numpy()):8.3f}   = relu(y'), the block's output")
print(f"block(x) == relu(F(x) + x): max difference "
      f"{numpy.abs(y.numpy() - numpy.maximum(y_pre.numpy(), 0)).max():.1e}")

# -------------------------------------------------------------------------------------------
lesson.step("backward: the gradient through F, and through the shortcut")
r = rng.standard_normal(y.shape)                            # dL/dy for L = <y, r>
g = r * (y_pre.numpy() > 0)                                 # dL/dy': the ReLU passes y' > 0
x_f = leaf(x)
block.residual(x_f).backward(g)                             # (dF/dx)^T dL/dy'
through_f, through_identity = x_f.grad, g                   # ... and I^T dL/dy' = dL/dy'
x_all = leaf(x)
(block(x_all) * r).sum().backward()                         # autograd, the whole block
print("the first six elements of dL/dx (image 0, channel 0, row 0):")
table(["through F", "through shortcut", "sum", "autograd dL/dx"],
      [(float(a), float(b), float(a + b), float(c)) for a, b, c in
       zip(through_f[0, 0, 0, :6], through_identity[0, 0, 0, :6], x_all.grad[0, 0, 0, :6])],
      {i: "{:+.5f}" for i in range(4)})
print(f"norms: through F {norm(through_f):.3f}, through the shortcut {norm(through_identity):.3f}, "
      f"total {norm(x_all.grad):.3f}")
print(f"dL/dx = (dF/dx)^T dL/dy' + dL/dy': max relative difference from autograd "
      f"{relative_error(through_f + through_identity, x_all.grad):.1e}")
print("The shortcut hands dL/dy' to x unchanged, whatever F's Jacobian is.")

# -------------------------------------------------------------------------------------------
lesson.step("when F does (almost) nothing: residual vs plain")
print("Set the last BN's gamma to 0 (a common initialisation for the last BN of a block):")
print("then F(x) = 0 and dF/dx = 0. With a shortcut the block is relu(x), and the gradient")
print("still arrives in full; without one (plain) nothing gets through.")
plain = BasicBlock(16, 16, stride=1, shortcut="none").to(dtype=F64)
plain.load_state_dict(block.state_dict())                   # the very same F
rows = []
for name, b in (("residual", block), ("plain", plain)):
    b.bn2.weight.data[...] = 0.0
    xg = leaf(x)
    (b(xg) * r).sum().backward()
    rows.append((name, norm(b(tinyres.tensor(x)).numpy()), norm(xg.grad)))
table(["block", "norm of output", "norm of dL/dx"], rows, {1: "{:.3f}", 2: "{:.3f}"})

depth = lesson.pick(9, 4)
print(f"\nA stack of {depth} blocks at initialisation (as one stage of ResNet-56): the norm of")
print("dL/d(input of block k), from the top block down to block 1:")
stacks = {}
for name, option in (("residual", "A"), ("plain", "none")):
    tinyres.manual_seed(lesson.seed)
    stacks[name] = Sequential(*[BasicBlock(16, 16, shortcut=option) for _ in range(depth)]).to(
        dtype=F64)
grads = {}
for name, stack in stacks.items():
    # forward block by block, each on a fresh leaf holding the previous output, so that the
    # gradient arriving at every block's input can be read: backward one block at a time
    leaves, outputs, h = [], [], x
    for b in stack:
        leaves.append(leaf(h))
        outputs.append(b(leaves[-1]))
        h = outputs[-1].numpy()
    g, grads[name] = r, []
    for b_in, b_out in zip(reversed(leaves), reversed(outputs)):
        b_out.backward(g)
        g = b_in.grad
        grads[name].append(norm(g))
table(["input of block", "residual stack", "plain stack"],
      [(depth - k, grads["residual"][k], grads["plain"][k]) for k in range(depth)],
      {1: "{:.3f}", 2: "{:.3f}"})
growth = {name: g[-1] / g[0] for name, g in grads.items()}
print(f"From the top to the bottom the norm changes by x{growth['residual']:.1f} in the "
      f"residual stack and by x{growth['plain']:.1f} in the plain one.")
print("Neither vanishes: with batch norm the paper finds healthy gradient norms in plain nets")
print("too (section 4.1), and argues that their trouble is harder optimisation, not vanishing")
print("gradients. What the shortcut changes is each block's Jacobian: I + dF/dx instead of")
print("dF/dx, near the identity when F is small.")
print("Example 5 measures whole networks: plain-56 against ResNet-56, and how they train.")

# -------------------------------------------------------------------------------------------
lesson.step("where the shape changes: option A (zero padding) vs option B (projection)")
blocks = {}
for option in ("A", "B"):
    tinyres.manual_seed(lesson.seed)
    blocks[option] = BasicBlock(16, 32, stride=2, shortcut=option).to(dtype=F64)
    sc = blocks[option].shortcut_path()
    extra = sum(p.numel() for p in sc.parameters())
    print(f"option {option}: shortcut = {sc!r}".replace("\n", "\n    "))
    print(f"          {extra} parameters in the shortcut, "
          f"{blocks[option].num_parameters():,} in the block")
x2 = rng.standard_normal((2, 16, 8, 8))
sa = blocks["A"].shortcut_path()(tinyres.tensor(x2)).numpy()
print(f"\nx {x2.shape} -> both blocks give {tuple(blocks['A'](tinyres.tensor(x2)).shape)}")
print("option A's shortcut, per output channel, norm of its map:")
print("   ", " ".join(f"{norm(sa[:, c]):.0f}" for c in range(32)))
print(f"   channels 0-7 and 24-31 are zero padding; channels 8-23 are x[:, :, ::2, ::2]: "
      f"max difference {numpy.abs(sa[:, 8:24] - x2[:, :, ::2, ::2]).max():.1e}")
rows = []
for option, b in blocks.items():
    xs = leaf(x2)
    out = b.shortcut_path()(xs)
    out.backward(rng.standard_normal(out.shape))
    reached = float((numpy.abs(xs.grad) > 0).mean())
    rows.append((option, norm(xs.grad), f"{100 * reached:.0f} %"))
table(["option", "norm of dL/dx via the shortcut", "pixels of x reached"], rows, {1: "{:.3f}"})
print("Both shortcuts sample every second pixel (stride 2), so the shortcut reaches a quarter of")
print("x's pixels; the rest get their gradient through F. A passes the gradient of the 16 real")
print("channels unchanged and drops the padded ones'; B mixes all 32 through its 1x1 conv.")
for option, b in blocks.items():
    small = BasicBlock(4, 8, stride=2, shortcut=option).to(dtype=F64)
    report = gradcheck(lambda x: small(x), [leaf(rng.standard_normal((2, 4, 4, 4)))])
    print(f"gradcheck, a 4 -> 8 channel stride-2 block with option {option}: {report}")
print("The paper uses A on CIFAR-10 (no extra parameters); on ImageNet B is slightly better")
print("(its Table 3), at the cost of the projection's parameters.")
