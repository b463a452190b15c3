"""The grader's cases: inputs it sends to the student's code and the outputs it expects.

Each task has visible cases (the geometries its handout names, seed 0) and hidden ones (other
shapes, values from a seed drawn for each grading run), so code that special-cases the visible
tests loses marks. A case says which recipe of tinyres/course/runner.py computes it in the
student's process (`call`, `params`), the arrays sent (`inputs`), and what the grader expects
back (`expected`, computed here by tinyres/course/references.py and never sent).

Recipe "function" calls one function on arrays; recipe "backward" calls an op's Function by
hand, forward then backward with dL/doutput = a random `direction` (A1: the gradients are what
the student's backward returns, compared with analytic ones); recipe "autograd" builds an op
from Tensors, runs backward with a random `direction`, and returns the forward output and each
input's gradient; "sgd" runs SGD.step on given gradients.

A goal case checks what a handout asks beyond the numbers: "without a Python loop over images,
channels or pixels". Recipe "goal" runs one case at a small and at a large size (4x the images,
4x the channels, 4x the pixels, the same kernel) and counts the lines of Python the student's
copy executes for each (sys.settrace in the runner, counting only frames in the copy's files).
Code that loops over kernel offsets only runs the same lines at both sizes; a loop over images,
channels or pixels runs more lines at the large size. A structural check, not a timing: it
gives the same verdict on a loaded laptop and on Gradescope. Both sizes must also be right.
"""
from dataclasses import dataclass, field

import numpy

from tinyres.course import references as ref

FORWARD_TOL = 1e-9           # float64 results computed in another order: ~1e-15 apart (also
                             # A1's gradients, against analytic references)
GRADIENT_TOL = 1e-5          # central differences, eps 1e-6, float64: ~1e-8 apart; bugs ~1e-1
GOAL = "goal: no Python loop over images, channels or pixels"
GOAL_EXTRA_LINES = 2         # lines the large size may run beyond the small one (a loop over
#                              4x the images runs 6 more, at least: 3 more passes, 2 lines each)
GOAL_WEIGHT = 2              # the goal case's weight among its function's cases (default 1)


@dataclass
class Case:
    name: str                                   # what the student reads: shapes, stride, ...
    call: str                                   # the runner's recipe
    params: dict                                # JSON: the recipe's settings
    inputs: dict                                # name -> array, sent to the student's process
    expected: dict                              # output name -> array, kept by the grader
    tolerance: dict = field(default_factory=dict)   # output name -> tolerance
    hidden: bool = False
    weight: float = 1                           # its share of the function's points
    extra_lines: int = None                     # a goal case: the most lines the large size may
    #                                             run beyond the small one


def goal_case(small, large):
    """The goal case of recipe "goal" from two cases of one recipe, a small and a large size:
    inputs and expected outputs prefixed 'small/' and 'large/'."""
    def both(field_of):
        return {f"{size}/{k}": v for size, case in (("small", small), ("large", large))
                for k, v in field_of(case).items()}
    return Case(GOAL, "goal", {"call": small.call, "small": small.params, "large": large.params},
                both(lambda c: c.inputs), both(lambda c: c.expected),
                both(lambda c: c.tolerance), weight=GOAL_WEIGHT, extra_lines=GOAL_EXTRA_LINES)


def build(task_id, seed, hidden_seed):
    """The visible cases (from `seed`) then the hidden ones (from `hidden_seed`) of a task,
    then its goal case if its handout states one (visible: the student knows the rule)."""
    visible = CASES[task_id](numpy.random.default_rng(seed), hidden=False)
    hidden = CASES[task_id](numpy.random.default_rng(hidden_seed), hidden=True)
    for case in hidden:
        case.hidden = True
    goal = [GOALS[task_id](numpy.random.default_rng(seed))] if task_id in GOALS else []
    return visible + hidden + goal


def gradient_case(name, op, reference, arrays, rng, **params):
    """A case for recipe "autograd": `op` (a runner op name) on `arrays` (name -> array),
    expected forward = reference(*arrays), gradients by central differences."""
    values = list(arrays.values())
    forward = reference(*values)
    direction = rng.standard_normal(forward.shape)
    grads = ref.numeric_gradients(reference, values, direction)
    expected = {"forward": forward, **{f"grad {k}": g for k, g in zip(arrays, grads)}}
    tolerance = {k: FORWARD_TOL if k == "forward" else GRADIENT_TOL for k in expected}
    return Case(name, "autograd", {"op": op, **params}, {**arrays, "direction": direction},
                expected, tolerance)


