"""The only grading code that runs in the student's process: compute, never judge.

    PRIVATE-VENV/bin/python -I runner.py     (working directory: the task's scratch folder)

The grader starts it with an interpreter of its own making that sees NumPy and nothing else of
the grader's installation (no site-packages, no editable finder: `import tinyres` can only
find the submission's copy in ./package). It reads request.json (the cases: recipe, settings)
and request.npz (their input arrays), computes each case's outputs and writes them to
outputs.npz, with outputs.json saying per case whether it raised (the exception, its message,
and the last line of the student's copy it passed through). Nothing here decides a score: the
grader reads the arrays it expects, by its own list of cases, and compares them in its own
process; a case without its arrays fails. Whatever this process prints, patches or fakes, only
the arrays it returns count, and the messages only ever explain a failure.

The process is a guard and its child. The guard forks before any student code is imported,
so the student's code has the guard, not the grader, as its parent; it is the child
subreaper of everything the student's code starts (Linux: an orphan, a `setsid` daemon or a
double fork included, becomes the guard's child, not init's), and when the child ends it kills
every such process before it exits with the child's status: the grader reads the outputs
only once nothing of the student's is left to rewrite them. Limits set here (file size, no
core files) hold for everything the student's code starts.

When request.json names functions to `substitute` (grading conv2d_backward, which calls the
student's im2col and col2im), the grader's plain NumPy references (./references.py, copied in
for that task only) stand in for them, so one bug costs points in one function.

Plain Python and NumPy at the top; tinyres is imported from ./package when the cases run.
"""
import ctypes
import importlib.util
import json
import os
import resource
import signal
import sys
import traceback

import numpy

PACKAGE = os.path.abspath("package")
MAX_FILE_BYTES = 64 * 2**20        # no file the student's code writes grows past this
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36        # linux/prctl.h


def _function(name):
    """tinyres's readable function `name` (the student's, never a fast twin)."""
    from tinyres.functional import conv, conv_loops
    where = {"im2col": conv, "col2im": conv, "conv2d_forward": conv, "conv2d_backward": conv,
             "conv2d_loops": conv_loops}[name]
    function = getattr(where, name)
    return getattr(function, "reference", function)


def run_function(params, inputs):
    """Recipe "function": one call on NumPy arrays; a tuple result is numbered in order."""
    name = params["function"]
    settings = {k: (tuple(v) if isinstance(v, list) else v) for k, v in params.items()
                if k != "function"}
    args = list(inputs.values())
    if name == "col2im":
        settings["x_shape"] = tuple(settings["x_shape"])
        args.insert(1, settings.pop("x_shape"))
    result = _function(name)(*args, **settings)
    names = {"im2col": ["cols"], "col2im": ["x"], "conv2d_forward": ["y"],
             "conv2d_loops": ["y"], "conv2d_backward": ["gx", "gweight"]}[name]
    result = result if isinstance(result, tuple) else (result,)
    return dict(zip(names, result))


def _op(params, inputs):
    """The op of recipe "autograd" and the names of its differentiated inputs."""
    import tinyres.functional as F
    op = params["op"]
    if op == "conv2d":
        return (lambda x, w, b: F.conv2d(x, w, b, stride=params["stride"],
                                         padding=params["padding"])), ["x", "weight", "bias"]
    if op in ("batch_norm", "batch_norm_graph"):
        names = ["x", "weight", "bias"] if params["affine"] else ["x"]
        if op == "batch_norm":
            def norm(x, weight=None, bias=None):
                return F.batch_norm(x, None, None, weight, bias, training=True)
        else:
            from tinyres.functional.batchnorm_graph import batch_norm_graph as norm
        return norm, names
    if op == "max_pool2d":
        return (lambda x: F.max_pool2d(x, tuple(params["kernel"]), tuple(params["stride"]),
                                       tuple(params["padding"]))), ["x"]
    if op == "zero_pad_shortcut":
        from tinyres.models.blocks import ZeroPadShortcut
        return ZeroPadShortcut(params["in_channels"], params["out_channels"],
                               params["stride"]), ["x"]
    if op == "residual_probe":
        return _residual_probe(params, inputs), ["x"]
    if op == "basic_block_residual":
        from tinyres.models.blocks import BasicBlock
        block = BasicBlock(params["in_channels"], params["channels"], stride=params["stride"],
                           shortcut="B").to(dtype=numpy.float64)
        for name, value in (("conv1.weight", "conv1"), ("bn1.weight", "bn1_weight"),
                            ("bn1.bias", "bn1_bias"), ("conv2.weight", "conv2"),
                            ("bn2.weight", "bn2_weight"), ("bn2.bias", "bn2_bias")):
            dict(block.named_parameters())[name].data[...] = inputs[value]
        return block.residual, ["x"]
    raise ValueError(f"unknown op {op!r}")


