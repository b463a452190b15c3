"""The grader's trust boundary (docs/assignments/README.md): what a student's process can and
cannot do to a grade, to the course key, and to a batch.

Fast tier: options refused before grading, the manifest bound to its copy, no key on the
machine, outputs read by the grader's own case list, links out of a submission, orphans killed.
Slow tier (copies, subprocesses): every cheat of issue 29 scores 0, and a batch of 20
submissions, a third of them hostile, ends with a row for every student.
"""
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy
import pytest

from test_assignments import KEY, REPO, _fresh, _plant, quiet
from tinyres.cli import main
from tinyres.course import copier, grader, sandbox, signing
from tinyres.course import references as ref
from tinyres.course.cases import build


@pytest.fixture(autouse=True)
def course_key(monkeypatch):
    monkeypatch.setenv("TINYRES_COURSE_KEY", KEY)


def _fake_copy(folder, assignment="A2"):
    """The files the grader and the manifest look at, without making a real copy."""
    (folder / "tinyres").mkdir(parents=True)
    (folder / "tinyres" / "__init__.py").write_text("")
    (folder / "tinyres" / "student_copy.py").write_text(f"ASSIGNMENT = {assignment!r}\n")
    (folder / "kernels").mkdir()
    (folder / "tests").mkdir()
    (folder / "tests" / f"test_{assignment}.py").write_text("")
    return folder


# ==============================================================================================
# fast tier
# ==============================================================================================
@pytest.mark.parametrize("timeout", ["0", "-5", "nan", "inf"])
def test_a_timeout_that_is_not_a_positive_number_is_refused(tmp_path, timeout, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["assignment", "grade", str(tmp_path), "--timeout", timeout])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1
    assert "--timeout" in err and "> 0" in err


@pytest.mark.parametrize("option", ["--json", "--csv"])
def test_an_output_that_is_a_folder_is_refused_before_grading(tmp_path, option, capsys,
                                                              monkeypatch):
    monkeypatch.setattr(grader, "grade", lambda *a, **k: pytest.fail("graded before checking"))
    submission = _fake_copy(tmp_path / "ada")
    for path, words in ((tmp_path, f"{tmp_path} is a folder"),
                        (tmp_path / "missing" / "out", f"the folder {tmp_path / 'missing'} does "
                                                       f"not exist")):
        with pytest.raises(SystemExit) as exit_:
            main(["assignment", "grade", str(submission), option, str(path)])
        captured = capsys.readouterr()
        assert exit_.value.code == 2 and captured.out == ""
        assert len(captured.err.strip().splitlines()) == 1
        assert option in captured.err and words in captured.err


def _sign(copy, assignment):
    signing.write_manifest(copy / copier.MANIFEST, {"assignment": assignment,
                                                    "digests": copier.file_digests(copy)})


def test_a_manifest_moved_to_another_copy_is_refused(tmp_path):
    a1, a2 = _fake_copy(tmp_path / "a1", "A1"), _fake_copy(tmp_path / "a2", "A2")
    _sign(a1, "A1")
    assert grader.choose_assignment(a1) == ("A1", [], "")
    (a2 / copier.MANIFEST).write_text((a1 / copier.MANIFEST).read_text())     # the replay
    assignment, _, refused = grader.choose_assignment(a2)
    assert assignment is None and "made for another copy" in refused
    assert "tests/test_A1.py, which this copy lacks" in refused
    (a2 / "tests" / "test_A1.py").write_text("")                # the file list matched too ...
    refused = grader.choose_assignment(a2)[2]
    assert "tinyres/student_copy.py is not the one it was signed with" in refused  # ... not this
    assert "made for another copy" in grader.choose_assignment(a2, "A1")[1][0]      # a note


