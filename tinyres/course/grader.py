"""`tinyres assignment grade`: score a student's copy without trusting the student's process.

    tinyres assignment grade DIR [--assignment A2] [--json results.json] [--hidden-seed N]
    tinyres assignment grade submissions/*  [--csv grades.csv]     one line per student
                                            [--settings course.toml]

What it does, per task of the assignment:

1. builds the cases in this process (tinyres/course/cases.py): inputs to send, and the outputs
   expected from plain NumPy references (tinyres/course/references.py); hidden cases use a seed
   drawn for this run (or --hidden-seed, or the settings' hidden_seed), recorded in the report,
   the results and the CSV, so that a regrade with it gives the same cases, score and feedback;
2. runs tinyres/course/runner.py in a subprocess, in a scratch folder of its own (a fresh
   random name, removed afterwards) holding a copy of DIR's tinyres/ and kernels/ (laid out as
   installed, code only): with an interpreter that sees NumPy and nothing else of this
   installation, in a sandbox that hides the grader's home and every other process and, when
   the grader is root, runs as nobody (tinyres/course/sandbox.py), with an environment holding
   nothing of the grader's (no keys, no paths), its own session, and a guard process between
   it and the grader that kills whatever the student's code started (runner.py); the grader
   kills the session and any process still carrying the run's marker, then reads the outputs;
3. compares those arrays here, case by case, by its own list of cases
   (tinyres/course/feedback.py). Nothing the student's process prints or claims counts; a
   case without its arrays scores zero.

Each function is graded on its own: a task that calls others of the assignment (`Task.uses`:
conv2d_backward calls im2col and col2im) runs with the grader's references in their place, so
one bug costs points once. Where one of those failed its own cases, the task runs a second
time with the student's own functions, for the feedback only ("passes with the reference
col2im; fails with yours"). Points per function and per case come from the course's settings
(tinyres/course/settings.py); a function scores points * (weight of its passing cases) /
(weight of all its cases).

Which assignment: --assignment, or the copy's manifest when its signature holds under the course
key (tinyres/course/signing.py); an edited manifest is refused. The written parts of the handout
are listed as "manually graded". The exit status is 0 whenever grading ran.

Where the sandbox cannot work (not Linux, no namespaces) the student's code runs as the grader's
user, and grading is refused while a course key is on the machine. The sandbox does not cut
the network or cap memory: docs/assignments/README.md ("The trust boundary") says what the
grader trusts and what a container must add.
"""
import contextlib
import csv
import ctypes
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy

from tinyres.course import cases as case_registry
from tinyres.course.assignments import ASSIGNMENTS, TASKS, check_assignment_id, tasks_of
from tinyres.course.copier import MANIFEST
from tinyres.course.feedback import compare
from tinyres.course.settings import Settings
from tinyres.course.sandbox import available as sandbox_available
from tinyres.course.sandbox import confined, private_interpreter
from tinyres.course.signing import KEY_FILE, course_key, manifest_problem, read_manifest

RUNNER = Path(__file__).with_name("runner.py")
REFERENCES = Path(__file__).with_name("references.py")     # the stand-ins of Task.uses
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc")


@dataclass
class CaseResult:
    name: str
    hidden: bool
    passed: bool
    error: float = float("inf")            # worst relative error over the case's outputs
    message: str = ""
    weight: float = 1


@dataclass
class Dependence:
    """A case that passes with the references in place of the student's other functions and
    fails with the student's own (feedback only; it scores as it passed)."""
    case: CaseResult                       # the case as run with the student's own functions
    functions: tuple                       # the student's functions that failed their cases


