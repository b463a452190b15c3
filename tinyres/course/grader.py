"""`tinyres assignment grade`: score a student's copy without trusting the student's process.

    tinyres assignment grade DIR [--assignment A2] [--json results.json]
    tinyres assignment grade submissions/*  [--csv grades.csv]     one line per student

What it does, per task of the assignment:

1. builds the cases in this process (tinyres/course/cases.py): inputs to send, and the outputs
   expected from plain NumPy references (tinyres/course/references.py); hidden cases use a seed
   drawn for this run;
2. runs tinyres/course/runner.py in a subprocess: working directory a temporary copy of DIR's
   tinyres/ and kernels/ (laid out as installed), its own process group (killed whole when it
   ends or times out: no grandchild survives), an environment holding nothing of the grader's
   (no keys, no paths), `python -I`; it reads the inputs from a file and writes the outputs to
   one;
3. compares those arrays here, case by case (tinyres/course/feedback.py). Nothing the student's
   process prints counts; a case without an output scores zero.

Which assignment: --assignment, or the copy's manifest when its signature holds under the course
key (tinyres/course/signing.py); an edited manifest is refused. The written parts of the handout
are listed as "manually graded". The exit status is 0 whenever grading ran.

Not an OS sandbox: the student's code runs as the grader's user and could read the grader's
files or the network. docs/assignments/README.md says what to run it inside.
"""
import contextlib
import csv
import ctypes
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
from tinyres.course.assignments import ASSIGNMENTS, check_assignment_id, tasks_of
from tinyres.course.copier import MANIFEST
from tinyres.course.feedback import compare
from tinyres.course.signing import course_key, manifest_problem, read_manifest

RUNNER = Path(__file__).with_name("runner.py")
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc")


@dataclass
class CaseResult:
    name: str
    hidden: bool
    passed: bool
    error: float = float("inf")            # worst relative error over the case's outputs
    message: str = ""


@dataclass
class TaskResult:
    task: object                           # assignments.Task
    cases: list = field(default_factory=list)
    problem: str = ""                      # why no case could be judged (timeout, crash)

    @property
    def passed(self):
        return sum(c.passed for c in self.cases)

    @property
    def score(self):
        return round(self.task.points * self.passed / len(self.cases), 2) if self.cases else 0.0


@dataclass
class Report:
    directory: Path
    assignment: str = ""
    tasks: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    refused: str = ""                      # why it was not graded at all
    seconds: float = 0.0

    @property
    def score(self):
        return round(sum(t.score for t in self.tasks), 2)

    @property
    def max_score(self):
        return sum(t.points for t in tasks_of(self.assignment)) if self.assignment else 0


class GraderError(Exception):
    """The grader itself could not run (not the student's fault)."""


# -- choosing the assignment --------------------------------------------------------------------
def choose_assignment(directory, assignment_id=None):
    """(assignment id or None, notes, refusal): --assignment wins; else a manifest whose
    signature holds under the course key."""
    manifest_path = Path(directory) / MANIFEST
    problem = manifest_problem(manifest_path)
    manifest = None if problem else read_manifest(manifest_path)
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