def test_without_a_course_key_grading_says_nothing_and_makes_no_key(tmp_path, monkeypatch):
    copy = _fake_copy(tmp_path / "ada")
    _sign(copy, "A2")
    key_file = tmp_path / "home" / ".config" / "tinyres" / "course-key"
    monkeypatch.setattr(signing, "KEY_FILE", key_file)
    monkeypatch.delenv("TINYRES_COURSE_KEY")
    assert grader.choose_assignment(copy, "A2") == ("A2", [], "")   # Gradescope: no note
    assignment, _, refused = grader.choose_assignment(copy)
    assert assignment is None and "no course key on this machine" in refused
    assert "--assignment" in refused
    assert not key_file.exists()
    _sign(copy, "A2")
    assert key_file.is_file()                                        # `make` makes it


def _cases_and_workdir(tmp_path, task="mul_backward"):
    cases = build(task, 0, 1)
    workdir = tmp_path / "work"
    workdir.mkdir()
    return cases, workdir


def test_only_the_arrays_of_the_graders_own_cases_count(tmp_path):
    """A shortened outputs.json (the atexit cheat) or a claim of success counts for nothing:
    every case needs its arrays, and the count is the grader's."""
    cases, workdir = _cases_and_workdir(tmp_path)
    first = cases[0]
    numpy.savez(workdir / "outputs.npz", **{f"0/{k}": v for k, v in first.expected.items()})
    (workdir / "outputs.json").write_text(json.dumps({"cases": [None], "tinyres": "package"}))
    outputs, raised = grader.read_outputs(workdir, cases)
    results = [grader.judge(c, o, r) for c, o, r in zip(cases, outputs, raised)]
    assert len(results) == len(cases) > 1
    assert results[0].passed and not any(r.passed for r in results[1:])
    assert all("no output returned" in r.message for r in results[1:])


@pytest.mark.parametrize("npz, report", [
    (b"PK\x03\x04 not a zip at all", b"{not json"),
    (None, json.dumps({"cases": "a string"}).encode()),
    (None, json.dumps([1, 2, 3]).encode()),
])
def test_malformed_outputs_fail_the_cases_and_never_raise(tmp_path, npz, report):
    cases, workdir = _cases_and_workdir(tmp_path)
    if npz is None:                                              # a zip of pickles, oversized
        numpy.savez(workdir / "outputs.npz", **{"0/forward": numpy.array([object()]),
                                                "1/forward": numpy.zeros(10**6)})
    else:
        (workdir / "outputs.npz").write_bytes(npz)
    (workdir / "outputs.json").write_bytes(report)
    outputs, raised = grader.read_outputs(workdir, cases)
    assert outputs == [{} for _ in cases] and raised == [None for _ in cases]


def test_the_course_key_is_blanked_out_of_what_the_student_reports(tmp_path):
    cases, workdir = _cases_and_workdir(tmp_path)
    (workdir / "outputs.json").write_text(json.dumps(
        {"cases": [{"error": "RuntimeError", "message": f"the key is {KEY}!", "where": None}]}))
    _, raised = grader.read_outputs(workdir, cases)
    assert KEY not in raised[0]["message"] and "<the course key>" in raised[0]["message"]


def test_a_link_out_of_the_submission_is_refused(tmp_path):
    copy = _fake_copy(tmp_path / "ada")
    (copy / "tinyres" / "ops.py").symlink_to(REPO / "tinyres" / "ops.py")
    (copy / "tinyres" / "inside.py").symlink_to(copy / "tinyres" / "__init__.py")   # allowed
    report = grader.grade(copy, "A1")
    assert report.score == 0 and not report.tasks
    assert report.refused.startswith("refused: tinyres/ops.py -> ")
    assert "symbolic link out of the submission" in report.refused


SANDBOX = sandbox.available()
needs_sandbox = pytest.mark.skipif(SANDBOX[0] is None, reason=f"no sandbox: {SANDBOX[1]}")