@dataclass
class TaskResult:
    task: object                           # assignments.Task
    cases: list = field(default_factory=list)
    problem: str = ""                      # why no case could be judged (timeout, crash)
    points: float = None                   # the settings' points (default: the task's)
    dependences: list = field(default_factory=list)    # Dependence(s), for the feedback

    def __post_init__(self):
        if self.points is None:
            self.points = self.task.points

    @property
    def passed(self):
        return sum(c.passed for c in self.cases)

    def score_of(self, cases):
        """The points the passing ones of `cases` (some of this task's) earn."""
        total = sum(c.weight for c in self.cases)
        return round(self.points * sum(c.weight for c in cases if c.passed) / total, 2) \
            if total else 0.0

    @property
    def score(self):
        return self.score_of(self.cases)


@dataclass
class Report:
    directory: Path
    assignment: str = ""
    tasks: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    refused: str = ""                      # why it was not graded at all
    seconds: float = 0.0
    hidden_seed: int = None                # the hidden cases' seed: a regrade with it repeats

    @property
    def score(self):
        return round(sum(t.score for t in self.tasks), 2)

    @property
    def max_score(self):
        return sum(t.points for t in self.tasks)


class GraderError(Exception):
    """The grader itself could not run (not the student's fault)."""


# -- choosing the assignment --------------------------------------------------------------------
IDENTITY = "tinyres/student_copy.py"          # which copy this is: its assignment, its handout


def copy_problem(directory, manifest):
    """Why a manifest whose signature holds was made for another copy than the one in
    `directory` (None when it was made for this one): every file `make` wrote under tinyres/,
    kernels/ and tests/ must still be there, and tinyres/student_copy.py be the one it wrote.
    Students edit their functions; they do not remove files or rewrite which copy they hold."""
    written = manifest.get("digests")
    if not isinstance(written, dict):
        return f"the manifest {MANIFEST} lists no files (it was made by an older tinyres)"
    missing = sorted(relative for relative in written
                     if relative.split("/")[0] in ("tinyres", "kernels", "tests")
                     and not (Path(directory) / relative).is_file())
    identity = Path(directory) / IDENTITY
    digest = hashlib.sha256(identity.read_bytes()).hexdigest() if identity.is_file() else None
    if missing:
        return (f"the manifest {MANIFEST} was made for another copy (it lists "
                f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}, which this copy "
                f"lacks)")
    if written.get(IDENTITY) != digest:
        return (f"the manifest {MANIFEST} was made for another copy ({IDENTITY} is not the one "
                f"it was signed with)")
    return None


def choose_assignment(directory, assignment_id=None):
    """(assignment id or None, notes, refusal): --assignment wins; else a manifest whose
    signature holds under the course key and that was made for this copy."""
    manifest_path = Path(directory) / MANIFEST
    problem = manifest_problem(manifest_path)
    manifest = None if problem else read_manifest(manifest_path)
    if manifest:
        problem = copy_problem(directory, manifest)
        manifest = None if problem else manifest
    if assignment_id:
        check_assignment_id(assignment_id)
        notes = []
        if problem and manifest_path.exists() and course_key() is not None:
            notes.append(f"note: {problem}")        # no key here (Gradescope): nothing to say
        elif manifest and manifest["assignment"] != assignment_id:
            notes.append(f"note: the copy was made for {manifest['assignment']}; graded as "
                         f"{assignment_id}, as asked")
        return assignment_id, notes, ""
    if problem:
        return None, [], (f"refused: {problem}; grade it with --assignment to choose the "
                          f"assignment")
    return manifest["assignment"], [], ""


# -- running the student's code -----------------------------------------------------------------
def _code_only(folder, names):
    """copytree's ignore for a grading layout: Python files and folders (no data, no caches)."""
    return [n for n in names if n == "__pycache__" or not (n.endswith(".py")
                                                           or Path(folder, n).is_dir())]


def _layout(directory, destination, ignore=_IGNORED):
    """DIR's tinyres/ and kernels/ as installed: package/tinyres, package/tinyres/kernels."""
    package = destination / "package" / "tinyres"
    shutil.copytree(directory / "tinyres", package, ignore=ignore, symlinks=True)
    shutil.rmtree(package / "kernels", ignore_errors=True)
    shutil.copytree(directory / "kernels", package / "kernels", ignore=ignore, symlinks=True)


