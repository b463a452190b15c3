"""Course assignments: student copies of tinyres, and the autograder that scores them.

The code students write is marked in the source with comment lines

    # BEGIN SOLUTION A2 im2col
    ...the reference code...
    # END SOLUTION

where ``A2`` names the assignment and ``im2col`` the task (see TASKS below). Two tools use them:

    tinyres assignment make A2 --out DIR    a copy of the repository (tinyres/, kernels/, tests,
                                            docs, examples, pyproject.toml) in which every A2
                                            region is replaced by  raise NotImplementedError(...)
                                            saying what to implement; all else works as before
    tinyres assignment grade DIR            runs A2's checks against the copy and prints a score
                                            table, one row per function: pass/fail and the
                                            largest relative error; exit status 1 on a failure

The grader runs in a subprocess with DIR first on the path, so it imports the *student's* tinyres,
on the NumPy backend with the readable reference kernels (TINYRES_KERNELS=reference): a Numba or
GPU twin would otherwise stand in for the student's code. The checks themselves are this file's,
loaded by path from the grading installation, and compare with references written here in plain
NumPy float64: loops for im2col / col2im / convolution, central differences (against a random
projection of the output, never all ones) for every backward pass.

This module imports nothing of tinyres at the top: the checks import the student's tinyres when
they run.
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"


# ----------------------------------------------------------------------------------------------
# The assignments and their tasks
# ----------------------------------------------------------------------------------------------
@dataclass
class Assignment:
    id: str
    title: str
    handout: str                  # the handout, relative to the repository
    tests: list                   # test files copied into the student copy (beside conftest.py)


@dataclass
class Task:
    id: str                       # the tag in the markers: "# BEGIN SOLUTION A2 im2col"
    assignment: str
    function: str                 # what students implement, as the score table names it
    file: str                     # where, relative to the repository
    what: str                     # one line for the NotImplementedError
    check: object = field(default=None, repr=False)     # the grading function, set below


ASSIGNMENTS = {
    "A1": Assignment("A1", "Autograd and gradient checking", "docs/assignments/A1-autograd.md",
                     ["tests/test_autograd.py", "tests/test_ops.py", "tests/test_gradcheck.py"]),
    "A2": Assignment("A2", "Convolution as im2col + GEMM",
                     "docs/assignments/A2-im2col-convolution.md", ["tests/test_conv.py"]),
    "A3": Assignment("A3", "Batch norm and pooling", "docs/assignments/A3-batchnorm-pooling.md",
                     ["tests/test_batchnorm.py", "tests/test_pooling.py"]),
    "A4": Assignment("A4", "Residual networks on CIFAR-10",
                     "docs/assignments/A4-residual-networks.md",
                     ["tests/test_models_resnet.py", "tests/test_optim.py"]),
}

TASKS = {}


def task(assignment, task_id, function, file, what):
    """Register the decorated check as the grading of one task."""
    def decorate(check):
        TASKS[task_id] = Task(task_id, assignment, function, file, what, check)
        return check
    return decorate


def tasks_of(assignment_id):
    return [t for t in TASKS.values() if t.assignment == assignment_id]


def _check_assignment_id(assignment_id):
    if assignment_id not in ASSIGNMENTS:
        raise ValueError(f"unknown assignment {assignment_id!r}; the assignments are "
                         f"{', '.join(ASSIGNMENTS)}")


# ----------------------------------------------------------------------------------------------
# Finding the regions in the source
# ----------------------------------------------------------------------------------------------
@dataclass
class Region:
    file: Path
    task: str
    begin: int                    # line numbers (1-based) of the two marker lines
    end: int
    indent: str


def find_regions(text, path="<text>"):
    """The solution regions of a file's text, checked: every BEGIN names a known task of its
    assignment and is closed by an END before the next BEGIN."""
    regions, open_region = [], None
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            if open_region is not None:
                raise ValueError(f"{path}:{number}: '{BEGIN}' inside the region opened at line "
                                 f"{open_region.begin}")
            tag = stripped[len(BEGIN):].split()
            if len(tag) != 2 or tag[1] not in TASKS or TASKS[tag[1]].assignment != tag[0]:
                raise ValueError(f"{path}:{number}: expected '{BEGIN} <assignment> <task>' with "
                                 f"a known task, got {stripped!r}")
            indent = line[:len(line) - len(line.lstrip())]
            open_region = Region(Path(path), tag[1], number, 0, indent)
        elif stripped.startswith(END):
            if open_region is None:
                raise ValueError(f"{path}:{number}: '{END}' without a '{BEGIN}'")
            open_region.end = number
            regions.append(open_region)
            open_region = None
    if open_region is not None:
        raise ValueError(f"{path}:{open_region.begin}: '{BEGIN}' is never closed")
    return regions


def repository_root():
    """The source checkout this tinyres runs from (where pyproject.toml is)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file() or not (root / "kernels").is_dir():
        raise RuntimeError(f"tinyres assignment needs a source checkout of tinyres (with "
                           f"pyproject.toml and kernels/); this tinyres runs from {root}")
    return root