PROBE = """
import json, os, numpy
seen = {"uid": os.getuid(), "pids": [p for p in os.listdir("/proc") if p.isdigit()]}
for name, path in (("key", KEY_FILE), ("grader", f"/proc/{GRADER}/environ")):
    try:
        seen[name] = open(path).read()
    except OSError as error:
        seen[name] = type(error).__name__
try:
    open(numpy.__file__, "a")
    seen["numpy"] = "writable"
except OSError as error:
    seen["numpy"] = type(error).__name__
open("mine.txt", "w").write("the student's folder is writable")
print(json.dumps(seen))
"""


@needs_sandbox
@pytest.mark.parametrize("mode", ["nobody", "namespace"])
def test_the_sandbox_hides_the_key_file_the_grader_and_numpy(tmp_path, monkeypatch, mode):
    """A key file in the grader's home, the grader's /proc entry and the grader's own NumPy:
    none can be read or written from the sandbox; its scratch folder can."""
    if mode == "nobody" and os.geteuid() != 0:
        pytest.skip("only root can run the student's code as nobody")
    home = tmp_path / "staff"
    key_file = home / ".config" / "tinyres" / "course-key"
    key_file.parent.mkdir(parents=True)
    key_file.write_text(KEY)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(signing, "KEY_FILE", key_file)
    workdir = tmp_path / "work"
    python = sandbox.private_interpreter(workdir / "python")
    code = PROBE.replace("KEY_FILE", repr(str(key_file))).replace("GRADER", str(os.getpid()))
    done = subprocess.run(sandbox.confined([str(python), "-I", "-c", code], workdir, mode),
                          cwd=workdir, capture_output=True, text=True, timeout=60,
                          env={"PATH": os.defpath})
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    hidden = {"FileNotFoundError"} | ({"PermissionError"} if mode == "nobody" else set())
    assert seen["key"] in hidden and seen["grader"] == "FileNotFoundError"
    assert str(os.getpid()) not in seen["pids"] and seen["numpy"] != "writable"
    assert seen["uid"] == (sandbox.NOBODY if mode == "nobody" else 0)
    assert (workdir / "mine.txt").is_file()


def test_without_a_sandbox_a_machine_with_a_course_key_is_not_graded(tmp_path, monkeypatch):
    monkeypatch.setattr(grader, "sandbox_available", lambda: (None, "no Linux namespaces here"))
    report = grader.grade(_fake_copy(tmp_path / "ada"), "A1")
    assert report.score == 0 and not report.tasks
    assert report.refused.startswith("refused: no Linux namespaces here, so the student's code")
    assert "$TINYRES_COURSE_KEY" in report.refused and "\n" not in report.refused
    monkeypatch.delenv("TINYRES_COURSE_KEY")
    monkeypatch.setattr(signing, "KEY_FILE", tmp_path / "no-key")
    assert grader.key_exposure() == ""          # nothing to keep: grading goes ahead


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_a_setsid_double_forked_daemon_carrying_the_runs_marker_is_killed(tmp_path):
    """What outlives a killed guard: found by the grading run's marker in its environment,
    even after it removed the marker from os.environ."""
    pid_file, marker = tmp_path / "daemon.pid", "TINYRES_GRADING_RUN=test-marker-7f3a"
    daemon = (f"import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
              f"        os.environ.pop('TINYRES_GRADING_RUN')\n"
              f"        open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
              f"        time.sleep(60)\n")
    subprocess.run([sys.executable, "-c", daemon], check=True,
                   env={**os.environ, "TINYRES_GRADING_RUN": marker.split("=")[1]})
    for _ in range(100):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    assert Path(f"/proc/{pid}").exists()
    grader.kill_marked(marker)
    for _ in range(100):                              # init reaps it
        if not Path(f"/proc/{pid}").exists():
            break
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists(), "the daemon survived"


@pytest.mark.parametrize("op, shapes", [("mul", ((3, 1, 4), (5, 1))), ("mul", ((4,), ())),
                                        ("matmul", ((2, 1, 3, 4), (5, 4, 2))),
                                        ("matmul", ((5,), (5,))), ("matmul", ((3, 4), (4,)))])
