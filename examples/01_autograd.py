"""Example 1: autograd — a small graph built, printed, differentiated, and checked.

    z = x @ W + b        (2, 3) @ (3, 2) + (2,)  -> (2, 2)
    y = z * z            z used twice
    L = mean(y)          a scalar

Running the forward code records a graph (each op a node); L.backward() walks it from L back to
the leaves x, W and b. We print the graph as Graphviz DOT text, compare every gradient with the
formula worked out by hand and with finite differences, and let tinyres.gradcheck catch an op
whose backward is wrong.

    python examples/01_autograd.py            # about a second
    python examples/01_autograd.py --step     # pause for Enter between the steps
"""
import numpy

import tinyres
from tinyres import graph
from tinyres.autograd import Function
from tinyres.gradcheck import GradcheckError, gradcheck

from lesson import Lesson, show, table, relative_error

lesson = Lesson(__file__, __doc__)
rng = lesson.rng

# -------------------------------------------------------------------------------------------
lesson.step("the leaves: tensors we want gradients for")
x = tinyres.tensor(rng.standard_normal((2, 3)), requires_grad=True)      # float64: the checks
W = tinyres.tensor(rng.standard_normal((3, 2)), requires_grad=True)      # below need it
b = tinyres.tensor(rng.standard_normal(2), requires_grad=True)
x.name, W.name, b.name = "x", "W", "b"
for t in (x, W, b):
    show(t.name, t)
print("requires_grad=True marks them as leaves whose .grad backward() should fill.")

# -------------------------------------------------------------------------------------------
lesson.step("forward: every op records a node of the graph")
xW = x @ W
xW.name = "xW"
z = xW + b
z.name = "z"
y = z * z
y.name = "y"
L = y.mean()
L.name = "L"


def input_of(edge):
    """The tensor an edge leads back to: the leaf itself, or output `index` of the op that made
    it (held weakly: alive here because this script keeps xW, z and y in variables)."""
    t = edge.leaf if edge.creator is None else edge.creator.outputs[edge.index]()
    return f"{t.name} {tuple(t.shape)}"


for t in (xW, z, y, L):
    creator = t.creator
    inputs = ", ".join(input_of(e) for e in creator.input_edges)
    print(f"{t.name}: shape {tuple(t.shape)}, made by {creator.name}({inputs}), "
          f"generation {creator.generation}")
print(f"L = {L.item():.6f}")
print("Each output keeps .creator (the Function that made it); each Function keeps one edge per")
print("input: where that input's gradient goes. It does not keep the input tensors themselves,")
print("so an intermediate array that backward does not need is freed as soon as it is dropped.")
print("The generation counts ops from the leaves: backward visits the highest first.")

# -------------------------------------------------------------------------------------------
lesson.step("the graph, as Graphviz DOT text")
print(graph.to_dot(L))
image = graph.render(L, lesson.path("graph.png"))
how = "Graphviz" if graph.graphviz_available() else "matplotlib (Graphviz's dot is not installed)"
print(f"   DOT file: {image.with_suffix('.dot')}")
print(f"   figure:   {image}  (drawn with {how})")
print("Ellipses are tensors (orange: leaves wanting a gradient), boxes are Functions.")

# -------------------------------------------------------------------------------------------
lesson.step("backward: the walk from L to the leaves")
order = [f.name for f in graph.walk(L)]
print("backward() calls the Functions in this order:", " -> ".join(order))
L.backward()
for t in (x, W, b):
    show(f"dL/d{t.name}", t.grad)
print("Two things happened on the way:")
print(" * z was used twice (z * z): Mul.backward returned dL/dz once per input, and the walk")
print("   ADDED them before going on to Add: 2z/4 = z/2.")
print(" * b (2,) was broadcast over the 2 rows of x @ W: Add.backward summed dL/dz over those")
print("   rows (ops.unbroadcast), so dL/db has b's shape.")

# -------------------------------------------------------------------------------------------
lesson.step("the same gradients by hand")
zv, xv, Wv = z.numpy(), x.numpy(), W.numpy()
gz = zv / 2                              # dL/dz = dL/dy * 2z = (1/4) * 2z
by_hand = {"x": gz @ Wv.T, "W": xv.T @ gz, "b": gz.sum(axis=0)}
print("dL/dy = 1/4 (a mean of 4 values);  dL/dz = 2z * 1/4 = z/2")
print("dL/dx = dL/dz W^T,   dL/dW = x^T dL/dz,   dL/db = sum over rows of dL/dz")
table(["leaf", "max relative difference, autograd vs by hand"],
      [(t.name, relative_error(t.grad, by_hand[t.name])) for t in (x, W, b)])

# -------------------------------------------------------------------------------------------
lesson.step("every gradient element against central differences")
print("dL/dv[j] ~ (L(v + eps e_j) - L(v - eps e_j)) / (2 eps), eps = 1e-6, in float64")


def loss_of(xv, Wv, bv):
    zz = xv @ Wv + bv
    return (zz * zz).mean()


eps, rows, values = 1e-6, [], {"x": x.numpy().copy(), "W": W.numpy().copy(),
                               "b": b.numpy().copy()}
for t in (x, W, b):
    for index in numpy.ndindex(t.shape):
        plus = {k: v.copy() for k, v in values.items()}
        minus = {k: v.copy() for k, v in values.items()}
        plus[t.name][index] += eps
        minus[t.name][index] -= eps
        numeric = (loss_of(**{k + "v": v for k, v in plus.items()})
                   - loss_of(**{k + "v": v for k, v in minus.items()})) / (2 * eps)
        analytic = float(t.grad[index])
        rows.append((f"{t.name}{list(index)}", analytic, numeric,
                     relative_error(analytic, numeric)))
table(["element", "autograd", "numeric", "relative error"], rows,
      {1: "{:+.8f}", 2: "{:+.8f}"})
worst = max(r[3] for r in rows)
print(f"worst relative error {worst:.1e}: float64 central differences agree to ~1e-9.")

# -------------------------------------------------------------------------------------------
lesson.step("tinyres.gradcheck: the same test for any op, and a bug it catches")
report = gradcheck(lambda x, W, b: ((x @ W + b) * (x @ W + b)).mean(), [x, W, b])
print(f"our graph: {report}")
print("gradcheck projects the output on a random direction r (L = <f(x), r>), so that an op")
print("whose sum is constant (batch norm's!) is still tested; see docs/autograd.md.")


class BrokenSquare(Function):
    """y = x^2, with a backward that forgot the factor 2 (a typical slip)."""
    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, gy):
        return gy * self.x                       # should be gy * 2 * self.x


v = tinyres.tensor(rng.standard_normal(4), requires_grad=True)
try:
    gradcheck(lambda v: BrokenSquare()(v), [v])
    print("BrokenSquare passed?! (it should not)")
except GradcheckError as err:
    print(f"BrokenSquare: caught, as it should be:\n   {err}")