def all_regions(root=None):
    """Every solution region under root/tinyres, in file order."""
    root = Path(root) if root else repository_root()
    regions = []
    for path in sorted((root / "tinyres").rglob("*.py")):
        if path.resolve() != Path(__file__).resolve():     # this file names the markers
            regions += find_regions(path.read_text(), path)
    return regions


def strip_solutions(text, assignment_id, path="<text>"):
    """`text` with the regions of `assignment_id` replaced by a NotImplementedError that says
    what to implement (assignment_id None: keep every solution), and every marker line removed.
    """
    regions = {r.begin: r for r in find_regions(text, path)}
    out, skip_to = [], 0
    for number, line in enumerate(text.split("\n"), start=1):
        if number <= skip_to or line.strip().startswith(END):
            continue
        region = regions.get(number)
        if region is None:
            out.append(line)
        elif TASKS[region.task].assignment == assignment_id:
            out += student_stub(TASKS[region.task], region.indent)
            skip_to = region.end
    return "\n".join(out)


def student_stub(t, indent):
    """The lines that stand where the solution of task `t` was."""
    handout = ASSIGNMENTS[t.assignment].handout
    lines = textwrap.wrap(f"TODO {t.assignment}: {t.what}", 96 - len(indent))
    message = f"{t.assignment}: implement {t.function} (see {handout})"
    return ([f"{indent}# {lines[0]}"] + [f"{indent}#     {more}" for more in lines[1:]]
            + [f"{indent}raise NotImplementedError({json.dumps(message)})"])


# ----------------------------------------------------------------------------------------------
# make: the student copy
# ----------------------------------------------------------------------------------------------
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc", "out", "runs")


def make(assignment_id, out, solution=False, force=False, log=print):
    """Write the student copy of `assignment_id` to `out`; returns the list of tasks removed.

    solution=True keeps the reference code (a copy for course staff, with the markers removed).
    """
    _check_assignment_id(assignment_id)
    root, out = repository_root(), Path(out)
    if out.resolve() == root or root in out.resolve().parents:
        raise ValueError(f"--out {out} is inside the repository {root}; choose a folder outside it")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise FileExistsError(f"{out} exists and is not empty; choose another folder or pass "
                                  "--force to replace it")
        shutil.rmtree(out)
    assignment = ASSIGNMENTS[assignment_id]
    missing = {t.id for t in tasks_of(assignment_id)} - {r.task for r in all_regions(root)}
    if missing:
        raise RuntimeError(f"{assignment_id}: no solution region in the source for task(s) "
                           f"{', '.join(sorted(missing))}; its markers were lost")

    out.mkdir(parents=True, exist_ok=True)
    for folder in ("tinyres", "kernels", "docs", "examples"):
        if (root / folder).is_dir():
            shutil.copytree(root / folder, out / folder, ignore=_IGNORED)
    for name in ("pyproject.toml", "README.md", ".gitignore"):
        if (root / name).is_file():
            shutil.copy2(root / name, out / name)
    (out / "tests").mkdir()
    for test in ["tests/conftest.py"] + assignment.tests:
        if (root / test).is_file():
            shutil.copy2(root / test, out / test)

    removed = []
    for path in sorted((out / "tinyres").rglob("*.py")):
        if path.name == "assignment.py" and path.parent.name == "tinyres":
            continue
        text = path.read_text()
        if BEGIN not in text:
            continue
        regions = find_regions(text, path)
        removed += [(r.task, path.relative_to(out), r.begin) for r in regions
                    if TASKS[r.task].assignment == assignment_id and not solution]
        path.write_text(strip_solutions(text, None if solution else assignment_id, path))
    (out / ".tinyres-assignment").write_text(json.dumps(
        {"assignment": assignment_id, "title": assignment.title, "handout": assignment.handout,
         "solution": solution, "tasks": [t.id for t in tasks_of(assignment_id)]}, indent=2))

    log(f"{assignment_id} ({assignment.title}): {'solution' if solution else 'student'} copy "
        f"written to {out}")
    for task_id, path, line in removed:
        log(f"   to implement: {TASKS[task_id].function:<34} {path}:{line}")
    log(f"   handout:   {out / assignment.handout}")
    log(f"   work in:   cd {out} && export TINYRES_KERNELS=reference   (python -m ... run there "
        "imports this copy)")
    log("   test:      python -m pytest tests -q")
    log(f"   grade:     tinyres assignment grade {out}")
    return [task_id for task_id, _, _ in removed]