def test_a1s_analytic_references_agree_with_central_differences(op, shapes):
    rng = numpy.random.default_rng(0)
    a, b = (rng.standard_normal(s) for s in shapes)
    f = (lambda a, b: a * b) if op == "mul" else (lambda a, b: a @ b)
    gy = rng.standard_normal(numpy.shape(f(a, b)))
    analytic = (ref.mul_gradients if op == "mul" else ref.matmul_gradients)(a, b, gy)
    for exact, numeric in zip(analytic, ref.numeric_gradients(f, [a, b], gy)):
        assert exact.shape == numeric.shape and numpy.allclose(exact, numeric, atol=1e-7)
    x = rng.standard_normal((2, 3, 4))
    gy = rng.standard_normal((2, 1, 4))
    numeric = ref.numeric_gradients(lambda x: x.sum(axis=1, keepdims=True), [x], gy)[0]
    assert numpy.allclose(ref.sum_gradients(x, gy, 1, True)[0], numeric, atol=1e-7)


# ==============================================================================================
# slow tier
# ==============================================================================================
@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """A fresh student copy of A1 and A2 and a solution copy of A1: {name: folder}."""
    previous = os.environ.get("TINYRES_COURSE_KEY")
    os.environ["TINYRES_COURSE_KEY"] = KEY
    root = tmp_path_factory.mktemp("copies")
    copier.make("A1", root / "A1", log=quiet)
    copier.make("A2", root / "A2", log=quiet)
    copier.make("A1", root / "A1-solution", solution=True, log=quiet)
    yield {name: root / name for name in ("A1", "A2", "A1-solution")}
    if previous is None:
        os.environ.pop("TINYRES_COURSE_KEY")
    else:
        os.environ["TINYRES_COURSE_KEY"] = previous


NUMERIC_BACKWARD = '''
import inspect
import numpy
import tinyres
from tinyres.tensor import Tensor


def numeric_backward(out, direction=None):
    """Find the runner's op and leaves on the stack, differentiate them numerically."""
    frame = inspect.currentframe().f_back
    while "leaves" not in frame.f_locals:
        frame = frame.f_back
    op, leaves = frame.f_locals["op"], frame.f_locals["leaves"]
    d = numpy.asarray(direction.data)
    for leaf in leaves:
        grad = numpy.zeros_like(leaf.data)
        for i in numpy.ndindex(leaf.data.shape):
            keep = leaf.data[i]
            leaf.data[i] = keep + 1e-6
            plus = (op(*leaves).data * d).sum()
            leaf.data[i] = keep - 1e-6
            minus = (op(*leaves).data * d).sum()
            leaf.data[i] = keep
            grad[i] = (plus - minus) / 2e-6
        leaf.grad = grad


Tensor.backward = numeric_backward
'''


@pytest.mark.slow
def test_a1_with_no_backward_written_scores_zero(copies, tmp_path):
    """The issue's cheat: Tensor.backward replaced at import by central differences of the
    runner's op, all three NotImplementedErrors left in place (30/30 on today's main)."""
    copy = _fresh(copies, "A1", tmp_path)
    init = copy / "tinyres" / "__init__.py"
    init.write_text(init.read_text() + NUMERIC_BACKWARD)
    report = grader.grade(copy)
    assert report.score == 0, grader.format_report(report)
    assert all("NotImplementedError" in c.message for t in report.tasks for c in t.cases)