def backward_case(name, op, arrays, forward, gradients, rng, **params):
    """A case for recipe "backward": `op`'s Function on `arrays` (name -> array), expected
    forward = forward(*arrays) and the analytic gradients(*arrays, direction)."""
    values = list(arrays.values())
    y = numpy.asarray(forward(*values))
    direction = rng.standard_normal(y.shape)
    grads = gradients(*values, direction)
    expected = {"forward": y, **{f"grad {k}": g for k, g in zip(arrays, grads)}}
    return Case(name, "backward", {"op": op, **params}, {**arrays, "direction": direction},
                expected, {k: FORWARD_TOL for k in expected})


def function_case(name, function, inputs, expected, tolerance=FORWARD_TOL, **params):
    """A case for recipe "function": tinyres.<function>(*inputs, **params)."""
    return Case(name, "function", {"function": function, **params}, inputs, expected,
                {k: tolerance for k in expected})


# -- A1 -----------------------------------------------------------------------------------------
def mul_cases(rng, hidden):
    shapes = (((3, 4, 2), (4, 1)), ((1, 5), (3, 1))) if hidden else (
        ((2, 3), (2, 3)), ((3, 1, 4), (5, 1)), ((4,), ()))
    return [backward_case(f"{a} * {b}", "mul",
                          {"a": rng.standard_normal(a), "b": rng.standard_normal(b)},
                          lambda a, b: a * b, ref.mul_gradients, rng)
            for a, b in shapes]


def matmul_cases(rng, hidden):
    shapes = (((2, 1, 3, 4), (5, 4, 2)), ((5,), (5,))) if hidden else (
        ((3, 4), (4, 2)), ((2, 3, 4), (4, 5)), ((4,), (4, 3)), ((3, 4), (4,)))
    return [backward_case(f"{a} @ {b}", "matmul",
                          {"a": rng.standard_normal(a), "b": rng.standard_normal(b)},
                          lambda a, b: a @ b, ref.matmul_gradients, rng)
            for a, b in shapes]


def sum_cases(rng, hidden):
    settings = (((3, 2, 5), (0, 1), False), ((4, 3), -2, True)) if hidden else (
        ((2, 3, 4), None, False), ((2, 3, 4), 1, False), ((2, 3, 4), (0, 2), True),
        ((2, 3, 4), -1, False))
    return [backward_case(f"x {shape}.sum(axis={axis}, keepdims={keepdims})", "sum",
                          {"x": rng.standard_normal(shape)},
                          lambda x, axis=axis, keepdims=keepdims: x.sum(axis=axis,
                                                                        keepdims=keepdims),
                          lambda x, gy, axis=axis, keepdims=keepdims: ref.sum_gradients(
                              x, gy, axis, keepdims), rng, axis=axis, keepdims=keepdims)
            for shape, axis, keepdims in settings]


# -- A2 -----------------------------------------------------------------------------------------
VISIBLE_CONVS = (  # (x shape, (OC, KH, KW), stride, padding): the handout's four geometries
    ((2, 3, 5, 5), (4, 3, 3), (1, 1), (1, 1)),
    ((2, 3, 5, 6), (2, 3, 3), (2, 2), (1, 1)),
    ((1, 2, 6, 5), (3, 2, 3), (2, 1), (1, 0)),
    ((2, 3, 4, 4), (2, 1, 1), (2, 2), (0, 0)),
)
HIDDEN_CONVS = (
    ((3, 2, 7, 6), (3, 3, 2), (1, 2), (0, 1)),
    ((1, 4, 9, 8), (2, 5, 5), (3, 2), (2, 2)),
    ((2, 1, 3, 3), (1, 3, 3), (1, 1), (1, 1)),
)


def _convs(hidden):
    return HIDDEN_CONVS if hidden else VISIBLE_CONVS


def _describe(x_shape, kernel, stride, padding):
    return f"x {x_shape}, kernel {kernel}, stride {stride}, padding {padding}"