# ----------------------------------------------------------------------------------------------
# grade: run the checks in a subprocess on the student's copy
# ----------------------------------------------------------------------------------------------
_CHILD = """\
import importlib.util, sys
spec = importlib.util.spec_from_file_location("_tinyres_grader", sys.argv[1])
grader = importlib.util.module_from_spec(spec)
spec.loader.exec_module(grader)
sys.exit(grader.run_checks(sys.argv[2], sys.argv[3:]))
"""
RESULT = "@@result "
SOME_FAILED = 10              # the grading process's exit status when a check failed


def assignments_in(directory):
    """The assignment a copy was made for (from its .tinyres-assignment), else all of them."""
    marker = Path(directory) / ".tinyres-assignment"
    if marker.is_file():
        return [json.loads(marker.read_text())["assignment"]]
    return list(ASSIGNMENTS)


def grade(directory, assignment_ids=None, timeout=600, log=print):
    """Grade the tinyres in `directory`; returns {task id: result dict}. Prints the table."""
    directory = Path(directory).resolve()
    if not (directory / "tinyres" / "__init__.py").is_file():
        raise FileNotFoundError(f"{directory} holds no tinyres package (tinyres/__init__.py); "
                                "pass the folder `tinyres assignment make` wrote")
    ids = assignment_ids or assignments_in(directory)
    for assignment_id in ids:
        _check_assignment_id(assignment_id)
    task_ids = [t.id for a in ids for t in tasks_of(a)]

    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_ENABLE_CUDASIM",)}
    env.update(PYTHONPATH=os.pathsep.join([str(directory)] + [p for p in [
        os.environ.get("PYTHONPATH")] if p]), TINYRES_KERNELS="reference",
        TINYRES_BACKEND="numpy", PYTHONDONTWRITEBYTECODE="1")
    start, results, problem = time.perf_counter(), {}, None
    try:
        child = subprocess.run([sys.executable, "-c", _CHILD, str(Path(__file__).resolve()),
                                str(directory)] + task_ids, cwd=directory, env=env,
                               capture_output=True, text=True, timeout=timeout)
        stdout, stderr, code = child.stdout, child.stderr, child.returncode
    except subprocess.TimeoutExpired as err:
        stdout = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        stderr, code = "", None
        problem = f"the grading process did not finish within {timeout} s (an endless loop?)"
    imported_from = None
    for line in stdout.splitlines():
        if line.startswith(RESULT):
            result = json.loads(line[len(RESULT):])
            results[result["task"]] = result
        elif line.startswith("@@tinyres "):
            imported_from = line.split(" ", 1)[1]
    if problem is None and code not in (0, SOME_FAILED):
        problem = f"the grading process failed (exit status {code}):\n{stderr[-3000:]}"
    for task_id in task_ids:
        results.setdefault(task_id, {"task": task_id, "passed": False, "cases": 0, "failed": 0,
                                     "max_rel_error": None,
                                     "message": "not graded: " + (problem or "no result").split(
                                         "\n")[0].split(" (")[0]})
    _print_table(ids, results, directory, imported_from, time.perf_counter() - start, log)
    if problem:
        log(problem)
    return results


def _print_table(ids, results, directory, imported_from, seconds, log):
    log(f"grading {', '.join(ids)} in {directory}")
    log(f"tinyres imported from {imported_from or '?'}; NumPy backend, reference kernels, "
        f"float64 checks")
    header = f"{'function':<34} {'file':<32} {'cases':>7} {'max rel err':>11}  result"
    for assignment_id in ids:
        log("")
        log(f"{assignment_id}: {ASSIGNMENTS[assignment_id].title}")
        log(header)
        log("-" * len(header))
        passed = 0
        for t in tasks_of(assignment_id):
            r = results[t.id]
            error = "-" if r["max_rel_error"] is None else f"{r['max_rel_error']:.1e}"
            cases = f"{r['cases'] - r['failed']}/{r['cases']}"
            verdict = "pass" if r["passed"] else f"FAIL  {r['message']}"
            passed += r["passed"]
            log(f"{t.function:<34} {t.file:<32} {cases:>7} {error:>11}  {verdict}")
        total = len(tasks_of(assignment_id))
        log(f"score {assignment_id}: {passed}/{total} functions pass")
    log(f"({seconds:.1f} s)")