def _residual_probe(params, inputs):
    """A ResidualBlock whose branch F is fixed: x*x - x at stride 1, else a given 1x1 conv."""
    import tinyres
    import tinyres.functional as F
    from tinyres.models.blocks import ResidualBlock
    stride = params["stride"]
    branch = tinyres.tensor(inputs["branch_weight"])

    class Probe(ResidualBlock):
        def __init__(self):
            super().__init__()
            self._add_shortcut(params["option"], 3, params["channels"], stride, "shortcut")

        def residual(self, x):
            return x * x - x if stride == 1 else F.conv2d(x, branch, stride=stride)

    block = Probe().to(dtype=numpy.float64)
    shortcut = block.shortcut_path()
    if params["option"] == "B" and stride != 1:          # the projection: 1x1 conv, then BN
        shortcut[0].weight.data[...] = inputs["projection_weight"]
    return block


def run_autograd(params, inputs):
    """Recipe "autograd": forward on leaf Tensors, backward with the given direction."""
    import tinyres
    op, names = _op(params, inputs)
    leaves = [tinyres.tensor(inputs[n].copy(), requires_grad=True) for n in names]
    out = op(*leaves)
    out.backward(tinyres.tensor(inputs["direction"]))
    outputs = {"forward": out.numpy()}
    for name, leaf in zip(names, leaves):
        if leaf.grad is None:
            raise RuntimeError(f"no gradient reached input {name!r}: the output must be built "
                               f"from tinyres ops")
        outputs[f"grad {name}"] = numpy.asarray(leaf.grad)
    return outputs


def _forward_switched_off(*args, **kwargs):
    raise RuntimeError("backward called forward again: a backward computes the gradient from "
                       "what forward saved (no numerical differentiation)")


def run_backward(params, inputs):
    """Recipe "backward": the op's Function called by hand on arrays, forward then
    backward(gy) with the given gy, so the gradients are what the student's backward returns
    (no graph, no Tensor.backward, nothing else of the engine in between). The class's forward
    is switched off while backward runs."""
    from tinyres import ops
    op = params["op"]
    if op == "sum":
        axis = tuple(params["axis"]) if isinstance(params["axis"], list) else params["axis"]
        node, names = ops.Sum(axis, params["keepdims"]), ["x"]
    else:
        node, names = {"mul": ops.Mul, "matmul": ops.MatMul}[op](), ["a", "b"]
    node.needs_input_grad = (True,) * len(names)
    forward = node.forward(*[inputs[n].copy() for n in names])
    function = type(node)
    kept, function.forward = function.forward, _forward_switched_off
    try:
        grads = node.backward(inputs["direction"].copy())
    finally:
        function.forward = kept
    grads = grads if isinstance(grads, tuple) else (grads,)
    if len(grads) != len(names):
        raise RuntimeError(f"{function.__name__}.backward returned {len(grads)} gradient(s) "
                           f"for {len(names)} input(s)")
    return {"forward": forward, **{f"grad {n}": g for n, g in zip(names, grads)}}


def run_sgd(params, inputs):
    """Recipe "sgd": SGD.step after each step's gradients are set (None where not sent)."""
    from tinyres.nn import Parameter
    from tinyres.optim import SGD
    weights = [Parameter(inputs[f"start {i}"].copy()) for i in range(params["parameters"])]
    optimizer = SGD(weights, **params["hyper"])
    for step in range(params["steps"]):
        for i, p in enumerate(weights):
            grad = inputs.get(f"grad {step} {i}")
            p.grad = None if grad is None else grad.copy()
        optimizer.step()
    return {f"param {i}": p.numpy() for i, p in enumerate(weights)}


def count_lines(call):
    """(call(), the number of lines of Python it ran in the copy's files): a trace function on
    every frame whose code is in ./package; NumPy's and this file's lines are not counted."""
    count = 0

    def on_line(frame, event, arg):
        nonlocal count
        count += event == "line"
        return on_line

    def on_call(frame, event, arg):
        return on_line if frame.f_code.co_filename.startswith(PACKAGE + os.sep) else None
    sys.settrace(on_call)
    try:
        result = call()
    finally:
        sys.settrace(None)
    return result, count