def links_out_of(directory):
    """'path -> target' for each symbolic link under DIR's tinyres/ and kernels/ (or those
    folders themselves) that resolves outside DIR: such a link would let the course's own files
    stand in for the student's."""
    found = []
    for top in (directory / "tinyres", directory / "kernels"):
        paths = [top] + [Path(root, name) for root, dirs, files in os.walk(top)
                         for name in dirs + files]
        for path in paths:
            target = path.resolve()
            if path.is_symlink() and directory != target and directory not in target.parents:
                found.append(f"{path.relative_to(directory)} -> {target}")
    return found


def _scrubbed_environment(home):
    """Only what Python and NumPy need, and the settings of a grading run."""
    return {"PATH": os.defpath, "HOME": str(home), "TMPDIR": str(home), "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg",
            "TINYRES_KERNELS": "reference", "TINYRES_BACKEND": "numpy", "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_CACHE_DIR": str(home)}


PR_GET_DUMPABLE, PR_SET_DUMPABLE = 3, 4           # linux/prctl.h


def _prctl(option, value=0):
    """prctl(2) on Linux (0 elsewhere, where the setting does not exist)."""
    if not sys.platform.startswith("linux"):
        return 0
    return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


@contextlib.contextmanager
def not_dumpable():
    """While open, this process's /proc files (environ, mem) are closed to the other processes
    of its user (a root process still reads them; in the sandbox the student's code sees no
    other process at all, and runs as nobody when the grader is root)."""
    dumpable = _prctl(PR_GET_DUMPABLE)
    _prctl(PR_SET_DUMPABLE, 0)
    try:
        yield
    finally:
        _prctl(PR_SET_DUMPABLE, dumpable)


def kill_marked(marker):
    """SIGKILL every process whose environment holds `marker`, round after round until none
    is left: the student's processes that left the runner's session and outlived its guard
    (which was killed). Every process of a grading run starts with the run's marker in its
    environment, and /proc shows that first environment whatever the process does to
    os.environ later; only a new program exec'd with another environment loses it."""
    needle = marker.encode()
    while True:
        found = []
        for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
            with contextlib.suppress(OSError):
                if needle in Path(f"/proc/{entry}/environ").read_bytes():
                    found.append(int(entry))
        if not found:
            return
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)                       # let the kernel finish them before looking again


def run_student(workdir, cases, timeout, substitute=()):
    """Send `cases` to runner.py in `workdir`; returns (outputs per case, reports per case,
    problem), read once every process the runner started is dead. `substitute`: the
    functions the grader's references stand in for (references.py is copied in for them)."""
    (workdir / "request.json").write_text(json.dumps(
        {"cases": [{"call": c.call, "params": c.params, "inputs": list(c.inputs)}
                   for c in cases], "substitute": list(substitute)}))
    if substitute:
        shutil.copy(REFERENCES, workdir / "references.py")
    numpy.savez(workdir / "request.npz", **{f"{i}/{name}": value for i, c in enumerate(cases)
                                            for name, value in c.inputs.items()})
    shutil.copy(RUNNER, workdir / "runner.py")
    python = private_interpreter(workdir / "python")
    home = workdir / "home"
    home.mkdir()
    problem, marker = "", f"TINYRES_GRADING_RUN={secrets.token_hex(16)}"
    environment = {**_scrubbed_environment(home), **dict([marker.split("=")])}
    with not_dumpable(), open(workdir / "stdout.txt", "wb") as out, \
            open(workdir / "stderr.txt", "wb") as err:
        child = subprocess.Popen(confined([str(python), "-I", "runner.py"], workdir),
                                 cwd=workdir, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                 env=environment, start_new_session=True)
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            problem = f"did not finish within {timeout:g} s (an endless loop?)"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)   # the guard and its process group ...
            child.wait()
            kill_marked(marker)                        # ... and any that left both
    if not problem and child.returncode < 0:
        return ([{} for _ in cases], [None for _ in cases],
                f"the grader's guard process was killed (signal {-child.returncode}), by the "
                f"student's code or the system; nothing it returned counts")
    outputs, raised = read_outputs(workdir, cases)
    if not problem and not any(outputs) and not any(raised):
        stderr = (workdir / "stderr.txt").read_text(errors="replace").strip().splitlines()
        tail = _redacted(" | ".join(stderr[-3:]))
        problem = (f"the student's process ended (exit status {child.returncode}) without "
                   f"returning results" + (f"; its last words: {tail[-400:]}" if tail else ""))
    return outputs, raised, problem


