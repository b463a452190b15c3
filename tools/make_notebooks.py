"""Write the assignments' notebook handouts, docs/assignments/A*.ipynb, from the cells below.

    python tools/make_notebooks.py            # rewrite the four notebooks (no outputs)
    python tools/make_notebooks.py --check    # exit 1 if a notebook differs from this script

Each notebook is the CS231n form of its handout: the explanation, cells that call the student's
functions in their copy (the code is written in the copy's files, not in the notebook), checks
that print relative errors and stop at the first failing one, and the timing experiment of the
written part. They run on Colab or Jupyter against the student's installed copy (the first cell
says which tinyres it imported). tests/test_assignments.py executes them (slow tier, nbclient):
a solution copy runs them clean; an empty copy stops at its first hole, with the hole's message.
The checks hold no answer: they compare the student's functions with each other, with the
definition (conv2d_loops, the oracle), and with central differences.
"""
import json
import sys
from pathlib import Path

import nbformat

from tinyres.course.assignments import ASSIGNMENTS

HERE = Path(__file__).resolve().parents[1] / "docs" / "assignments"

SETUP = '''\
# Setup: this notebook runs YOUR copy of tinyres. Install the copy once, from its folder:
#     python -m pip install -e ".[test]"
# On Colab: upload your copy's folder (say to /content/{folder}), then run in a cell
#     !pip install -q -e /content/{folder}
# and restart the runtime (Runtime > Restart). This cell says which tinyres it imported.
import time
import numpy as np
import tinyres
try:
    from tinyres import student_copy
except ImportError:
    raise RuntimeError(f"this tinyres ({{tinyres.__file__}}) is not a course copy: install your "
                       f"copy (pip install -e YOUR_COPY) and restart the kernel") from None
print(student_copy.describe())
print("imported from", tinyres.__file__)'''

HELPERS = '''\
def rel_error(got, expected):
    """The worst relative error |got - expected| / (|got| + |expected|), as CS231n prints it."""
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    assert got.shape == expected.shape, f"shape {got.shape}, expected {expected.shape}"
    return float(np.max(np.abs(got - expected) / np.maximum(1e-12, np.abs(got) + np.abs(expected))))


def check(name, got, expected, tolerance):
    """Print the relative error; stop the notebook when it is above the tolerance."""
    error = rel_error(got, expected)
    print(f"{name:<40} relative error {error:.1e}  {'ok' if error < tolerance else 'WRONG'}")
    assert error < tolerance, f"{name}: relative error {error:.1e} > {tolerance:.0e}"


def numeric_gradient(f, x, direction, eps=1e-6):
    """Central differences of L = sum(f(x) * direction) with respect to the array x."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        keep = x[index]
        x[index] = keep + eps
        plus = (f(x) * direction).sum()
        x[index] = keep - eps
        minus = (f(x) * direction).sum()
        x[index] = keep
        grad[index] = (plus - minus) / (2 * eps)
    return grad


rng = np.random.default_rng(0)'''


def md(text):
    return nbformat.v4.new_markdown_cell(text)


def code(text):
    return nbformat.v4.new_code_cell(text)


def opening(assignment, what, imports=""):
    """The cells every notebook starts with: the introduction (`what` the student writes),
    the setup that names the copy, the helpers (and `imports`, the functions checked)."""
    title, handout = ASSIGNMENTS[assignment].title, Path(ASSIGNMENTS[assignment].handout).name
    return [md(f"# {assignment}: {title}\n\nThe notebook form of the handout, "
               f"[{handout}]({handout}): read it first. {what}\n\n"
               f"You write your code in your copy's files, not here; these cells call it, check "
               f"it, and print relative errors (about 1e-9 or smaller when right). The first "
               f"cell that calls a function you have not written stops with its "
               f"`NotImplementedError`, which names it. After editing a file, restart the "
               f"kernel and run the cells again."),
            code(SETUP.format(folder=assignment.lower())), code(HELPERS + imports)]