def run_goal(params, inputs):
    """Recipe "goal": recipe params["call"] at a small and a large size (inputs and outputs
    prefixed 'small/', 'large/'), and "lines": the lines of the copy each size ran."""
    outputs, lines = {}, []
    for size in ("small", "large"):
        sized = {k.split("/", 1)[1]: v for k, v in inputs.items() if k.startswith(size + "/")}
        result, count = count_lines(lambda: RECIPES[params["call"]](params[size], sized))
        outputs.update({f"{size}/{k}": v for k, v in result.items()})
        lines.append(count)
    outputs["lines"] = numpy.array(lines)
    return outputs


RECIPES = {"function": run_function, "autograd": run_autograd, "backward": run_backward,
           "sgd": run_sgd, "goal": run_goal}


def substitute(names):
    """Put the grader's references (./references.py) in place of the copy's functions `names`
    (im2col, col2im, conv2d_forward), where the functions that call them look them up."""
    spec = importlib.util.spec_from_file_location("references", os.path.abspath("references.py"))
    references = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(references)
    from tinyres.functional import conv
    stand_ins = {
        "im2col": lambda x, kernel_size, stride=1, padding=0:
            references.im2col_loops(x, kernel_size, stride, padding),
        "col2im": lambda cols, x_shape, kernel_size, stride=1, padding=0:
            references.col2im_loops(cols, x_shape, kernel_size, stride, padding),
        "conv2d_forward": lambda x, weight, stride, padding:
            references.conv_reference(x, weight, stride, padding),
    }
    for name in names:
        setattr(conv, name, stand_ins[name])


def where_in_copy(err):
    """'file:line in function: code' for the last frame of the traceback inside the copy."""
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if os.path.abspath(f.filename).startswith(PACKAGE + os.sep)]
    if not frames:
        return None
    frame = frames[-1]
    where = f"{os.path.relpath(frame.filename, PACKAGE)}:{frame.lineno} in {frame.name}"
    code = (frame.line or "").strip()
    return where if not code or code.startswith("raise NotImplementedError") else f"{where}: {code}"


def run_cases():
    """The child: the student's code runs here (its parent is the guard)."""
    sys.path.insert(0, PACKAGE)
    with open("request.json") as f:
        request = json.load(f)
    arrays = numpy.load("request.npz", allow_pickle=False)
    if request.get("substitute"):
        substitute(request["substitute"])
    outputs, report = {}, {"cases": []}
    for index, case in enumerate(request["cases"]):
        inputs = {name: arrays[f"{index}/{name}"] for name in case["inputs"]}
        try:
            result = RECIPES[case["call"]](case["params"], inputs)
            for name, value in result.items():
                outputs[f"{index}/{name}"] = numpy.asarray(value)
            report["cases"].append(None)
        except BaseException as err:                 # the student's code raised: say where
            report["cases"].append({"error": type(err).__name__, "message": str(err)[:500],
                                    "where": where_in_copy(err)})
    numpy.savez("outputs.npz.part", **outputs)
    os.replace("outputs.npz.part.npz", "outputs.npz")
    with open("outputs.json", "w") as f:
        json.dump(report, f)


def children():
    """The pids whose parent is this process (zombies included), from /proc."""
    me, pids = os.getpid(), set()
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):      # not a process, or it ended meanwhile
            continue
        if ppid == me:
            pids.add(int(entry))
    return pids


def kill_descendants():
    """SIGKILL and reap every child, round after round: the orphans of one round are the
    subreaper's children in the next, until none is left."""
    while pids := children():
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in pids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def main():
    """The guard: set the limits, fork the child that runs the cases, wait for it, kill what
    it left behind, exit with its status."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_BYTES, MAX_FILE_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    linux = sys.platform.startswith("linux")
    if linux:
        ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    child = os.fork()
    if child == 0:
        if linux:                                  # the child dies with its guard
            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        try:
            run_cases()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(0)
    _, status = os.waitpid(child, 0)
    if linux:
        kill_descendants()
    code = os.waitstatus_to_exitcode(status)
    os._exit(code if code >= 0 else 128 - code)       # killed by signal s: 128 + s, as a shell


if __name__ == "__main__":
    main()