def _redacted(text):
    """`text` (written by the student's process) with the course key, if any, blanked out."""
    key = course_key()
    return text.replace(key.decode(), "<the course key>") if key else text


def read_outputs(workdir, cases):
    """(arrays per case, exception per case) that the student's process left in `workdir`,
    read by the grader's own list of cases: only the arrays a case expects, each at most a few
    times the expected size; anything absent, oversized or unreadable is missing (and fails).
    The exceptions (outputs.json) only explain failures: no entry there makes a case pass."""
    outputs = [{} for _ in cases]
    # Whatever the student's files hold, reading them may fail in any way: absent, not raised.
    with contextlib.suppress(Exception), zipfile.ZipFile(workdir / "outputs.npz") as saved:
        members = {info.filename: info for info in saved.infolist()}
        for index, case in enumerate(cases):
            wanted = dict(case.expected)
            if case.extra_lines is not None:                 # a goal case: its line counts too
                wanted["lines"] = numpy.zeros(2, dtype=numpy.int64)
            for name, want in wanted.items():
                info = members.get(f"{index}/{name}.npy")
                if info is None or info.file_size > 4 * numpy.asarray(want).nbytes + 2**16:
                    continue
                with contextlib.suppress(Exception), saved.open(info) as f:
                    outputs[index][name] = numpy.lib.format.read_array(f, allow_pickle=False)
    raised = [None for _ in cases]
    with contextlib.suppress(Exception):
        path = workdir / "outputs.json"
        reported = json.loads(path.read_text())["cases"] if path.stat().st_size < 2**20 else []
        for index, entry in enumerate(reported[:len(cases)]):
            if isinstance(entry, dict):
                raised[index] = {key: _redacted(str(entry.get(key) or ""))[:500]
                                 for key in ("error", "message", "where")}
    return outputs, raised


def judge(case, outputs, raised):
    """A CaseResult from what the student's process returned for `case`."""
    if raised:
        where = f" at {raised['where']}" if raised.get("where") else ""
        return CaseResult(case.name, case.hidden, False,
                          message=f"{raised['error']}: {raised['message']}{where}",
                          weight=case.weight)
    verdicts = [compare(name, outputs.get(name), want, case.tolerance[name])
                for name, want in case.expected.items()]
    failed = [v.message for v in verdicts if not v.passed]
    if case.extra_lines is not None and not failed:
        failed += goal_problems(case, outputs.get("lines"))
    return CaseResult(case.name, case.hidden, not failed, max(v.error for v in verdicts),
                      "; ".join(failed), case.weight)


def goal_problems(case, lines):
    """Why a goal case's line counts (small, large) break the rule, in words; [] if they keep
    it."""
    if lines is None or numpy.shape(lines) != (2,) or numpy.asarray(lines).dtype.kind not in "iu":
        return ["no line counts returned"]
    small, large = (int(n) for n in lines)
    if small <= 0:
        return ["no line of your copy ran (the count was switched off?)"]
    if large > small + case.extra_lines:
        return [f"your code ran {large} lines of Python for 4x the images, channels and pixels "
                f"against {small} for the small size: a Python loop over images, channels or "
                f"pixels (only the kernel offsets may be looped over)"]
    return []