A1 = opening("A1", "You write the backward passes of three ops in `tinyres/ops.py`: "
             "`Mul.backward`, `MatMul.backward` and `Sum.backward`.") + [
    md("## Mul.backward\n\n$y = a b$ (broadcast): $\\partial L/\\partial a = g\\,b$ and "
       "$\\partial L/\\partial b = g\\,a$, each summed back to its input's shape. We check it "
       "against central differences of $L = \\langle y, d \\rangle$ for a random direction $d$."),
    code('''\
a, b = rng.standard_normal((3, 4)), rng.standard_normal((4,))
A, B = tinyres.tensor(a, requires_grad=True), tinyres.tensor(b, requires_grad=True)
y = A * B
direction = rng.standard_normal(y.shape)
y.backward(tinyres.tensor(direction))

def times(a_, b_):
    return (tinyres.tensor(a_) * tinyres.tensor(b_)).numpy()
check("Mul.backward, da", A.grad,
      numeric_gradient(lambda v: times(v, b), a.copy(), direction), 1e-7)
check("Mul.backward, db (broadcast)", B.grad,
      numeric_gradient(lambda v: times(a, v), b.copy(), direction), 1e-7)'''),
    md("## MatMul.backward\n\n$y = a\\,b$: $\\partial L/\\partial a = g\\,b^T$, "
       "$\\partial L/\\partial b = a^T g$; here batched, as `@` broadcasts."),
    code('''\
a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 5))
A, B = tinyres.tensor(a, requires_grad=True), tinyres.tensor(b, requires_grad=True)
y = A @ B
direction = rng.standard_normal(y.shape)
y.backward(tinyres.tensor(direction))

def product(a_, b_):
    return (tinyres.tensor(a_) @ tinyres.tensor(b_)).numpy()
check("MatMul.backward, da", A.grad,
      numeric_gradient(lambda v: product(v, b), a.copy(), direction), 1e-7)
check("MatMul.backward, db (batched)", B.grad,
      numeric_gradient(lambda v: product(a, v), b.copy(), direction), 1e-7)'''),
    md("## Sum.backward\n\nEvery summed element gets the gradient of its sum."),
    code('''\
x = rng.standard_normal((2, 3, 4))
for axis, keepdims in ((None, False), (1, False), ((0, 2), True)):
    X = tinyres.tensor(x, requires_grad=True)
    y = X.sum(axis=axis, keepdims=keepdims)
    direction = rng.standard_normal(y.shape)
    y.backward(tinyres.tensor(direction))
    check(f"Sum.backward, axis={axis}, keepdims={keepdims}", X.grad, numeric_gradient(
        lambda v: tinyres.tensor(v).sum(axis=axis, keepdims=keepdims).numpy(), x.copy(),
        direction), 1e-7)'''),
    md("## Timing: central differences against backward\n\nCentral differences cost two "
       "forward passes per input element; backward costs about one forward pass in all. "
       "That is why training uses backward, and why a gradient check runs on small inputs."),
    code('''\
a, b = rng.standard_normal((30, 40)), rng.standard_normal((40, 20))
direction = rng.standard_normal((30, 20))
start = time.perf_counter()
numeric_gradient(lambda v: product(v, b), a.copy(), direction)
numeric = time.perf_counter() - start
start = time.perf_counter()
A = tinyres.tensor(a, requires_grad=True)
(A @ tinyres.tensor(b)).backward(tinyres.tensor(direction))
analytic = time.perf_counter() - start
print(f"central differences {numeric * 1e3:.1f} ms, backward {analytic * 1e3:.2f} ms: "
      f"{numeric / analytic:.0f}x")'''),
    md("## Written part\n\nWhy do the checks above project the output on a random direction "
       "$d$ instead of summing it (all ones)? Answer in the handout's written part."),
]