@pytest.mark.slow
def test_a_backward_that_differentiates_forward_numerically_scores_zero(copies, tmp_path):
    copy = _fresh(copies, "A1", tmp_path)
    _plant(copy, "mul_backward", '''
import numpy
a, b, grads = self.a, self.b, []
for x in (a, b):
    g = numpy.zeros_like(x)
    for i in numpy.ndindex(x.shape):
        keep = x[i]
        x[i] = keep + 1e-6
        plus = (self.forward(a, b) * gy).sum()
        x[i] = keep - 1e-6
        minus = (self.forward(a, b) * gy).sum()
        x[i] = keep
        g[i] = (plus - minus) / 2e-6
    grads.append(g)
return tuple(grads)
''')
    mul = grader.grade(copy).tasks[0]
    assert mul.task.id == "mul_backward" and mul.score == 0
    assert "backward called forward again" in mul.cases[0].message


@pytest.mark.slow
def test_the_courses_own_tinyres_cannot_be_imported_by_the_students_code(copies, tmp_path):
    """Drop the submission from sys.path, run site.main(), try the editable finder: no course
    engine to borrow Mul.backward from (10/10 on today's main)."""
    copy = _fresh(copies, "A1", tmp_path)
    _plant(copy, "mul_backward", '''
import importlib, site, sys
for name in [m for m in sys.modules if m == "tinyres" or m.startswith("tinyres.")]:
    del sys.modules[name]
sys.path[:] = [p for p in sys.path if not p.endswith("package")]
site.main()
for finder in [m for p in sys.path if p and __import__("os").path.isdir(p)
               for m in __import__("os").listdir(p) if m.startswith("__editable__")
               and m.endswith(".py")]:
    importlib.import_module(finder[:-3]).install()
course = importlib.import_module("tinyres.ops")
node = course.Mul()
node.a, node.b = self.a, self.b
return course.Mul.backward(node, gy)
''')
    mul = grader.grade(copy).tasks[0]
    assert mul.score == 0
    assert "ModuleNotFoundError: No module named 'tinyres'" in mul.cases[0].message


@pytest.mark.slow
def test_a_replayed_manifest_is_refused(copies, tmp_path):
    copy = _fresh(copies, "A2", tmp_path)
    (copy / copier.MANIFEST).write_text((copies["A1"] / copier.MANIFEST).read_text())
    report = grader.grade(copy)
    assert report.refused and "made for another copy" in report.refused and report.score == 0


@pytest.mark.slow
def test_a_link_to_the_course_source_is_refused(copies, tmp_path):
    copy = _fresh(copies, "A1", tmp_path)
    (copy / "tinyres" / "ops.py").unlink()
    (copy / "tinyres" / "ops.py").symlink_to(REPO / "tinyres" / "ops.py")
    report = grader.grade(copy)
    assert report.score == 0 and "symbolic link out of the submission" in report.refused