def conv_loops_cases(rng, hidden):
    cases = []
    for x_shape, (OC, KH, KW), stride, padding in _convs(hidden)[:3]:
        x, w, b = (rng.standard_normal(x_shape), rng.standard_normal((OC, x_shape[1], KH, KW)),
                   rng.standard_normal(OC))
        cases.append(function_case(
            _describe(x_shape, (KH, KW), stride, padding) + ", bias", "conv2d_loops",
            {"x": x, "weight": w, "bias": b}, {"y": ref.conv_reference(x, w, stride, padding, b)},
            stride=list(stride), padding=list(padding)))
    return cases


def im2col_cases(rng, hidden, convs=None):
    cases = []
    for x_shape, (_, KH, KW), stride, padding in convs or _convs(hidden):
        x = rng.standard_normal(x_shape)
        cases.append(function_case(
            _describe(x_shape, (KH, KW), stride, padding), "im2col", {"x": x},
            {"cols": ref.im2col_loops(x, (KH, KW), stride, padding)},
            kernel_size=[KH, KW], stride=list(stride), padding=list(padding)))
    return cases


def col2im_cases(rng, hidden, convs=None):
    cases = []
    for x_shape, (_, KH, KW), stride, padding in convs or _convs(hidden):
        rows = ref.im2col_loops(numpy.zeros(x_shape), (KH, KW), stride, padding).shape
        cols = rng.standard_normal(rows)
        cases.append(function_case(
            _describe(x_shape, (KH, KW), stride, padding), "col2im", {"cols": cols},
            {"x": ref.col2im_loops(cols, x_shape, (KH, KW), stride, padding)},
            x_shape=list(x_shape), kernel_size=[KH, KW], stride=list(stride),
            padding=list(padding)))
    return cases


def conv_forward_cases(rng, hidden, convs=None):
    cases = []
    for x_shape, (OC, KH, KW), stride, padding in convs or _convs(hidden):
        x, w = rng.standard_normal(x_shape), rng.standard_normal((OC, x_shape[1], KH, KW))
        cases.append(function_case(
            _describe(x_shape, (KH, KW), stride, padding), "conv2d_forward",
            {"x": x, "weight": w}, {"y": ref.conv_reference(x, w, stride, padding)},
            stride=list(stride), padding=list(padding)))
    return cases


def conv_backward_cases(rng, hidden, convs=None):
    cases = []
    for x_shape, (OC, KH, KW), stride, padding in convs or _convs(hidden)[:3]:
        x, w = rng.standard_normal(x_shape), rng.standard_normal((OC, x_shape[1], KH, KW))
        gy = rng.standard_normal(ref.conv_reference(x, w, stride, padding).shape)
        gx, gw = ref.numeric_gradients(lambda x, w: ref.conv_reference(x, w, stride, padding),
                                       [x, w], gy)
        cases.append(function_case(
            _describe(x_shape, (KH, KW), stride, padding), "conv2d_backward",
            {"gy": gy, "x": x, "weight": w}, {"gx": gx, "gweight": gw}, GRADIENT_TOL,
            stride=list(stride), padding=list(padding)))
    x, w, b = (rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((2, 3, 3, 3)),
               rng.standard_normal(2))
    cases.append(gradient_case("F.conv2d with bias, stride 1, padding 1", "conv2d",
                               lambda x, w, b: ref.conv_reference(x, w, (1, 1), (1, 1), b),
                               {"x": x, "weight": w, "bias": b}, rng, stride=1, padding=1))
    return cases


# -- A3 -----------------------------------------------------------------------------------------
def _batch_norm_cases(rng, hidden, op):
    shapes = ((5, 2, 3, 1), (7, 4)) if hidden else ((4, 3, 3, 2), (6, 3))
    cases = []
    for shape in shapes:
        C = shape[1]
        cases.append(gradient_case(
            f"x {shape}, affine", op, ref.batch_norm_reference,
            {"x": rng.standard_normal(shape), "weight": rng.standard_normal(C),
             "bias": rng.standard_normal(C)}, rng, affine=True))
    cases.append(gradient_case(
        f"x {(2, 3, 2, 2) if hidden else (3, 2, 2, 2)}, no affine", op,
        lambda x: ref.batch_norm_reference(x, None, None),
        {"x": rng.standard_normal((2, 3, 2, 2) if hidden else (3, 2, 2, 2))}, rng, affine=False))
    return cases