A2 = opening("A2", "You write, in `tinyres/functional/conv_loops.py` and `conv.py`: `conv2d_loops` "
           "(the definition, first: it is the oracle), `im2col`, `col2im`, `conv2d_forward` "
           "and `conv2d_backward`, without a Python loop over images, channels or pixels "
           "(the grader counts the lines your code runs at two sizes).", '''

from tinyres.functional.conv import col2im, conv2d_backward, conv2d_forward, im2col
from tinyres.functional.conv_loops import conv2d_loops''') + [
    md("## conv2d_loops: the definition\n\nA 2x2 filter of ones on a 4x4 image sums each 2x2 "
       "window, which slicing computes by hand: the four corners of the window added."),
    code('''\
x = np.arange(16.0).reshape(1, 1, 4, 4)
by_hand = x[..., :-1, :-1] + x[..., :-1, 1:] + x[..., 1:, :-1] + x[..., 1:, 1:]
check("conv2d_loops, 2x2 ones", conv2d_loops(x, np.ones((1, 1, 2, 2)), None, (1, 1), (0, 0)),
      by_hand, 1e-12)
x, w, bias = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((4, 3, 3, 3)), np.zeros(4)
y = conv2d_loops(x, w, bias, (1, 1), (1, 1))
print("output shape", y.shape, "(expected (2, 4, 5, 5))")'''),
    md("## im2col, then conv2d_forward\n\nOne row per output pixel $(n, o_h, o_w)$, one "
       "column per weight $(c, k_h, k_w)$: `cols @ W.reshape(OC, -1).T` is the convolution, "
       "which we compare with your loops."),
    code('''\
for stride, padding in (((1, 1), (1, 1)), ((2, 1), (1, 0))):
    cols = im2col(x, (3, 3), stride, padding)
    loops = conv2d_loops(x, w, None, stride, padding)
    N, OC, OH, OW = loops.shape
    print("cols shape", cols.shape, f"(expected ({N * OH * OW}, {3 * 3 * 3}))")
    via_cols = (cols @ w.reshape(OC, -1).T).reshape(N, OH, OW, OC).transpose(0, 3, 1, 2)
    check(f"im2col, stride {stride}, padding {padding}", via_cols, loops, 1e-9)
    check(f"conv2d_forward, stride {stride}", conv2d_forward(x, w, stride, padding), loops,
          1e-9)'''),
    md("## col2im, the adjoint of im2col\n\nFor every $x$ and $c$: "
       "$\\langle \\mathrm{im2col}(x), c\\rangle = \\langle x, \\mathrm{col2im}(c)\\rangle$. "
       "Overlapping patches must *add*."),
    code('''\
for stride in ((1, 1), (2, 2)):
    cols = rng.standard_normal(im2col(x, (3, 3), stride, (1, 1)).shape)
    back = col2im(cols, x.shape, (3, 3), stride, (1, 1))
    check(f"col2im adjoint, stride {stride}", (im2col(x, (3, 3), stride, (1, 1)) * cols).sum(),
          (x * back).sum(), 1e-9)'''),
    md("## conv2d_backward\n\n$dW = g_Y^T\\,\\mathrm{cols}$ and "
       "$dx = \\mathrm{col2im}(g_Y W_2)$, checked against central differences of your loops."),
    code('''\
x, w = rng.standard_normal((2, 2, 4, 4)), rng.standard_normal((3, 2, 3, 3))
gy = rng.standard_normal(conv2d_loops(x, w, None, (2, 1), (1, 1)).shape)
gx, gw = conv2d_backward(gy, x, w, (2, 1), (1, 1))
check("conv2d_backward, dx", gx, numeric_gradient(
    lambda v: conv2d_loops(v, w, None, (2, 1), (1, 1)), x.copy(), gy), 1e-6)
check("conv2d_backward, dW", gw, numeric_gradient(
    lambda v: conv2d_loops(x, v, None, (2, 1), (1, 1)), w.copy(), gy), 1e-6)'''),
    md("## Timing: seven loops against im2col + GEMM\n\nThe written part asks for these two "
       "times and why they differ; run it on a larger size too."),
    code('''\
x, w = rng.standard_normal((2, 4, 12, 12)), rng.standard_normal((8, 4, 3, 3))
start = time.perf_counter()
conv2d_loops(x, w, None, (1, 1), (1, 1))
loops = time.perf_counter() - start
start = time.perf_counter()
conv2d_forward(x, w, (1, 1), (1, 1))
gemm = time.perf_counter() - start
print(f"seven loops {loops * 1e3:.1f} ms, im2col + GEMM {gemm * 1e3:.2f} ms: "
      f"{loops / gemm:.0f}x")'''),
]