# -- in the child process -------------------------------------------------------------------------
def run_checks(directory, task_ids):
    """Run the checks of `task_ids` on the tinyres importable here; print one result line each.
    Exit status 0 when every check passed, SOME_FAILED otherwise (2: tinyres is not the copy's)."""
    import tinyres
    where = Path(tinyres.__file__).resolve().parent
    print(f"@@tinyres {where}", flush=True)
    if Path(directory).resolve() not in where.parents:
        print(f"tinyres was imported from {where}, not from the copy in {directory}",
              file=sys.stderr)
        return 2
    all_passed = True
    for task_id in task_ids:
        result = _run_one(TASKS[task_id])
        all_passed &= result["passed"]
        print(RESULT + json.dumps(result), flush=True)
    return 0 if all_passed else SOME_FAILED


def _run_one(t):
    result = {"task": t.id, "passed": False, "cases": 0, "failed": 0, "max_rel_error": None,
              "message": ""}
    worst, failures = 0.0, []
    try:
        for case, error, tolerance in t.check(numpy.random.default_rng(0)):
            result["cases"] += 1
            worst = max(worst, error)
            if not error <= tolerance:                   # NaN fails too
                result["failed"] += 1
                failures.append(f"{case}: relative error {error:.1e} > {tolerance:.0e}")
    except NotImplementedError as err:
        result.update(cases=max(result["cases"], 1), failed=max(result["failed"], 1),
                      message=f"NotImplementedError: {err}")
        return result
    except Exception as err:                             # the student's code raised
        result.update(cases=result["cases"] + 1, failed=result["failed"] + 1,
                      message=f"{type(err).__name__}: {str(err)[:300]}")
        return result
    result["max_rel_error"] = worst
    result["passed"] = not failures
    result["message"] = "; ".join(failures[:2])
    return result


# ----------------------------------------------------------------------------------------------
# What the checks compare with: plain NumPy float64, written here, independent of tinyres
# ----------------------------------------------------------------------------------------------
FORWARD_TOL = 1e-9           # float64 results computed in another order: ~1e-15 apart
GRADIENT_TOL = 1e-5          # central differences, eps 1e-6, float64: ~1e-8 apart; bugs ~1e-1


def rel_error(a, b):
    """max |a - b| / max(|a|, |b|, 1e-3) over all elements (shapes must match)."""
    a, b = numpy.asarray(a, dtype=numpy.float64), numpy.asarray(b, dtype=numpy.float64)
    if a.shape != b.shape:
        raise ValueError(f"wrong shape: got {a.shape}, expected {b.shape}")
    if a.size == 0:
        return 0.0
    return float((numpy.abs(a - b) / numpy.maximum(numpy.maximum(abs(a), abs(b)), 1e-3)).max())


def numeric_gradients(f, arrays, direction, eps=1e-6):
    """Central differences of L = <f(*arrays), direction> with respect to every array."""
    grads = []
    for array in arrays:
        grad = numpy.zeros_like(array)
        for index in numpy.ndindex(array.shape):
            keep = array[index]
            array[index] = keep + eps
            plus = (f(*arrays) * direction).sum()
            array[index] = keep - eps
            minus = (f(*arrays) * direction).sum()
            array[index] = keep
            grad[index] = (plus - minus) / (2 * eps)
        grads.append(grad)
    return grads


def autograd_gradients(op, arrays, direction):
    """(output, gradients) of the student's `op` on Tensors made from `arrays`, with
    dL/doutput = direction."""
    import tinyres
    leaves = [tinyres.tensor(a.copy(), requires_grad=True) for a in arrays]
    out = op(*leaves)
    out.backward(tinyres.tensor(direction))
    return out.numpy(), [leaf.grad if leaf.grad is None else numpy.asarray(leaf.grad)
                         for leaf in leaves]


def gradient_case(name, op, reference, arrays, rng):
    """Compare the student's forward and backward of `op` with `reference` (NumPy) and central
    differences; yields (case, relative error, tolerance) rows."""
    direction = rng.standard_normal(reference(*arrays).shape)
    out, grads = autograd_gradients(op, arrays, direction)
    yield f"{name}: forward", rel_error(out, reference(*arrays)), FORWARD_TOL
    expected = numeric_gradients(reference, [a.copy() for a in arrays], direction)
    for i, (got, want) in enumerate(zip(grads, expected)):
        if got is None:
            raise AssertionError(f"{name}: input {i} received no gradient")
        yield f"{name}: gradient of input {i}", rel_error(got, want), GRADIENT_TOL


def _pad(x, padding, value=0.0):
    (PH, PW) = padding
    return numpy.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)), constant_values=value)


def _out_size(size, kernel, stride, padding):
    return (size + 2 * padding - kernel) // stride + 1