# -- grading a copy -----------------------------------------------------------------------------
def _judged(cases, outputs, raised, problem):
    return [CaseResult(c.name, c.hidden, False, message=problem, weight=c.weight)
            if problem and not (o or r) else judge(c, o, r)
            for c, o, r in zip(cases, outputs, raised)]


def run_task(directory, cases, timeout, substitute=()):
    """(case results, problem) of one run of the student's code on `cases`: the student's
    process runs in a scratch folder of its own (a fresh random name: nothing a previous task
    wrote is in it), removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="tinyres-grade-"))
    try:
        _layout(directory, workdir, ignore=_code_only)
        outputs, raised, problem = run_student(workdir, cases, timeout, substitute)
    except OSError as error:            # a full disk, say: the grader's files, not the student's
        outputs, raised = [{} for _ in cases], [None for _ in cases]
        problem = f"not graded: the grader could not write or read its scratch files ({error})"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return _judged(cases, outputs, raised, problem), problem


def grade_task(task, directory, cases, timeout, failing, points):
    """The TaskResult of `task` on `cases`: the student's other functions it uses replaced by
    the references; where some of them fail (`failing`: functions that failed their own
    cases), run again with the student's own, for the feedback."""
    uses = tuple(TASKS[u].function for u in task.uses)
    result = TaskResult(task, *run_task(directory, cases, timeout, uses), points=points)
    broken = tuple(f for f in uses if f in failing)
    if broken and result.passed:
        own, _ = run_task(directory, cases, timeout)
        result.dependences = [Dependence(o, broken) for c, o in zip(result.cases, own)
                              if c.passed and not o.passed]
    return result


def key_exposure():
    """The refusal to grade where a course key is on the machine and no sandbox can keep it
    from the student's code (tinyres/course/sandbox.py); "" where grading may go ahead."""
    mode, why = sandbox_available()
    if mode is not None or course_key() is None:
        return ""
    where = "$TINYRES_COURSE_KEY" if os.environ.get("TINYRES_COURSE_KEY") else str(KEY_FILE)
    return (f"refused: {why}, so the student's code would run as this user and could read the "
            f"course key ({where}); grade in a Linux container, or where no course key is "
            f"(unset TINYRES_COURSE_KEY, move {KEY_FILE} away) with --assignment")


def grade(directory, assignment_id=None, timeout=None, seed=0, hidden_seed=None,
          settings=None):
    """Grade the copy in `directory`; returns a Report (never raises for the student's code).
    timeout: seconds per function run (default: the settings' per_function)."""
    settings = settings or Settings()
    timeout = settings.per_function if timeout is None else timeout
    hidden_seed = settings.hidden_seed if hidden_seed is None else hidden_seed
    start = time.perf_counter()
    directory = Path(directory).resolve()
    report = Report(directory)
    if not (directory / "tinyres" / "__init__.py").is_file() or not (directory /
                                                                      "kernels").is_dir():
        report.refused = (f"refused: {directory} holds no tinyres copy (tinyres/__init__.py and "
                          f"kernels/); hand in the folder `tinyres assignment make` wrote")
        return report
    report.assignment, report.notes, report.refused = choose_assignment(directory,
                                                                         assignment_id)
    if report.refused:
        return report
    links = links_out_of(directory)
    if links:
        report.refused = (f"refused: {links[0]} is a symbolic link out of the submission"
                          f"{f' (and {len(links) - 1} more)' if len(links) > 1 else ''}; hand "
                          f"in the files themselves")
        return report
    report.refused = key_exposure()
    if report.refused:
        return report
    report.hidden_seed = secrets.randbits(32) if hidden_seed is None else hidden_seed
    failing = set()
    for task in tasks_of(report.assignment):
        cases = case_registry.build(task.id, seed, report.hidden_seed)
        for case in cases:
            case.weight = settings.weight_of(task.id, case)
        result = grade_task(task, directory, cases, timeout, failing, settings.points_of(task))
        if result.passed < len(result.cases):
            failing.add(task.function)
        report.tasks.append(result)
    report.seconds = time.perf_counter() - start
    return report