A3 = opening("A3", "You write `batch_norm_graph` (batch norm from tinyres ops, "
           "`tinyres/functional/batchnorm_graph.py`), the closed-form "
           "`batch_norm_train_backward` (`batchnorm.py`, no loop over the batch, channels or "
           "pixels) and `max_pool2d_backward` (`pooling.py`).", '''

import tinyres.functional as F
from tinyres.functional.batchnorm_graph import batch_norm_graph


def normalised(x, weight, bias, eps=1e-5):
    """Training-mode batch norm by its definition, per channel over (N, H, W)."""
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    shape = (1, -1, 1, 1)
    return (x - mean) / np.sqrt(var + eps) * weight.reshape(shape) + bias.reshape(shape)''') + [
    md("## batch_norm_graph: autograd derives the backward"),
    code('''\
x, weight, bias = rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(3), rng.standard_normal(3)
leaves = [tinyres.tensor(v, requires_grad=True) for v in (x, weight, bias)]
y = batch_norm_graph(*leaves)
check("batch_norm_graph, forward", y.numpy(), normalised(x, weight, bias), 1e-9)
direction = rng.standard_normal(x.shape)
y.backward(tinyres.tensor(direction))
graph_grads = [leaf.grad for leaf in leaves]
check("batch_norm_graph, dx", graph_grads[0],
      numeric_gradient(lambda v: normalised(v, weight, bias), x.copy(), direction), 1e-6)'''),
    md("## batch_norm_train_backward: the closed form\n\n"
       "$dx = \\frac{\\gamma\\,\\sigma^{-1}}{m}\\,(m\\,g - \\sum g - \\hat x \\sum g\\,\\hat x)$, "
       "checked against the graph's gradients."),
    code('''\
leaves = [tinyres.tensor(v, requires_grad=True) for v in (x, weight, bias)]
y = F.batch_norm(leaves[0], None, None, *leaves[1:], training=True)   # PyTorch's order
y.backward(tinyres.tensor(direction))
for name, leaf, graph in zip(("dx", "dweight", "dbias"), leaves, graph_grads):
    check(f"batch_norm_train_backward, {name}", leaf.grad, graph, 1e-9)'''),
    md("## max_pool2d_backward\n\nEach gradient goes to its window's maximum; where windows "
       "overlap (3x3, stride 2) the contributions add."),
    code('''\
x = rng.standard_normal((2, 3, 7, 7))
X = tinyres.tensor(x, requires_grad=True)
y = F.max_pool2d(X, 3, 2, 1)
direction = rng.standard_normal(y.shape)
y.backward(tinyres.tensor(direction))
check("max_pool2d_backward, 3x3 stride 2", X.grad, numeric_gradient(
    lambda v: F.max_pool2d(tinyres.tensor(v), 3, 2, 1).numpy(), x.copy(), direction), 1e-6)'''),
    md("## Timing: the graph of primitive ops against the closed form"),
    code('''\
x, weight, bias = (rng.standard_normal((32, 16, 8, 8)), rng.standard_normal(16),
                   rng.standard_normal(16))
direction = tinyres.tensor(rng.standard_normal(x.shape))
def closed_form(v, w, b):
    return F.batch_norm(v, None, None, w, b, training=True)


for name, norm in (("graph of ops", batch_norm_graph), ("closed form", closed_form)):
    leaves = [tinyres.tensor(v, requires_grad=True) for v in (x, weight, bias)]
    y = norm(*leaves)
    start = time.perf_counter()
    y.backward(direction)
    print(f"{name:<14} backward {(time.perf_counter() - start) * 1e3:.2f} ms")'''),
]

