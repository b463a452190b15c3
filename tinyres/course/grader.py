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
import csv
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy

from tinyres.course import cases as case_registry
from tinyres.course.assignments import ASSIGNMENTS, check_assignment_id, tasks_of
from tinyres.course.copier import MANIFEST
from tinyres.course.feedback import compare
from tinyres.course.signing import manifest_problem, read_manifest

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
        if problem and manifest_path.exists():
            notes.append(f"note: {problem}")
        elif manifest and manifest["assignment"] != assignment_id:
            notes.append(f"note: the copy was made for {manifest['assignment']}; graded as "
                         f"{assignment_id}, as asked")
        return assignment_id, notes, ""
    if problem:
        return None, [], (f"refused: {problem}; grade it with --assignment to choose the "
                          f"assignment")
    return manifest["assignment"], [], ""


# -- running the student's code -----------------------------------------------------------------
def _layout(directory, destination):
    """DIR's tinyres/ and kernels/ as installed: package/tinyres, package/tinyres/kernels."""
    package = destination / "package" / "tinyres"
    shutil.copytree(directory / "tinyres", package, ignore=_IGNORED, symlinks=True)
    shutil.rmtree(package / "kernels", ignore_errors=True)
    shutil.copytree(directory / "kernels", package / "kernels", ignore=_IGNORED, symlinks=True)


def _scrubbed_environment(home):
    """Only what Python and NumPy need, and the settings of a grading run."""
    return {"PATH": os.defpath, "HOME": str(home), "TMPDIR": str(home), "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg",
            "TINYRES_KERNELS": "reference", "TINYRES_BACKEND": "numpy", "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMBA_CACHE_DIR": str(home)}


def run_student(workdir, cases, timeout):
    """Send `cases` to runner.py in `workdir`; returns (outputs per case, reports per case,
    problem). Kills the whole process group when the runner ends or times out."""
    (workdir / "request.json").write_text(json.dumps(
        {"cases": [{"call": c.call, "params": c.params, "inputs": list(c.inputs)}
                   for c in cases]}))
    numpy.savez(workdir / "request.npz", **{f"{i}/{name}": value for i, c in enumerate(cases)
                                            for name, value in c.inputs.items()})
    shutil.copy(RUNNER, workdir / "runner.py")
    home = workdir / "home"
    home.mkdir()
    with open(workdir / "stdout.txt", "wb") as out, open(workdir / "stderr.txt", "wb") as err:
        child = subprocess.Popen([sys.executable, "-I", "runner.py"], cwd=workdir, stdout=out,
                                 stderr=err, stdin=subprocess.DEVNULL,
                                 env=_scrubbed_environment(home), start_new_session=True)
        problem = ""
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            problem = f"did not finish within {timeout:g} s (an endless loop?)"
        finally:
            try:
                os.killpg(child.pid, signal.SIGKILL)       # the child and all it started
            except ProcessLookupError:
                pass
            child.wait()
    try:
        report = json.loads((workdir / "outputs.json").read_text())
        with numpy.load(workdir / "outputs.npz", allow_pickle=False) as saved:
            arrays = {key: saved[key] for key in saved.files}
    except (OSError, ValueError) as error:
        stderr = (workdir / "stderr.txt").read_text(errors="replace").strip().splitlines()
        tail = " | ".join(stderr[-3:])
        problem = problem or (f"the student's process ended (exit status {child.returncode}) "
                              f"without returning results ({type(error).__name__})"
                              + (f"; its last words: {tail[-400:]}" if tail else ""))
        return [{} for _ in cases], [None for _ in cases], problem
    package = str(workdir / "package")
    if not str(report.get("tinyres", "")).startswith(package):
        return ([{} for _ in cases], [None for _ in cases],
                f"tinyres was imported from {report.get('tinyres')}, not from the submission")
    outputs = [{key.split("/", 1)[1]: value for key, value in arrays.items()
                if key.split("/", 1)[0] == str(i)} for i in range(len(cases))]
    return outputs, report["cases"], problem


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
    hidden_seed = secrets.randbits(32) if hidden_seed is None else hidden_seed
    with tempfile.TemporaryDirectory(prefix="tinyres-grade-") as scratch:
        scratch = Path(scratch)
        _layout(directory, scratch)
        for task in tasks_of(report.assignment):
            cases = case_registry.build(task.id, seed, hidden_seed)
            workdir = scratch / task.id
            workdir.mkdir()
            (workdir / "package").symlink_to(scratch / "package")
            outputs, raised, problem = run_student(workdir, cases, timeout)
            report.tasks.append(TaskResult(task, [
                CaseResult(c.name, c.hidden, False, message=problem) if problem and not (o or r)
                else judge(c, o, r) for c, o, r in zip(cases, outputs, raised)], problem))
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


def write_csv(reports, path):
    """student, assignment, score, max_score, one column per function, status."""
    functions = sorted({t.task.function for r in reports for t in r.tasks})
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "assignment", "score", "max_score", *functions, "status"])
        for r in reports:
            per_task = {t.task.function: t.score for t in r.tasks}
            writer.writerow([r.directory.name, r.assignment, r.score, r.max_score,
                             *[per_task.get(name, "") for name in functions],
                             r.refused or " ".join(r.notes) or "graded"])