# -- what staff read ----------------------------------------------------------------------------
def format_report(report):
    """The table of a single copy: one row per function, then the failing cases."""
    lines = [f"grading {report.directory}"]
    lines += report.notes
    if report.refused:
        return "\n".join(lines + [report.refused, "score 0/0"])
    assignment = ASSIGNMENTS[report.assignment]
    lines.append(f"{assignment.id}: {assignment.title}")
    mode, why = sandbox_available()
    where = {"nobody": "in a sandbox, as nobody", "namespace": "in a sandbox (a user namespace)",
             None: f"in its own process, as this user: {why}"}[mode]
    lines.append(f"(the student's code {where}; NumPy, reference kernels, float64)")
    header = f"{'function':<28} {'file':<38} {'cases':>7} {'worst err':>10} {'score':>11}"
    lines += [header, "-" * len(header)]
    for t in report.tasks:
        worst = max((c.error for c in t.cases), default=float("inf"))
        lines.append(f"{t.task.function:<28} {t.task.file:<38} {t.passed:>3}/{len(t.cases):<3} "
                     f"{worst:>10.1e} {t.score:>5g}/{t.points:<5g}")
        lines += ["    " + line for line in failure_lines(t.cases) + dependence_lines(t)]
    for part in assignment.written:
        lines.append(f"written: {part.name}: manually graded ({part.points} points)")
    lines.append(f"score {report.assignment}: {report.score:g}/{report.max_score:g} (autograded; "
                 f"written parts manually graded) in {report.seconds:.1f} s")
    if report.hidden_seed is not None:
        lines.append(f"hidden cases drawn with seed {report.hidden_seed} (a regrade with "
                     f"--hidden-seed {report.hidden_seed} repeats them)")
    return "\n".join(line.rstrip() for line in lines)


def _label(case, named=True):
    """'case NAME' / 'hidden case NAME'; named=False: a hidden case without its shapes."""
    return f"{'hidden case' if case.hidden else 'case'} {case.name}" if named else "hidden case"


def failure_lines(cases, named=True):
    """The failing cases, each distinct message once: 'FAIL case ...: message', then the other
    cases that failed with the same message. named=False leaves hidden cases' names (their
    shapes) out, numbering them instead."""
    by_message = {}
    for case in cases:
        if not case.passed:
            by_message.setdefault(case.message, []).append(case)
    number = {id(c): i for i, c in enumerate([c for c in cases if c.hidden], start=1)}

    def label(case):
        return _label(case) if named or not case.hidden else f"hidden case {number[id(case)]}"
    lines = []
    for message, failed in by_message.items():
        lines.append(f"FAIL {label(failed[0])}: {message}")
        if len(failed) > 1:
            lines.append(f"     the same for: {'; '.join(label(c) for c in failed[1:])}")
    return lines


def dependence_lines(task_result, hidden=None):
    """One line on the cases (hidden ones, visible ones, or all for hidden=None) that score
    because the references stood in for the student's failing functions: 'they pass with the
    reference col2im; fail with yours', with the first such case's message."""
    found = [d for d in task_result.dependences if hidden is None or d.case.hidden == hidden]
    if not found:
        return []
    names = ", ".join(found[0].functions)
    first = found[0].case
    return [f"NOTE {len(found)} of these cases pass with the reference {names}; fail with yours "
            f"(first: {_label(first, named=hidden is None or not first.hidden)}: "
            f"{first.message}). They score here: the points are lost once, in {names}."]