def im2col_loops(x, kernel, stride, padding):
    N, C, H, W = x.shape
    (KH, KW), (SH, SW) = kernel, stride
    OH, OW = _out_size(H, KH, SH, padding[0]), _out_size(W, KW, SW, padding[1])
    xp = _pad(x, padding)
    rows = [xp[n, :, i * SH:i * SH + KH, j * SW:j * SW + KW].reshape(-1)
            for n in range(N) for i in range(OH) for j in range(OW)]
    return numpy.array(rows)


def col2im_loops(cols, x_shape, kernel, stride, padding):
    N, C, H, W = x_shape
    (KH, KW), (SH, SW), (PH, PW) = kernel, stride, padding
    OH, OW = _out_size(H, KH, SH, PH), _out_size(W, KW, SW, PW)
    x = numpy.zeros((N, C, H + 2 * PH, W + 2 * PW))
    row = 0
    for n in range(N):
        for i in range(OH):
            for j in range(OW):
                x[n, :, i * SH:i * SH + KH, j * SW:j * SW + KW] += cols[row].reshape(C, KH, KW)
                row += 1
    return x[:, :, PH:PH + H, PW:PW + W]


def conv_reference(x, w, stride, padding):
    """y[n,o,i,j] = sum_{c,kh,kw} w[o,c,kh,kw] x_pad[n,c,i*SH+kh,j*SW+kw], one kernel offset at a
    time."""
    N, C, H, W = x.shape
    OC, _, KH, KW = w.shape
    (SH, SW), (PH, PW) = stride, padding
    OH, OW = _out_size(H, KH, SH, PH), _out_size(W, KW, SW, PW)
    xp = _pad(x, padding)
    y = numpy.zeros((N, OC, OH, OW))
    for kh in range(KH):
        for kw in range(KW):
            window = xp[:, :, kh:kh + SH * OH:SH, kw:kw + SW * OW:SW]
            y += numpy.einsum("nchw,oc->nohw", window, w[:, :, kh, kw])
    return y


def batch_norm_reference(x, weight, bias, eps=1e-5):
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / numpy.sqrt(var + eps)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def max_pool_reference(x, kernel, stride, padding):
    N, C, H, W = x.shape
    (KH, KW), (SH, SW) = kernel, stride
    OH, OW = _out_size(H, KH, SH, padding[0]), _out_size(W, KW, SW, padding[1])
    xp = _pad(x, padding, -numpy.inf)
    y = numpy.full((N, C, OH, OW), -numpy.inf)
    for kh in range(KH):
        for kw in range(KW):
            y = numpy.maximum(y, xp[:, :, kh:kh + SH * OH:SH, kw:kw + SW * OW:SW])
    return y


def _reference_fn(module_function):
    """The readable function behind a @fast_twin router (the student's code), else itself."""
    return getattr(module_function, "reference", module_function)


# ----------------------------------------------------------------------------------------------
# A1: autograd — the backward of Mul, MatMul, Sum
# ----------------------------------------------------------------------------------------------
@task("A1", "mul_backward", "Mul.backward", "tinyres/ops.py",
      "return dL/da = gy * b and dL/db = gy * a, each summed back to its input's shape "
      "(unbroadcast)")
def check_mul(rng):
    from tinyres import ops
    for a_shape, b_shape in (((2, 3), (2, 3)), ((3, 1, 4), (5, 1)), ((4,), ())):
        a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
        yield from gradient_case(f"{a_shape} * {b_shape}", ops.mul, lambda a, b: a * b,
                                 [a, b], rng)


@task("A1", "matmul_backward", "MatMul.backward", "tinyres/ops.py",
      "return dL/da = gy @ b^T and dL/db = a^T @ gy (batched; 1-D operands as vectors)")
def check_matmul(rng):
    from tinyres import ops
    for a_shape, b_shape in (((3, 4), (4, 2)), ((2, 3, 4), (4, 5)), ((4,), (4, 3)),
                             ((3, 4), (4,))):
        a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
        yield from gradient_case(f"{a_shape} @ {b_shape}", ops.matmul, lambda a, b: a @ b,
                                 [a, b], rng)


@task("A1", "sum_backward", "Sum.backward", "tinyres/ops.py",
      "send dL/dy to every summed element: restore the summed axes, broadcast to x's shape")
def check_sum(rng):
    for axis, keepdims in ((None, False), (1, False), ((0, 2), True), (-1, False)):
        x = rng.standard_normal((2, 3, 4))
        yield from gradient_case(f"sum(axis={axis}, keepdims={keepdims})",
                                 lambda x: x.sum(axis=axis, keepdims=keepdims),
                                 lambda x: x.sum(axis=axis, keepdims=keepdims), [x], rng)