def batch_norm_graph_cases(rng, hidden):
    return _batch_norm_cases(rng, hidden, "batch_norm_graph")


def batch_norm_cases(rng, hidden):
    return _batch_norm_cases(rng, hidden, "batch_norm")


def max_pool_cases(rng, hidden):
    settings = ((((1, 3, 8, 9), (3, 2), (2, 1), (1, 1)), ((2, 1, 4, 4), (4, 4), (1, 1), (0, 0)))
                if hidden else
                (((2, 3, 7, 7), (3, 3), (2, 2), (1, 1)), ((2, 2, 6, 5), (2, 2), (2, 2), (0, 0)),
                 ((1, 2, 5, 5), (3, 3), (1, 1), (1, 1))))
    return [gradient_case(f"x {shape}, kernel {kernel}, stride {stride}, padding {padding}",
                          "max_pool2d",
                          lambda x, k=kernel, s=stride, p=padding: ref.max_pool_reference(x, k, s,
                                                                                          p),
                          {"x": rng.standard_normal(shape)}, rng,   # continuous: no ties
                          kernel=list(kernel), stride=list(stride), padding=list(padding))
            for shape, kernel, stride, padding in settings]


# -- A4 -----------------------------------------------------------------------------------------
def zero_pad_cases(rng, hidden):
    settings = ((5, 9, 3), (1, 4, 2)) if hidden else ((4, 8, 2), (3, 8, 2), (4, 4, 1), (2, 6, 1))
    return [gradient_case(f"{c_in} -> {c_out} channels, stride {stride}", "zero_pad_shortcut",
                          lambda x, c=c_out, s=stride: ref.zero_pad_reference(x, c, s),
                          {"x": rng.standard_normal((2, c_in, 5, 6))}, rng,
                          in_channels=c_in, out_channels=c_out, stride=stride)
            for c_in, c_out, stride in settings]


def residual_cases(rng, hidden):
    """A block whose branch F is known (x^2 - x at stride 1, a given conv at stride 2), so only
    the addition, the shortcut slot and the last ReLU are tested."""
    settings = (("B", 5, 2), ("none", 3, 2)) if hidden else (("A", 3, 1), ("none", 3, 1),
                                                              ("B", 6, 2))
    cases = []
    for option, channels, stride in settings:
        branch_w = rng.standard_normal((channels, 3, 1, 1))
        projection_w = rng.standard_normal((channels, 3, 1, 1))

        def reference(x, option=option, stride=stride, branch_w=branch_w,
                      projection_w=projection_w):
            f = x * x - x if stride == 1 else ref.conv_reference(x, branch_w, (stride,) * 2,
                                                                 (0, 0))
            if option == "A":                   # stride 1, same channels: the identity
                f = f + x
            elif option == "B":
                f = f + ref.batch_norm_reference(
                    ref.conv_reference(x, projection_w, (stride,) * 2, (0, 0)), None, None)
            return numpy.maximum(f, 0.0)
        cases.append(gradient_case(
            f"shortcut option {option!r}, 3 -> {channels} channels, stride {stride}",
            "residual_probe", lambda x, r=reference: r(x),
            {"x": rng.standard_normal((2, 3, 4, 4))}, rng, option=option, channels=channels,
            stride=stride))
        cases[-1].inputs.update(branch_weight=branch_w, projection_weight=projection_w)
    return cases


def basic_block_cases(rng, hidden):
    settings = ((3, 5, 2),) if hidden else ((3, 3, 1), (2, 4, 2))
    cases = []
    for c_in, c_out, stride in settings:
        weights = {"conv1": rng.standard_normal((c_out, c_in, 3, 3)) * 0.5,
                   "bn1_weight": rng.standard_normal(c_out), "bn1_bias": rng.standard_normal(c_out),
                   "conv2": rng.standard_normal((c_out, c_out, 3, 3)) * 0.5,
                   "bn2_weight": rng.standard_normal(c_out), "bn2_bias": rng.standard_normal(c_out)}

        def reference(x, w=weights, s=stride):
            h = ref.conv_reference(x, w["conv1"], (s, s), (1, 1))
            h = numpy.maximum(ref.batch_norm_reference(h, w["bn1_weight"], w["bn1_bias"]), 0.0)
            h = ref.conv_reference(h, w["conv2"], (1, 1), (1, 1))
            return ref.batch_norm_reference(h, w["bn2_weight"], w["bn2_bias"])
        cases.append(gradient_case(f"{c_in} -> {c_out} channels, stride {stride}",
                                   "basic_block_residual", reference,
                                   {"x": rng.standard_normal((2, c_in, 4, 4))}, rng,
                                   in_channels=c_in, channels=c_out, stride=stride))
        cases[-1].inputs.update(weights)
    return cases


