"""The assignments and their holes: what students write, where, and what else they hand in.

A hole is a region of the source between two marker lines,

    # BEGIN SOLUTION A2 im2col
    ...the reference code...
    # END SOLUTION

(in Markdown: the same words inside an HTML comment, around a worked code block). `A2` names
the assignment and `im2col` the task in TASKS below. A student copy replaces the region by a
NotImplementedError that names the task (tinyres/course/copier.py); the grader checks the task
with the cases of tinyres/course/cases.py.

Plain data, importing nothing of tinyres: a student copy keeps this file (its announcement and
`tinyres info` read it), and so does the grader.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class WrittenPart:
    """A question answered in prose in the handout and graded by hand."""
    name: str
    points: int


@dataclass(frozen=True)
class Assignment:
    id: str
    title: str
    handout: str                  # relative to the repository
    tests: tuple                  # test files a copy carries (with conftest.py and its helpers)
    written: tuple = ()           # WrittenPart(s), graded by hand
    examples: tuple = ()          # examples/ files that need this assignment's functions


@dataclass(frozen=True)
class Task:
    id: str                       # the tag in the markers: "# BEGIN SOLUTION A2 im2col"
    assignment: str
    function: str                 # what students implement, as the score table names it
    file: str                     # where, relative to the repository
    what: str                     # one line for the NotImplementedError's comment
    twins: tuple = ()             # names of fast kernels (kernels/) that compute the same thing
    other_routes: tuple = ()      # readable files that compute it another way (left out)
    points: int = 10              # the default; a course's settings file may change it
    uses: tuple = ()              # tasks of the same assignment whose functions it calls: the
    #                               grader runs the reference in their place (one bug, one cost)


ASSIGNMENTS = {a.id: a for a in (
    Assignment("A1", "Autograd and gradient checking", "docs/assignments/A1-autograd.md",
               ("tests/test_autograd.py", "tests/test_ops.py", "tests/test_gradcheck.py"),
               (WrittenPart("why gradient checks project on a random direction", 10),),
               ("examples/01_autograd.py",)),
    Assignment("A2", "Convolution: seven loops, then im2col + GEMM",
               "docs/assignments/A2-im2col-convolution.md", ("tests/test_conv.py",),
               (WrittenPart("timing: loops against im2col + GEMM, and why", 10),),
               ("examples/02_im2col_convolution.py",)),
    Assignment("A3", "Batch norm (twice) and pooling", "docs/assignments/A3-batchnorm-pooling.md",
               ("tests/test_batchnorm.py", "tests/test_pooling.py"),
               (WrittenPart("the closed-form derivation of dx", 10),
                WrittenPart("timing: the graph of primitive ops against the closed form", 5)),
               ("examples/03_batch_norm.py",)),
    Assignment("A4", "Residual networks on CIFAR-10", "docs/assignments/A4-residual-networks.md",
               ("tests/test_models_resnet.py", "tests/test_optim.py"),
               (WrittenPart("the degradation experiment, run on your engine", 15),),
               ("examples/04_residual_block.py", "examples/05_plain_vs_residual.py",
                "examples/06_train_resnet20.py", "examples/07_backend_switch.py",
                "examples/vgg_vs_resnet.py")),  # they train or build ResNets: need A3 and A4
)}

TASKS = {t.id: t for t in (
    Task("mul_backward", "A1", "Mul.backward", "tinyres/ops.py",
         "return dL/da = gy * b and dL/db = gy * a, each summed back to its input's shape "
         "(unbroadcast)"),
    Task("matmul_backward", "A1", "MatMul.backward", "tinyres/ops.py",
         "return dL/da = gy @ b^T and dL/db = a^T @ gy (batched; 1-D operands as vectors)"),
    Task("sum_backward", "A1", "Sum.backward", "tinyres/ops.py",
         "send dL/dy to every summed element: restore the summed axes, broadcast to x's shape"),
    Task("conv2d_loops", "A2", "conv2d_loops", "tinyres/functional/conv_loops.py",
         "the definition as seven loops: for every output element, the sum over its window of "
         "weight times input, zero outside the image"),
    Task("im2col", "A2", "im2col", "tinyres/functional/conv.py",
         "copy every (KH, KW) patch of x into one row of cols (N*OH*OW, C*KH*KW), columns "
         "(c, kh, kw)", twins=("im2col",)),
    Task("col2im", "A2", "col2im", "tinyres/functional/conv.py",
         "add every row of cols back onto the patch it came from (overlaps add), drop the "
         "padding", twins=("col2im",)),
    Task("conv2d_forward", "A2", "conv2d_forward", "tinyres/functional/conv.py",
         "y = im2col(x) @ W.reshape(OC, -1).T, reshaped to (N, OC, OH, OW)",
         twins=("conv2d_forward",), other_routes=("tinyres/functional/winograd.py",),
         uses=("im2col",)),
    Task("conv2d_backward", "A2", "conv2d_backward", "tinyres/functional/conv.py",
         "dW = gY^T cols and dx = col2im(gY W2), with gY = gy as rows (N*OH*OW, OC)",
         twins=("conv2d_backward",), other_routes=("tinyres/functional/winograd.py",),
         uses=("im2col", "col2im", "conv2d_forward")),
    Task("batch_norm_graph", "A3", "batch_norm_graph", "tinyres/functional/batchnorm_graph.py",
         "batch norm in training mode from tinyres ops (mean, subtraction, powers, products): "
         "autograd derives the backward"),
    Task("batch_norm_backward", "A3", "batch_norm_train_backward",
         "tinyres/functional/batchnorm.py",
         "the closed form dx = (weight * inv_std / m) (m dy - sum dy - x_hat sum(dy x_hat)), "
         "dweight, dbias", twins=("batch_norm_train_backward",)),
    Task("max_pool_backward", "A3", "max_pool2d_backward", "tinyres/functional/pooling.py",
         "scatter-add each gy into gx at its window's argmax (overlapping windows add)",
         twins=("max_pool2d_backward",)),
    Task("zero_pad_shortcut", "A4", "ZeroPadShortcut.forward", "tinyres/models/blocks.py",
         "option A: x[:, :, ::s, ::s], then zero channels: pad_before before, pad_after after"),
    Task("residual_forward", "A4", "ResidualBlock.forward", "tinyres/models/blocks.py",
         "y = relu(F(x) + shortcut(x)), or relu(F(x)) when the block is plain (no shortcut)"),
    Task("basic_block_residual", "A4", "BasicBlock.residual", "tinyres/models/blocks.py",
         "F(x) = bn2(conv2(relu(bn1(conv1(x))))): two 3x3 convs, BN after each, ReLU between"),
    Task("sgd_momentum", "A4", "SGD.step", "tinyres/optim/sgd.py",
         "for each parameter: g = grad + wd*w; buffer = g (first step) or mu*buffer + "
         "(1-tau)*g; g = g + mu*buffer (nesterov) or buffer; w -= lr*g"),
)}


# The order a course releases its assignments in (a settings file may give another): the copy
# of one holds the finished code of those before it and holes for it and every one after it.
RELEASE_ORDER = ("A1", "A2", "A3", "A4")


def released_after(assignment_id, order=RELEASE_ORDER):
    """The assignments released after `assignment_id` in `order`."""
    return tuple(order[order.index(assignment_id) + 1:])


def tasks_of(assignment_id):
    return [t for t in TASKS.values() if t.assignment == assignment_id]


def check_assignment_id(assignment_id):
    if assignment_id not in ASSIGNMENTS:
        raise ValueError(f"unknown assignment {assignment_id!r}; the assignments are "
                         f"{', '.join(ASSIGNMENTS)}")
    return ASSIGNMENTS[assignment_id]