A4 = opening("A4", "You write `ZeroPadShortcut.forward`, `ResidualBlock.forward` and "
           "`BasicBlock.residual` (`tinyres/models/blocks.py`) and `SGD.step` "
           "(`tinyres/optim/sgd.py`).", '''

import tinyres.functional as F
from tinyres.models.blocks import BasicBlock, ResidualBlock, ZeroPadShortcut''') + [
    md("## ZeroPadShortcut.forward (option A)\n\nEvery stride-th pixel, then zero channels "
       "before and after: 2 -> 4 channels at stride 2 keeps channels 1 and 2."),
    code('''\
x = rng.standard_normal((2, 2, 5, 6))
y = ZeroPadShortcut(2, 4, 2)(tinyres.tensor(x)).numpy()
print("shape", y.shape, "(expected (2, 4, 3, 3))")
check("ZeroPadShortcut, the real channels", y[:, 1:3], x[:, :, ::2, ::2], 1e-12)
check("ZeroPadShortcut, the zero channels", np.abs(y[:, [0, 3]]).max(), 0.0, 1e-12)'''),
    md("## ResidualBlock.forward\n\n$y = \\mathrm{relu}(F(x) + \\mathrm{shortcut}(x))$; a "
       "block whose branch is $F(x) = x^2 - x$ makes it easy to check."),
    code('''\
class Probe(ResidualBlock):
    def __init__(self, option):
        super().__init__()
        self._add_shortcut(option, 3, 3, 1, "shortcut")

    def residual(self, x):
        return x * x - x

x = rng.standard_normal((2, 3, 4, 4))
check("ResidualBlock, identity shortcut", Probe("A")(tinyres.tensor(x)).numpy(),
      np.maximum(x * x, 0), 1e-12)
check("ResidualBlock, plain (no shortcut)", Probe("none")(tinyres.tensor(x)).numpy(),
      np.maximum(x * x - x, 0), 1e-12)'''),
    md("## BasicBlock.residual\n\n$F(x) = \\mathrm{BN}(\\mathrm{conv}(\\mathrm{relu}("
       "\\mathrm{BN}(\\mathrm{conv}(x)))))$, compared with the same layers called one by one."),
    code('''\
block = BasicBlock(3, 4, stride=2).to(dtype=np.float64)
x = tinyres.tensor(rng.standard_normal((2, 3, 6, 6)))
by_layers = block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x)))))
check("BasicBlock.residual", block.residual(x).numpy(), by_layers.numpy(), 1e-12)'''),
    md("## SGD.step\n\nPyTorch's update: $g = \\nabla + \\lambda w$; $b = g$ at the first "
       "step, then $b = \\mu b + (1 - \\tau) g$; $w \\leftarrow w - \\eta\\, b$."),
    code('''\
from tinyres.nn import Parameter
from tinyres.optim import SGD
w0, grads = rng.standard_normal(4), [rng.standard_normal(4) for _ in range(3)]
p = Parameter(w0.copy())
optimizer = SGD([p], lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)
w, buffer = w0.copy(), None
for step, grad in enumerate(grads):
    p.grad = grad.copy()
    optimizer.step()
    g = grad + 0.01 * w
    buffer = g if buffer is None else 0.9 * buffer + 0.9 * g
    w = w - 0.1 * buffer
check("SGD.step, 3 steps with momentum", p.numpy(), w, 1e-12)'''),
    md("## Timing: what the shortcut costs\n\nThe experiment of the written part is "
       "`tinyres lab degradation` (see the handout). Here, one forward and backward pass of a "
       "block with and without its shortcut: the addition is nearly free."),
    code('''\
x = rng.standard_normal((8, 8, 16, 16))
for option in ("A", "none"):
    block = BasicBlock(8, 8, shortcut=option).to(dtype=np.float64)
    start = time.perf_counter()
    block(tinyres.tensor(x, requires_grad=True)).sum().backward()
    seconds = time.perf_counter() - start
    print(f"shortcut {option!r:<7} forward + backward {seconds * 1e3:.1f} ms")'''),
]

NOTEBOOKS = {"A1-autograd.ipynb": A1, "A2-im2col-convolution.ipynb": A2,
             "A3-batchnorm-pooling.ipynb": A3, "A4-residual-networks.ipynb": A4}


def notebook(cells):
    book = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"}})
    for index, cell in enumerate(book.cells):
        cell["id"] = f"cell-{index}"             # stable ids: the files do not churn
    return nbformat.writes(book) + "\n"


def main(argv):
    stale = []
    for name, cells in NOTEBOOKS.items():
        text = notebook(cells)
        path = HERE / name
        if "--check" in argv:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print(f"wrote {path} ({len(json.loads(text)['cells'])} cells)")
    if stale:
        print(f"stale: {', '.join(stale)}; run python tools/make_notebooks.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