# ----------------------------------------------------------------------------------------------
# A2: convolution — im2col, col2im, and the convolution's forward and backward
# ----------------------------------------------------------------------------------------------
CONV_CASES = (  # (x shape, (OC, KH, KW), stride, padding)
    ((2, 3, 5, 5), (4, 3, 3), (1, 1), (1, 1)),
    ((2, 3, 5, 6), (2, 3, 3), (2, 2), (1, 1)),
    ((1, 2, 6, 5), (3, 2, 3), (2, 1), (1, 0)),
    ((2, 3, 4, 4), (2, 1, 1), (2, 2), (0, 0)),
)


def _describe(x_shape, kernel, stride, padding):
    return f"x {x_shape}, kernel {kernel}, stride {stride}, padding {padding}"


@task("A2", "im2col", "im2col", "tinyres/functional/conv.py",
      "copy every (KH, KW) patch of x into one row of cols (N*OH*OW, C*KH*KW), columns (c, kh, kw)")
def check_im2col(rng):
    from tinyres.functional import conv
    im2col = _reference_fn(conv.im2col)
    for x_shape, (_, KH, KW), stride, padding in CONV_CASES:
        x = rng.standard_normal(x_shape)
        got = im2col(x, (KH, KW), stride, padding)
        yield (_describe(x_shape, (KH, KW), stride, padding),
               rel_error(got, im2col_loops(x, (KH, KW), stride, padding)), FORWARD_TOL)


@task("A2", "col2im", "col2im", "tinyres/functional/conv.py",
      "add every row of cols back onto the patch it came from (overlaps add), drop the padding")
def check_col2im(rng):
    from tinyres.functional import conv
    col2im = _reference_fn(conv.col2im)
    for x_shape, (_, KH, KW), stride, padding in CONV_CASES:
        cols = rng.standard_normal(im2col_loops(numpy.zeros(x_shape), (KH, KW), stride,
                                                padding).shape)
        got = col2im(cols, x_shape, (KH, KW), stride, padding)
        yield (_describe(x_shape, (KH, KW), stride, padding),
               rel_error(got, col2im_loops(cols, x_shape, (KH, KW), stride, padding)),
               FORWARD_TOL)


@task("A2", "conv2d_forward", "conv2d_forward", "tinyres/functional/conv.py",
      "y = im2col(x) @ W.reshape(OC, -1).T, reshaped to (N, OC, OH, OW)")
def check_conv_forward(rng):
    from tinyres.functional import conv
    forward = _reference_fn(conv.conv2d_forward)
    for x_shape, (OC, KH, KW), stride, padding in CONV_CASES:
        x, w = rng.standard_normal(x_shape), rng.standard_normal((OC, x_shape[1], KH, KW))
        got = forward(x, w, stride, padding)
        yield (_describe(x_shape, (KH, KW), stride, padding),
               rel_error(got, conv_reference(x, w, stride, padding)), FORWARD_TOL)


@task("A2", "conv2d_backward", "conv2d_backward", "tinyres/functional/conv.py",
      "dW = gY^T cols and dx = col2im(gY W2), with gY = gy as rows (N*OH*OW, OC)")
def check_conv_backward(rng):
    from tinyres.functional import conv
    backward = _reference_fn(conv.conv2d_backward)
    for x_shape, (OC, KH, KW), stride, padding in CONV_CASES[:3]:
        x, w = rng.standard_normal(x_shape), rng.standard_normal((OC, x_shape[1], KH, KW))
        gy = rng.standard_normal(conv_reference(x, w, stride, padding).shape)
        gx, gw = backward(gy, x, w, stride, padding)
        want_x, want_w = numeric_gradients(lambda x, w: conv_reference(x, w, stride, padding),
                                           [x.copy(), w.copy()], gy)
        case = _describe(x_shape, (KH, KW), stride, padding)
        yield f"{case}: dL/dx", rel_error(gx, want_x), GRADIENT_TOL
        yield f"{case}: dL/dW", rel_error(gw, want_w), GRADIENT_TOL
    import tinyres.functional as F                    # and through the op, with a bias
    x, w, b = (rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((2, 3, 3, 3)),
               rng.standard_normal(2))
    yield from (row for row in gradient_case(
        "F.conv2d with bias, stride 1, padding 1",
        lambda x, w, b: F.conv2d(x, w, b, stride=1, padding=1),
        lambda x, w, b: conv_reference(x, w, (1, 1), (1, 1)) + b.reshape(1, -1, 1, 1),
        [x, w, b], rng) if not row[0].endswith("forward"))