def sgd_cases(rng, hidden):
    settings = ((dict(lr=0.3, momentum=0.7, dampening=0.1, weight_decay=0.01),
                 dict(lr=0.01, momentum=0.95, nesterov=True)) if hidden else
                (dict(lr=0.1, momentum=0.9, weight_decay=1e-4),
                 dict(lr=0.05, momentum=0.9, dampening=0.5),
                 dict(lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=True),
                 dict(lr=0.2),
                 dict(lr=0.1, momentum=0.5, weight_decay=0.1)))
    cases = []
    for hyper in settings:
        start = [rng.standard_normal((3, 2)), rng.standard_normal(4)]
        grads = [[rng.standard_normal(w.shape) for w in start] for _ in range(4)]
        skip = {(2, 1)}                           # step 2: parameter 1 has no gradient
        final = ref.sgd_reference(start, grads, skip=skip, **hyper)
        inputs = {f"start {i}": w for i, w in enumerate(start)}
        inputs.update({f"grad {step} {i}": g for step, gs in enumerate(grads)
                       for i, g in enumerate(gs) if (step, i) not in skip})
        cases.append(Case(f"4 steps, {hyper}, no gradient for parameter 1 at step 2", "sgd",
                          {"hyper": hyper, "steps": len(grads), "parameters": len(start)},
                          inputs, {f"param {i}": w for i, w in enumerate(final)},
                          {f"param {i}": 1e-12 for i in range(len(final))}))
    return cases


# -- goals --------------------------------------------------------------------------------------
GOAL_CONVS = (((1, 1, 4, 4), (1, 3, 3), (1, 1), (1, 1)),     # small: one image, one channel
              ((4, 4, 8, 8), (1, 3, 3), (1, 1), (1, 1)))     # large: 4x each, the same kernel


def _goal(builder, settings):
    """A goal case from a case builder that takes the geometries to use."""
    def build_goal(rng):
        small, large = (builder(rng, [geometry])[0] for geometry in settings)
        return goal_case(small, large)
    return build_goal


def _conv_goal(cases_of):
    return _goal(lambda rng, convs: cases_of(rng, False, convs), GOAL_CONVS)


def _batch_norm_goal(rng, shapes):
    (shape,) = shapes
    return [gradient_case(f"x {shape}, affine", "batch_norm", ref.batch_norm_reference,
                          {"x": rng.standard_normal(shape), "weight": rng.standard_normal(
                              shape[1]), "bias": rng.standard_normal(shape[1])}, rng,
                          affine=True)]


GOALS = {  # task id -> builder(rng) of its goal case: the handouts' "no Python loop over..."
    "im2col": _conv_goal(im2col_cases),
    "col2im": _conv_goal(col2im_cases),
    "conv2d_forward": _conv_goal(conv_forward_cases),
    "conv2d_backward": _conv_goal(conv_backward_cases),
    "batch_norm_backward": _goal(_batch_norm_goal, ((1, 1, 2, 2), (4, 4, 4, 4))),
}


CASES = {  # task id -> builder(rng, hidden) of its cases
    "mul_backward": mul_cases,
    "matmul_backward": matmul_cases,
    "sum_backward": sum_cases,
    "conv2d_loops": conv_loops_cases,
    "im2col": im2col_cases,
    "col2im": col2im_cases,
    "conv2d_forward": conv_forward_cases,
    "conv2d_backward": conv_backward_cases,
    "batch_norm_graph": batch_norm_graph_cases,
    "batch_norm_backward": batch_norm_cases,
    "max_pool_backward": max_pool_cases,
    "zero_pad_shortcut": zero_pad_cases,
    "residual_forward": residual_cases,
    "basic_block_residual": basic_block_cases,
    "sgd_momentum": sgd_cases,
}