def private_interpreter(folder):
    """A virtual environment in `folder` whose only package is NumPy (a link to the grader's):
    its Python sees neither the grader's site-packages nor an editable finder, so in it
    `import tinyres` finds the submission's copy or nothing, and `site.main()` adds nothing."""
    base = Path(os.path.realpath(sys._base_executable))
    (folder / "bin").mkdir(parents=True)
    (folder / "pyvenv.cfg").write_text(f"home = {base.parent}\n"
                                       f"include-system-site-packages = false\n")
    (folder / "bin" / "python").symlink_to(base)
    site = folder / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    site.mkdir(parents=True)
    (site / "numpy").symlink_to(Path(numpy.__file__).parent)
    return folder / "bin" / "python"


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
    of its user (a root process still reads them: a container runs the student as another
    user)."""
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


def run_student(workdir, cases, timeout):
    """Send `cases` to runner.py in `workdir`; returns (outputs per case, reports per case,
    problem). The outputs are read once every process the runner started is dead."""
    (workdir / "request.json").write_text(json.dumps(
        {"cases": [{"call": c.call, "params": c.params, "inputs": list(c.inputs)}
                   for c in cases]}))
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
        child = subprocess.Popen([str(python), "-I", "runner.py"], cwd=workdir, stdout=out,
                                 stderr=err, stdin=subprocess.DEVNULL, env=environment,
                                 start_new_session=True)
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
            for name, want in case.expected.items():
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
                          message=f"{raised['error']}: {raised['message']}{where}")
    verdicts = [compare(name, outputs.get(name), want, case.tolerance[name])
                for name, want in case.expected.items()]
    failed = [v.message for v in verdicts if not v.passed]
    return CaseResult(case.name, case.hidden, not failed, max(v.error for v in verdicts),
                      "; ".join(failed))


# -- grading a copy -----------------------------------------------------------------------------
def grade_task(directory, cases, timeout):
    """(case results, problem) of one task: the student's process runs in a scratch folder of
    its own (a fresh random name: nothing a previous task wrote is in it), removed afterwards."""
    workdir = Path(tempfile.mkdtemp(prefix="tinyres-grade-"))
    try:
        _layout(directory, workdir, ignore=_code_only)
        outputs, raised, problem = run_student(workdir, cases, timeout)
    except OSError as error:            # a full disk, say: the grader's files, not the student's
        outputs, raised = [{} for _ in cases], [None for _ in cases]
        problem = f"not graded: the grader could not write or read its scratch files ({error})"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return [CaseResult(c.name, c.hidden, False, message=problem) if problem and not (o or r)
            else judge(c, o, r) for c, o, r in zip(cases, outputs, raised)], problem


def grade(directory, assignment_id=None, timeout=300, seed=0, hidden_seed=None):
    """Grade the copy in `directory`; returns a Report (never raises for the student's code)."""
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
    hidden_seed = secrets.randbits(32) if hidden_seed is None else hidden_seed
    for task in tasks_of(report.assignment):
        cases = case_registry.build(task.id, seed, hidden_seed)
        report.tasks.append(TaskResult(task, *grade_task(directory, cases, timeout)))
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
    lines.append("(the student's code in its own process; NumPy, reference kernels, float64)")
    header = f"{'function':<28} {'file':<38} {'cases':>7} {'worst err':>10} {'score':>11}"
    lines += [header, "-" * len(header)]
    for t in report.tasks:
        worst = max((c.error for c in t.cases), default=float("inf"))
        lines.append(f"{t.task.function:<28} {t.task.file:<38} {t.passed:>3}/{len(t.cases):<3} "
                     f"{worst:>10.1e} {t.score:>5g}/{t.task.points:<5}")
        lines += ["    " + line for line in failure_lines(t.cases)]
    for part in assignment.written:
        lines.append(f"written: {part.name}: manually graded ({part.points} points)")
    lines.append(f"score {report.assignment}: {report.score:g}/{report.max_score} (autograded; "
                 f"written parts manually graded) in {report.seconds:.1f} s")
    return "\n".join(line.rstrip() for line in lines)


def _label(case):
    return f"{'hidden case' if case.hidden else 'case'} {case.name}"


def failure_lines(cases):
    """The failing cases, each distinct message once: 'FAIL case ...: message', then the other
    cases that failed with the same message."""
    by_message = {}
    for case in cases:
        if not case.passed:
            by_message.setdefault(case.message, []).append(case)
    lines = []
    for message, failed in by_message.items():
        lines.append(f"FAIL {_label(failed[0])}: {message}")
        if len(failed) > 1:
            lines.append(f"     the same for: {'; '.join(_label(c) for c in failed[1:])}")
    return lines


def gradescope_results(report):
    """Gradescope's autograder results: score, max_score, and one test per function (failing
    cases in its output) and per written part (manually graded, 0 of 0 here)."""
    if report.refused:
        return {"score": 0, "max_score": 0, "output": report.refused, "tests": []}
    tests = []
    for t in report.tasks:
        lines = [f"{t.passed}/{len(t.cases)} cases pass"] + failure_lines(t.cases)
        tests.append({"name": f"{t.task.assignment} {t.task.function}", "score": t.score,
                      "max_score": t.task.points, "output": "\n".join(lines),
                      "visibility": "visible"})
    for part in ASSIGNMENTS[report.assignment].written:
        tests.append({"name": f"{report.assignment} written: {part.name}", "score": 0,
                      "max_score": 0, "output": f"manually graded ({part.points} points, by "
                                                f"course staff)", "visibility": "visible"})
    return {"score": report.score, "max_score": report.max_score,
            "output": "\n".join(report.notes), "tests": tests}


def summary_line(report):
    """One line per student for a folder of submissions."""
    if report.refused:
        return f"{report.directory.name:<24} {'-':>9}  {report.refused}"
    failing = [t.task.function for t in report.tasks if t.passed < len(t.cases)]
    return (f"{report.directory.name:<24} {report.score:>5g}/{report.max_score:<3} "
            f"{report.assignment}  " + (f"failing: {', '.join(failing)}" if failing
                                        else "all functions pass")
            + ("  " + " ".join(report.notes) if report.notes else ""))


class GradeSheet:
    """The CSV of a batch, a row appended (and flushed to disk) as each student is graded, so a
    batch that stops midway keeps every row it reached: student, assignment, score, max_score,
    one column per function of `assignments`, status."""

    def __init__(self, path, assignments):
        self.functions = [t.function for a in assignments for t in tasks_of(a)]
        self.file = open(path, "w", newline="")
        self.writer = csv.writer(self.file)
        self._write(["student", "assignment", "score", "max_score", *self.functions, "status"])

    def _write(self, row):
        self.writer.writerow(row)
        self.file.flush()
        os.fsync(self.file.fileno())

    def add(self, report):
        per_task = {t.task.function: t.score for t in report.tasks}
        self._write([report.directory.name, report.assignment, report.score, report.max_score,
                     *[per_task.get(name, "") for name in self.functions],
                     report.refused or " ".join(report.notes) or "graded"])

    def close(self):
        self.file.close()