# ----------------------------------------------------------------------------------------------
# A3: batch norm's backward, max pooling's backward
# ----------------------------------------------------------------------------------------------
@task("A3", "batch_norm_backward", "batch_norm_train_backward", "tinyres/functional/batchnorm.py",
      "the closed form dx = (weight * inv_std / m) (m dy - sum dy - x_hat sum(dy x_hat)), "
      "dweight, dbias")
def check_batch_norm(rng):
    import tinyres.functional as F
    for shape in ((4, 3, 3, 2), (6, 3)):
        C = shape[1]
        x, w, b = rng.standard_normal(shape), rng.standard_normal(C), rng.standard_normal(C)
        yield from gradient_case(
            f"x {shape}, affine",
            lambda x, w, b: F.batch_norm(x, w, b, None, None, training=True),
            batch_norm_reference, [x, w, b], rng)
    x = rng.standard_normal((3, 2, 2, 2))
    yield from gradient_case("x (3, 2, 2, 2), no affine",
                             lambda x: F.batch_norm(x, None, None, None, None, training=True),
                             lambda x: batch_norm_reference(x, None, None), [x], rng)


@task("A3", "max_pool_backward", "max_pool2d_backward", "tinyres/functional/pooling.py",
      "scatter-add each gy into gx at its window's argmax (overlapping windows add)")
def check_max_pool(rng):
    import tinyres.functional as F
    for shape, kernel, stride, padding in (((2, 3, 7, 7), (3, 3), (2, 2), (1, 1)),
                                           ((2, 2, 6, 5), (2, 2), (2, 2), (0, 0)),
                                           ((1, 2, 5, 5), (3, 3), (1, 1), (1, 1))):
        x = rng.standard_normal(shape)              # continuous values: no ties
        yield from gradient_case(
            f"x {shape}, kernel {kernel}, stride {stride}, padding {padding}",
            lambda x: F.max_pool2d(x, kernel, stride, padding),
            lambda x: max_pool_reference(x, kernel, stride, padding), [x], rng)


# ----------------------------------------------------------------------------------------------
# A4: the residual block and SGD with momentum
# ----------------------------------------------------------------------------------------------
def _float64(module):
    return module.to(dtype=numpy.float64)


@task("A4", "zero_pad_shortcut", "ZeroPadShortcut.forward", "tinyres/models/blocks.py",
      "option A: x[:, :, ::s, ::s], then zero channels: pad_before before, pad_after after")
def check_zero_pad(rng):
    from tinyres.models.blocks import ZeroPadShortcut
    for c_in, c_out, stride in ((4, 8, 2), (3, 8, 2), (4, 4, 1), (2, 6, 1)):
        shortcut = ZeroPadShortcut(c_in, c_out, stride)
        before = (c_out - c_in) // 2

        def reference(x):
            y = numpy.zeros((x.shape[0], c_out) + x[:, :, ::stride, ::stride].shape[2:])
            y[:, before:before + c_in] = x[:, :, ::stride, ::stride]
            return y
        yield from gradient_case(f"{c_in} -> {c_out} channels, stride {stride}", shortcut,
                                 reference, [rng.standard_normal((2, c_in, 5, 6))], rng)


@task("A4", "residual_forward", "ResidualBlock.forward", "tinyres/models/blocks.py",
      "y = relu(F(x) + shortcut(x)), or relu(F(x)) when the block is plain (no shortcut)")
def check_residual_forward(rng):
    import tinyres
    import tinyres.functional as F
    from tinyres.models.blocks import ResidualBlock

    w = rng.standard_normal((6, 3, 1, 1))

    class Probe(ResidualBlock):
        """A block whose F is a fixed, known function (so only forward is tested)."""
        def __init__(self, option, channels, stride):
            super().__init__()
            self.stride = stride
            self._add_shortcut(option, 3, channels, stride, "shortcut")

        def residual(self, x):
            if self.stride == 1:
                return x * x - x                                  # F(x) = x^2 - x
            return F.conv2d(x, self.weight_tensor, stride=self.stride)

    for option, channels, stride in (("A", 3, 1), ("none", 3, 1), ("B", 6, 2)):
        block = _float64(Probe(option, channels, stride))
        block.weight_tensor = tinyres.tensor(w)
        shortcut = block.shortcut_path()

        def reference(x):
            if stride == 1:
                f = x * x - x
            else:
                f = conv_reference(x, w, (stride, stride), (0, 0))
            if shortcut is not None:
                with tinyres.no_grad():
                    f = f + shortcut(tinyres.tensor(x)).numpy()
            return numpy.maximum(f, 0.0)
        x = rng.standard_normal((2, 3, 4, 4))
        yield from gradient_case(f"shortcut option {option!r}", block, reference, [x], rng)