@pytest.mark.slow
@needs_sandbox
def test_the_course_key_never_comes_back_in_feedback(copies, tmp_path):
    """The student's code looks for the key in its environment, its argv and the environ of
    every ancestor it can read, and the key file in the grader's home, and raises with what
    it found; the grader runs as a command started with the key in its environment and in
    its home. Nothing needs blanking out: the student's code found nothing."""
    home = tmp_path / "staff"
    key_file = home / ".config" / "tinyres" / "course-key"
    key_file.parent.mkdir(parents=True)
    key_file.write_text(KEY)
    copy = _fresh(copies, "A1", tmp_path)
    _plant(copy, "mul_backward", '''
import os, sys
found, pid = [repr(dict(os.environ)), repr(sys.argv)], os.getpid()
while pid > 1:
    try:
        found.append(open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace"))
    except OSError as error:
        found.append(str(error))
    pid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
for entry in (e for text in found for e in text.replace(",", "\\0").split("\\0")):
    if "TINYRES_COURSE_KEY" in entry:
        raise RuntimeError(f"found {entry}")
try:
    raise RuntimeError("found " + open(KEY_FILE).read())
except OSError as error:
    raise RuntimeError(f"nothing ({type(error).__name__})")
'''.replace("KEY_FILE", repr(str(key_file))))
    results = tmp_path / "results.json"
    env = {**os.environ, "TINYRES_COURSE_KEY": KEY, "HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "tinyres.cli", "assignment", "grade",
                           str(copy), "--assignment", "A1", "--json", str(results)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert KEY not in done.stdout + done.stderr + results.read_text()
    assert "<the course key>" not in results.read_text()
    assert "RuntimeError" in results.read_text() and "nothing (" in results.read_text()


HOSTILE = {            # Mul.backward's body in each hostile submission
    "kill-parent": ("import os, signal\nif os.getppid() != 1:      # never the machine's init\n"
                    "    os.kill(os.getppid(), signal.SIGKILL)\nreturn gy, gy"),
    "fork": ("import os, time\nfor _ in range(20):\n    if os.fork() == 0:\n"
             "        os.fork()\n        time.sleep(120)\n        os._exit(0)\nreturn gy, gy"),
    "large-write": ("with open('big', 'wb') as f:\n    for _ in range(200):\n"
                    "        f.write(bytes(2**20))\nreturn gy, gy"),
    "hang": "while True:\n    pass",
    "garbage": ("import os\nopen('outputs.npz', 'wb').write(os.urandom(4096))\n"
                "open('outputs.json', 'w').write('{\"cases\": [null, 7, {}]')\nos._exit(0)"),
    "scratch-squatter": ("import os, tempfile\nfor i in range(50):\n"
                         "    os.makedirs(os.path.join(tempfile.gettempdir(), '..', '..',\n"
                         "                             f'tinyres-grade-{i}'), exist_ok=True)\n"
                         "raise RuntimeError('squatting')"),
}


def _hostile_copy(solution, folder, body):
    """A solution copy whose Mul.backward is replaced by `body` (MatMul and Sum stay right)."""
    shutil.copytree(solution, folder, symlinks=True)
    code = "\n".join("    " + line for line in body.split("\n"))
    with open(folder / "tinyres" / "ops.py", "a") as f:
        f.write(f"\n\ndef _hostile(self, gy):\n{code}\n\n\nMul.backward = _hostile\n")


@pytest.mark.slow
def test_a_batch_with_hostile_submissions_has_a_row_for_every_student(copies, tmp_path,
                                                                      monkeypatch):
    """20 A1 submissions: 7 hostile in Mul.backward (kill the parent, fork 40 sleepers, write
    200 MB, hang, write garbage outputs, squat on scratch names, a setsid daemon that rewrites
    the CSV after grading), 7 solutions, 6 untouched copies. Each ends in the CSV with its own
    score: a hostile one loses Mul.backward's 10 points and keeps the other 20."""
    submissions, grades = tmp_path / "submissions", tmp_path / "grades.csv"
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "scratch"))   # the squatter's aim
    (tmp_path / "scratch").mkdir()
    hostile = {**HOSTILE, "daemon": (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        f"        time.sleep(8)\n        open({str(grades)!r}, 'w').write('owned')\n"
        "    os._exit(0)\nreturn gy, gy")}
    expected = {}
    for index, (name, body) in enumerate(hostile.items()):
        expected[f"{index:02d}-{name}"] = 20
        _hostile_copy(copies["A1-solution"], submissions / f"{index:02d}-{name}", body)
    for index in range(len(hostile), 20):
        solved = index % 2 == 0
        name = f"{index:02d}-{'solved' if solved else 'empty'}"
        shutil.copytree(copies["A1-solution" if solved else "A1"], submissions / name)
        expected[name] = 30 if solved else 0
    monkeypatch.chdir(tmp_path)
    assert main(["assignment", "grade", *sorted(map(str, submissions.iterdir())),
                 "--assignment", "A1", "--timeout", "5", "--csv", str(grades)]) == 0
    time.sleep(10)                                      # the daemon's moment, had it survived
    with open(grades, newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    assert {name: float(row["score"]) for name, row in rows.items()} == expected
    assert all(float(rows[f"{index:02d}-{name}"]["Mul.backward"]) == 0
               for index, name in enumerate(hostile))