def gradescope_results(report, settings=None):
    """Gradescope's autograder results: score, max_score, and per function two tests, its
    visible cases (and goal) and its hidden cases (visibility from the settings; by default
    after_due_date, and without their shapes); per written part one test (manually graded, 0
    of 0 here); a hidden test recording the hidden seed for a regrade."""
    settings = settings or Settings()
    if report.refused:
        return {"score": 0, "max_score": 0, "output": report.refused, "tests": []}
    tests = []
    for t in report.tasks:
        for hidden in (False, True):
            cases = [c for c in t.cases if c.hidden == hidden]
            total = sum(c.weight for c in t.cases)
            if not cases:
                continue
            passed = sum(c.passed for c in cases)
            lines = [f"{passed}/{len(cases)} {'hidden ' if hidden else ''}cases pass"]
            lines += failure_lines(cases, named=False) + dependence_lines(t, hidden)
            tests.append({
                "name": f"{t.task.assignment} {t.task.function}" + (" (hidden cases)" * hidden),
                "score": t.score_of(cases),
                "max_score": round(t.points * sum(c.weight for c in cases) / total, 2),
                "output": "\n".join(lines),
                "visibility": settings.hidden if hidden else settings.visible})
    for part in ASSIGNMENTS[report.assignment].written:
        tests.append({"name": f"{report.assignment} written: {part.name}", "score": 0,
                      "max_score": 0, "output": f"manually graded ({part.points} points, by "
                                                f"course staff)", "visibility": "visible"})
    tests.append({"name": "grading record (staff only)", "score": 0, "max_score": 0,
                  "output": f"hidden seed {report.hidden_seed}: `tinyres assignment grade "
                            f"--hidden-seed {report.hidden_seed}` repeats this grading",
                  "visibility": "hidden"})
    return {"score": report.score, "max_score": report.max_score,
            "output": "\n".join(report.notes), "tests": tests,
            "extra_data": {"hidden_seed": report.hidden_seed}}


def summary_line(report):
    """One line per student for a folder of submissions."""
    if report.refused:
        return f"{report.directory.name:<24} {'-':>9}  {report.refused}"
    failing = [t.task.function for t in report.tasks if t.passed < len(t.cases)]
    return (f"{report.directory.name:<24} {report.score:>5g}/{report.max_score:<3g} "
            f"{report.assignment}  " + (f"failing: {', '.join(failing)}" if failing
                                        else "all functions pass")
            + ("  " + " ".join(report.notes) if report.notes else ""))


def feedback_path(csv_path, report):
    """Where the student's feedback file goes: a folder beside the CSV, one file each."""
    csv_path = Path(csv_path)
    return csv_path.with_name(csv_path.stem + "-feedback") / f"{report.directory.name}.txt"


class GradeSheet:
    """The CSV of a batch, a row appended (and flushed to disk) as each student is graded, so a
    batch that stops midway keeps every row it reached, and each student's feedback file (the
    table staff see) beside it: student, assignment, score, max_score, one column per function
    of `assignments`, one per written part (empty: the staff fill them in), hidden_seed (a
    regrade with it repeats the grading), feedback (the file), status."""

    def __init__(self, path, assignments):
        self.path = Path(path)
        self.functions = [t.function for a in assignments for t in tasks_of(a)]
        self.written = [f"{a} written: {p.name} ({p.points})" for a in assignments
                        for p in ASSIGNMENTS[a].written]
        self.file = open(path, "w", newline="")
        self.writer = csv.writer(self.file)
        self._write(["student", "assignment", "score", "max_score", *self.functions,
                     *self.written, "hidden_seed", "feedback", "status"])

    def _write(self, row):
        self.writer.writerow(row)
        self.file.flush()
        os.fsync(self.file.fileno())

    def add(self, report):
        feedback = feedback_path(self.path, report)
        feedback.parent.mkdir(parents=True, exist_ok=True)
        feedback.write_text(format_report(report) + "\n")
        per_task = {t.task.function: t.score for t in report.tasks}
        self._write([report.directory.name, report.assignment, report.score, report.max_score,
                     *[per_task.get(name, "") for name in self.functions],
                     *["" for _ in self.written],
                     "" if report.hidden_seed is None else report.hidden_seed,
                     feedback.relative_to(self.path.parent).as_posix(),
                     report.refused or " ".join(report.notes) or "graded"])

    def close(self):
        self.file.close()