@task("A4", "basic_block_residual", "BasicBlock.residual", "tinyres/models/blocks.py",
      "F(x) = bn2(conv2(relu(bn1(conv1(x))))): two 3x3 convs, BN after each, ReLU between")
def check_basic_block(rng):
    import tinyres
    from tinyres.models.blocks import BasicBlock
    for c_in, c_out, stride in ((3, 3, 1), (2, 4, 2)):
        tinyres.manual_seed(0)
        block = _float64(BasicBlock(c_in, c_out, stride=stride, shortcut="B"))
        conv1, conv2 = block.conv1.weight.numpy(), block.conv2.weight.numpy()
        g1, b1 = block.bn1.weight.numpy(), rng.standard_normal(c_out)
        g2, b2 = block.bn2.weight.numpy(), rng.standard_normal(c_out)
        block.bn1.bias.data[...] = b1
        block.bn2.bias.data[...] = b2

        def reference(x):
            h = conv_reference(x, conv1, (stride, stride), (1, 1))
            h = numpy.maximum(batch_norm_reference(h, g1, b1), 0.0)
            h = conv_reference(h, conv2, (1, 1), (1, 1))
            return batch_norm_reference(h, g2, b2)
        x = rng.standard_normal((2, c_in, 4, 4))
        got = block.residual(tinyres.tensor(x))
        yield f"{c_in} -> {c_out}, stride {stride}: forward", rel_error(got.numpy(),
                                                                         reference(x)), 1e-7
        direction = rng.standard_normal(got.shape)
        leaf = tinyres.tensor(x.copy(), requires_grad=True)
        block.residual(leaf).backward(tinyres.tensor(direction))
        numeric = numeric_gradients(reference, [x.copy()], direction)[0]
        if leaf.grad is None:
            raise AssertionError("no gradient reached x: F must be built from tinyres ops")
        yield (f"{c_in} -> {c_out}, stride {stride}: gradient of x",
               rel_error(leaf.grad, numeric), GRADIENT_TOL)


@task("A4", "sgd_momentum", "SGD.step", "tinyres/optim/sgd.py",
      "for each parameter: g = grad + wd*w; buffer = g (first step) or mu*buffer + (1-tau)*g; "
      "g = g + mu*buffer (nesterov) or buffer; w -= lr*g")
def check_sgd(rng):
    from tinyres.nn import Parameter
    from tinyres.optim import SGD
    settings = (dict(lr=0.1, momentum=0.9, weight_decay=1e-4),
                dict(lr=0.05, momentum=0.9, dampening=0.5),
                dict(lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=True),
                dict(lr=0.2),
                dict(lr=0.1, momentum=0.5, weight_decay=0.1))
    for hyper in settings:
        start = [rng.standard_normal((3, 2)), rng.standard_normal(4)]
        grads = [[rng.standard_normal(w.shape) for w in start] for _ in range(4)]
        params = [Parameter(w.copy()) for w in start]
        optimizer = SGD(params, **hyper)
        lr, mu = hyper["lr"], hyper.get("momentum", 0.0)
        tau, wd = hyper.get("dampening", 0.0), hyper.get("weight_decay", 0.0)
        expected, buffers = [w.copy() for w in start], [None, None]
        worst = 0.0
        for step, step_grads in enumerate(grads):
            for p, g in zip(params, step_grads):
                p.grad = g.copy()
            if step == 2:
                params[1].grad = None                    # a parameter without a gradient
            optimizer.step()
            for i, g in enumerate(step_grads):
                if step == 2 and i == 1:
                    continue
                g = g + wd * expected[i]
                if mu:
                    buffers[i] = g.copy() if buffers[i] is None else mu * buffers[i] + (1 - tau) * g
                    g = g + mu * buffers[i] if hyper.get("nesterov") else buffers[i]
                expected[i] = expected[i] - lr * g
            worst = max(worst, max(rel_error(p.numpy(), w) for p, w in zip(params, expected)))
        yield f"4 steps, {hyper}", worst, 1e-12


def format_tasks():
    """Every assignment with its tasks and where their regions are (for `assignment list`)."""
    where = {}
    try:
        root = repository_root()
        for region in all_regions(root):
            where[region.task] = f"{region.file.relative_to(root)}:{region.begin}"
    except (RuntimeError, ValueError) as err:
        where = {"error": str(err)}
    lines = []
    for assignment in ASSIGNMENTS.values():
        lines.append(f"{assignment.id}  {assignment.title}   (handout: {assignment.handout})")
        for t in tasks_of(assignment.id):
            lines.append(f"      {t.function:<28} {where.get(t.id, 'MARKERS MISSING'):<40} "
                         f"{t.what}")
    return "\n".join(lines)
