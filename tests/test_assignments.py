"""The course (tinyres/course/): holes, student copies, and a grader that cannot be fooled.

Fast tier: the markers, the feedback's comparisons, the signed manifest, the report formats.
Slow tier (copies, subprocesses, a venv): a copy is a self-contained engine whose tests run the
student's code and hold no answer; the reference solutions score full marks and a fresh copy
zero; every cheat of the course issue scores zero or is refused, and says why; `make --force`
deletes nothing it did not make.
"""
import ast
import contextlib
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy
import pytest

from tinyres.cli import main
from tinyres.course import copier, gradescope, grader, signing
from tinyres.course.assignments import ASSIGNMENTS, TASKS, tasks_of
from tinyres.course.cases import GOAL, build
from tinyres.course.grader import goal_problems
from tinyres.course.settings import Settings, SettingsError, load
from tinyres.course.feedback import compare, relative_errors
from tinyres.course.holes import find_regions, strip_solutions

REPO = Path(__file__).resolve().parents[1]
KEY = "course-key-of-the-tests"


@pytest.fixture(autouse=True)
def course_key(monkeypatch):
    """Sign and check manifests with a key of the tests' own (never the user's key file)."""
    monkeypatch.setenv("TINYRES_COURSE_KEY", KEY)


def quiet(*args, **kwargs):
    pass


# ==============================================================================================
# fast tier
# ==============================================================================================
def test_every_task_has_exactly_one_region_in_the_source():
    regions = [r for r in copier.all_regions(REPO) if r.file.suffix == ".py"]
    assert sorted(r.task for r in regions) == sorted(TASKS), "markers lost or duplicated"
    for region in regions:
        assert str(region.file.relative_to(REPO)) == TASKS[region.task].file
        assert region.end > region.begin + 1, f"{region.task}: an empty region"


def test_stripping_keeps_valid_python_and_other_assignments_code():
    source = (REPO / "tinyres" / "ops.py").read_text()
    stripped = strip_solutions(source, "A1", "ops.py")
    ast.parse(stripped)
    assert "BEGIN SOLUTION" not in stripped and "END SOLUTION" not in stripped
    assert stripped.count('raise NotImplementedError("A1: implement') == 3
    assert "unbroadcast(gy * self.b, self.a.shape)" not in stripped      # Mul's solution: gone
    assert "unbroadcast(gy, self.a_shape), unbroadcast(-gy, self.b_shape)" in stripped  # Sub's
    kept = strip_solutions(source, "A2", "ops.py")                        # another assignment's
    assert "unbroadcast(gy * self.b, self.a.shape)" in kept and "SOLUTION" not in kept


def test_a_docs_block_of_a_hole_becomes_a_pointer_to_the_handout():
    text = (REPO / "docs" / "batchnorm.md").read_text()
    stripped = strip_solutions(text, "A3", "docs/batchnorm.md")
    assert "gx = weight * inv_std / m" in text and "gx = weight * inv_std / m" not in stripped
    assert ("Code left out of this copy: it is batch_norm_train_backward, yours to write in A3"
            in stripped)
    assert "m\\, g_j - \\sum_i g_i" in stripped                  # the math stays
    assert "SOLUTION" not in strip_solutions(text, "A1", "docs/batchnorm.md")


@pytest.mark.parametrize("text, error", [
    ("# BEGIN SOLUTION A1 mul_backward\nx = 1\n", "never closed"),
    ("x = 1\n# END SOLUTION\n", "without"),
    ("# BEGIN SOLUTION A1 mul_backward\n# BEGIN SOLUTION A1 sum_backward\n", "inside"),
    ("# BEGIN SOLUTION A2 mul_backward\nx = 1\n# END SOLUTION\n", "known task"),
    ("<!-- BEGIN SOLUTION -->\nx = 1\n<!-- END SOLUTION -->\n", "known task"),
])
def test_broken_markers_are_reported_with_file_and_line(text, error):
    with pytest.raises(ValueError, match=error) as caught:
        find_regions(text, "some/file.py")
    assert "some/file.py:" in str(caught.value)


def test_every_task_has_visible_and_hidden_cases_of_other_shapes():
    for task in TASKS.values():
        cases = build(task.id, 0, 1)
        visible = {c.name for c in cases if not c.hidden}
        hidden = [c for c in cases if c.hidden]
        assert visible and hidden, task.id
        assert any(c.name not in visible for c in hidden), f"{task.id}: no hidden shape"
        for case in cases:
            assert set(case.expected) == set(case.tolerance), task.id
            assert not set(case.expected) & set(case.inputs), "expected outputs are never sent"


# -- feedback -----------------------------------------------------------------------------------
def test_feedback_names_the_worst_element_with_expected_and_got():
    expected = numpy.arange(12.0).reshape(3, 4) + 1
    got = expected.copy()
    got[2, 1] = -got[2, 1]
    verdict = compare("y", got, expected, 1e-9)
    assert not verdict.passed
    assert "worst element [2, 1]: expected 10, got -10" in verdict.message
    assert verdict.error == pytest.approx(2.0, rel=1e-2)      # 20 / (10 + 1e-3 * 12)


def test_the_relative_error_does_not_saturate():
    """A sign flip, a factor 10 and a factor 100 read as different errors (max(|a|, |b|) in
    the denominator would read ~2 for all of them... and 0.9, 0.99 for the scalings)."""
    expected = numpy.array([1.0, -2.0, 3.0])
    errors = [relative_errors(got, expected).max() for got in (-expected, 10 * expected,
                                                               100 * expected)]
    assert errors == sorted(errors) and errors[2] > 90 and errors[1] > 8.9
    assert relative_errors(expected, expected).max() == 0.0


@pytest.mark.parametrize("got, words", [
    (numpy.zeros((4, 3)), "wrong shape: got (4, 3), expected (3, 4)"),
    (numpy.full((3, 4), numpy.nan), "got nan at [0, 0]"),
    (numpy.array([["a"] * 4] * 3), "expected an array of numbers"),
    (None, "no output returned"),
])
def test_feedback_on_outputs_that_are_not_the_right_array(got, words):
    verdict = compare("cols", got, numpy.ones((3, 4)), 1e-9)
    assert not verdict.passed and words in verdict.message and verdict.message.startswith("cols")


def _report(assignment="A2", passing=("im2col",)):
    """A Report as grade() returns it, without running anything."""
    report = grader.Report(Path("/submissions/ada"), assignment, seconds=1.0)
    for task in tasks_of(assignment):
        ok = task.function in passing
        cases = [grader.CaseResult(f"x {i}", i == 2, ok, 0.0 if ok else 2.0,
                                   "" if ok else "NotImplementedError: A2: implement it")
                 for i in range(3)]
        report.tasks.append(grader.TaskResult(task, cases))
    return report


def _assert_gradescope_format(results):
    """Gradescope's autograder results.json: top-level score (number), tests with name,
    score, max_score, output, visibility."""
    assert isinstance(results["score"], (int, float))
    assert isinstance(results.get("max_score", 0), (int, float))
    for test in results["tests"]:
        assert set(test) == {"name", "score", "max_score", "output", "visibility"}
        assert isinstance(test["name"], str) and isinstance(test["output"], str)
        assert all(isinstance(test[key], (int, float)) for key in ("score", "max_score"))
        assert 0 <= test["score"] <= test["max_score"]
        assert test["visibility"] in ("hidden", "after_due_date", "after_published", "visible")
    json.dumps(results)
    assert results["score"] == pytest.approx(sum(t["score"] for t in results["tests"]))


def test_gradescope_results_and_table_list_written_parts_as_manually_graded():
    report = _report()
    results = grader.gradescope_results(report)
    _assert_gradescope_format(results)
    assert results["score"] == 10 and results["max_score"] == 50
    written = [t for t in results["tests"] if "written" in t["name"]]
    assert written and all("manually graded" in t["output"] and t["max_score"] == 0
                           for t in written)
    table = grader.format_report(report)
    assert "manually graded" in table and "score A2: 10/50" in table
    assert table.count("NotImplementedError: A2: implement it") == 4        # once per function
    assert "the same for: case x 1; hidden case x 2" in table
    refused = grader.Report(Path("x"), refused="refused: no manifest")
    _assert_gradescope_format(grader.gradescope_results(refused))


def test_csv_has_one_row_per_student_with_written_parts_seed_and_feedback(tmp_path):
    reports = [_report(), _report(passing=()), grader.Report(Path("/s/bob"),
                                                             refused="refused: edited")]
    reports[0].hidden_seed = 1234
    reports[1].directory = Path("/submissions/grace")
    sheet = grader.GradeSheet(tmp_path / "grades.csv", ["A2"])
    for count, report in enumerate(reports, start=2):
        sheet.add(report)                                    # on disk as each is graded
        assert len(list(csv.reader((tmp_path / "grades.csv").open()))) == count
    sheet.close()
    rows = list(csv.reader((tmp_path / "grades.csv").open()))
    assert rows[0][:4] == ["student", "assignment", "score", "max_score"]
    assert rows[0][-3:] == ["hidden_seed", "feedback", "status"]
    written = rows[0].index("A2 written: timing: loops against im2col + GEMM, and why (10)")
    assert len(rows) == 4 and rows[1][:3] == ["ada", "A2", "10.0"] and "refused: edited" in rows[3]
    assert rows[1][written] == "" and rows[1][-3] == "1234"            # for the staff to fill
    feedback = tmp_path / rows[1][-2]
    assert feedback == tmp_path / "grades-feedback" / "ada.txt"
    assert "score A2: 10/50" in feedback.read_text() and "seed 1234" in feedback.read_text()


# -- the manifest -------------------------------------------------------------------------------
def test_an_edited_or_foreign_manifest_is_not_trusted(tmp_path, monkeypatch):
    path = tmp_path / ".tinyres-assignment"
    signing.write_manifest(path, {"assignment": "A2", "entries": []})
    assert signing.read_manifest(path)["assignment"] == "A2"
    path.write_text(path.read_text().replace('"A2"', '"A1"'))
    assert signing.read_manifest(path) is None
    assert "edited" in signing.manifest_problem(path)
    signing.write_manifest(path, {"assignment": "A2", "entries": []})
    monkeypatch.setenv("TINYRES_COURSE_KEY", "another course")
    assert signing.read_manifest(path) is None


def test_the_assignment_comes_from_the_command_or_a_valid_manifest(tmp_path):
    assert grader.choose_assignment(tmp_path, "A3") == ("A3", [], "")
    assignment, _, refused = grader.choose_assignment(tmp_path)
    assert assignment is None and "no manifest" in refused and "--assignment" in refused
    signing.write_manifest(tmp_path / copier.MANIFEST,
                           {"assignment": "A2", "digests": copier.file_digests(tmp_path)})
    assert grader.choose_assignment(tmp_path)[0] == "A2"
    assignment, notes, _ = grader.choose_assignment(tmp_path, "A3")
    assert assignment == "A3" and "made for A2; graded as A3" in notes[0]


# -- the house ----------------------------------------------------------------------------------
def _imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module


def test_the_engine_never_imports_the_course():
    """The course is a top floor beside the CLI: imports point down to it from nowhere else."""
    for path in (REPO / "tinyres").rglob("*.py"):
        if "course" not in path.parts and path.name != "cli.py":
            assert not any(name.startswith("tinyres.course") for name in _imports(path)), path


def test_gradcheck_cases_share_one_leaf_helper():
    checks = REPO / "tinyres" / "course" / "checks"
    assert not any("def _leaf" in p.read_text() for p in checks.glob("*.py"))
    from tinyres.course.checks import REGISTRY  # importing it registers every family's cases
    assert {"conv2d", "max_pool2d", "batch_norm (training)"} <= set(REGISTRY)


# ==============================================================================================
# slow tier: copies
# ==============================================================================================
@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """A fresh student copy of each assignment, and a solution copy of each: {name: folder}."""
    previous = os.environ.get("TINYRES_COURSE_KEY")
    os.environ["TINYRES_COURSE_KEY"] = KEY
    root = tmp_path_factory.mktemp("copies")
    made = {}
    for a in ASSIGNMENTS:
        copier.make(a, root / a, log=quiet)
        copier.make(a, root / f"{a}-solution", solution=True, log=quiet)
        made[a], made[f"{a}-solution"] = root / a, root / f"{a}-solution"
    yield made
    if previous is None:
        os.environ.pop("TINYRES_COURSE_KEY")
    else:
        os.environ["TINYRES_COURSE_KEY"] = previous


def _fresh(copies, name, tmp_path):
    """A private copy of copies[name] to change (the shared ones stay fresh)."""
    shutil.copytree(copies[name], tmp_path / name, symlinks=True)
    return tmp_path / name


def _installed_layout(copy, destination):
    """The copy as `pip install .` lays it out (kernels/ inside tinyres/), for PYTHONPATH."""
    grader._layout(copy, destination)
    return destination / "package"


def _run_copy_tests(copy, tmp_path, *args):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "COLUMNS": "300",
           "PYTHONPATH": str(_installed_layout(copy, tmp_path / "layout"))}
    return subprocess.run([sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider",
                           "-m", "not slow", *args], cwd=copy, env=env, capture_output=True,
                          text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.parametrize("assignment", list(ASSIGNMENTS))
def test_a_fresh_copy_holds_no_answer(copies, assignment):
    copy = copies[assignment]
    assert copier.find_leaks(copy, assignment, REPO) == []
    twins = {name for t in tasks_of(assignment) for name in t.twins}
    for path in copier._marked_files(copy):
        assert find_regions(path.read_text(), path) == [], f"{path}: markers left"
    for path in copy.rglob("*.py"):
        ast.parse(path.read_text(), str(path))
    for path in (copy / "kernels").rglob("*.py"):
        assert not twins & copier._defined_names(path), f"{path}: a fast twin of a hole"
    for name in copier.GRADER_SIDE:                     # references, hidden cases, grader
        assert not (copy / "tinyres" / "course" / name).exists()
    for task in tasks_of(assignment):
        assert (f'raise NotImplementedError("{assignment}: implement {task.function} '
                in (copy / task.file).read_text())


@pytest.mark.slow
def test_the_leak_check_finds_a_solution_left_in_a_copy(copies, tmp_path):
    copy = _fresh(copies, "A3", tmp_path)
    source = (REPO / "tinyres" / "functional" / "batchnorm.py").read_text()
    region = next(r for r in find_regions(source) if r.task == "batch_norm_backward")
    body = "\n".join(source.split("\n")[region.begin:region.end - 1])
    (copy / "examples" / "cheat_sheet.py").write_text(f"def backward():\n{body}\n")
    leaks = copier.find_leaks(copy, "A3", REPO)
    assert len(leaks) == 1 and leaks[0].startswith("examples/cheat_sheet.py: "
                                                   "batch_norm_train_backward (")


@pytest.mark.slow
@pytest.mark.parametrize("assignment", list(ASSIGNMENTS))
def test_a_fresh_copys_tests_run_and_fail_naming_the_holes(copies, assignment, tmp_path):
    """Everything the copy's tests import is in the copy; they fail, each on a
    NotImplementedError that names one of the assignment's holes (the first it meets)."""
    done = _run_copy_tests(copies[assignment], tmp_path, "--maxfail=12", "--tb=no", "-rf")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-3000:]             # tests failed (not: collection errors)
    assert "ModuleNotFoundError" not in out and "ImportError" not in out and " error" not in out
    failed = [line for line in out.splitlines() if line.startswith("FAILED ")]
    holes = {task.function for task in tasks_of(assignment)}
    assert failed
    for line in failed:
        named = line.split(f"NotImplementedError: {assignment}: implement ", 1)
        assert len(named) == 2 and named[1].split()[0] in holes, line


@pytest.mark.slow
@pytest.mark.parametrize("assignment", list(ASSIGNMENTS))
def test_a_solution_copys_tests_pass(copies, assignment, tmp_path):
    done = _run_copy_tests(copies[f"{assignment}-solution"], tmp_path)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]


@pytest.mark.slow
def test_an_installed_copy_runs_the_students_code(copies, tmp_path):
    """`pip install -e .` in the copy (one command), in a fresh venv: import tinyres, the
    tinyres command and the examples run the copy; it says once which functions are yours."""
    copy = _fresh(copies, "A2", tmp_path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    # the copy's dependencies (numpy, tqdm, matplotlib) from this interpreter's site-packages, as
    # a plain path: its .pth files (this checkout's own editable tinyres) are not read from there
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path("
                           "'purelib'))"], capture_output=True, text=True, check=True).stdout
    Path(site.strip(), "dependencies.pth").write_text(str(Path(numpy.__file__).parent.parent))
    install = [str(python), "-m", "pip", "install", "-q", "-e", ".", "--no-deps",
               "--no-build-isolation"]
    done = subprocess.run(install, cwd=copy, capture_output=True, text=True, timeout=600)
    if done.returncode != 0 and "bdist_wheel" in done.stderr + done.stdout:
        tools = subprocess.run([str(python), "-m", "pip", "install", "-q", "wheel",
                                "setuptools>=70"], capture_output=True, text=True, timeout=600)
        if tools.returncode != 0:
            pytest.skip(f"this venv cannot build editable installs offline: {tools.stderr[-300:]}")
        done = subprocess.run(install, cwd=copy, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    shutil.rmtree(copy / "tinyres.egg-info", ignore_errors=True)
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}

    info = subprocess.run([str(venv / "bin" / "tinyres"), "info"], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=300)
    assert info.returncode == 0, info.stderr
    assert "A2 copy: conv2d_loops, im2col, col2im, conv2d_forward, conv2d_backward are yours" \
           in info.stdout and str(copy) in info.stdout
    assert info.stderr.count("fast kernels off for them") == 1           # announced once
    imported = subprocess.run([str(python), "-c", "import tinyres, tinyres.kernels.geometry as g;"
                               " import tinyres; print(tinyres.__file__, g.__file__)"],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert imported.stdout.split() == [str(copy / "tinyres" / "__init__.py"),
                                       str(copy / "kernels" / "geometry.py")]
    example = subprocess.run([str(python), "examples/02_im2col_convolution.py"],
                             capture_output=True, text=True, env={**env, "MPLBACKEND": "Agg"},
                             cwd=copy, timeout=300)
    assert example.returncode != 0
    assert "NotImplementedError: A2: implement im2col" in example.stderr     # its first step
    check = subprocess.run([str(venv / "bin" / "tinyres"), "gradcheck", "--only", "conv2d"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert check.returncode == 1 and "FAIL: NotImplementedError: A2: implement" in check.stdout


# -- make --force -------------------------------------------------------------------------------
@pytest.mark.slow
def test_force_never_deletes_a_folder_make_did_not_write(copies, tmp_path, capsys):
    thesis = tmp_path / "X"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("years of work")
    assert main(["assignment", "make", "A2", "--out", str(thesis), "--force"]) == 2
    assert "--force refused" in capsys.readouterr().err
    assert (thesis / "thesis.tex").read_text() == "years of work"

    checkout = tmp_path / "checkout"                     # a tinyres checkout, with its history
    shutil.copytree(REPO / "tinyres", checkout / "tinyres",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", checkout / "pyproject.toml")
    (checkout / ".git").mkdir()
    (checkout / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    with pytest.raises(FileExistsError, match="was not written by `tinyres assignment make`"):
        copier.make("A2", checkout, force=True, log=quiet)
    assert (checkout / ".git" / "HEAD").is_file() and (checkout / "tinyres" / "cli.py").is_file()
    with pytest.raises(ValueError, match="overlaps the repository"):
        copier.make("A2", REPO, force=True, log=quiet)

    copy = tmp_path / "a1"                               # a copy a student added work to
    copier.make("A1", copy, log=quiet)
    (copy / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="did not write: notes.txt"):
        copier.make("A1", copy, force=True, log=quiet)
    assert (copy / "notes.txt").is_file()
    (copy / "notes.txt").unlink()
    (copy / "tinyres.egg-info").mkdir()                  # what `pip install -e .` leaves
    copier.make("A3", copy, force=True, log=quiet)       # a copy make wrote: replaced
    assert json.loads((copy / copier.MANIFEST).read_text())["assignment"] == "A3"


# ==============================================================================================
# slow tier: grading
# ==============================================================================================
def _plant(copy, task_id, code):
    """Put `code` (the function body, 4-space indented) where the copy's hole of task_id
    raises NotImplementedError."""
    task = TASKS[task_id]
    path = copy / task.file
    stub = f'raise NotImplementedError("{task.assignment}: implement {task.function} '
    lines = path.read_text().split("\n")
    at = next(i for i, line in enumerate(lines) if stub in line)
    indent = lines[at][:len(lines[at]) - len(lines[at].lstrip())]
    lines[at:at + 1] = [indent + line if line else line for line in code.strip("\n").split("\n")]
    path.write_text("\n".join(lines))


def _scores(report):
    return {t.task.id: t.score for t in report.tasks}


@pytest.mark.slow
@pytest.mark.parametrize("assignment", list(ASSIGNMENTS))
def test_the_solutions_score_full_marks_and_a_fresh_copy_zero(copies, assignment):
    full = grader.grade(copies[f"{assignment}-solution"])
    assert full.assignment == assignment and not full.refused
    assert full.score == full.max_score > 0, grader.format_report(full)
    empty = grader.grade(copies[assignment])
    assert empty.score == 0
    for t in empty.tasks:
        assert all(f"NotImplementedError: {assignment}: implement {t.task.function}"
                   in c.message or "NotImplementedError" in c.message for c in t.cases)
        assert any(f"implement {t.task.function}" in c.message for c in t.cases)


@pytest.mark.slow
def test_feedback_on_a_real_bug_and_an_exception_names_case_and_line(copies, tmp_path):
    """im2col with its columns in (kh, kw, c) order; col2im raising from the student's line."""
    copy = _fresh(copies, "A2", tmp_path)
    _plant(copy, "im2col", '''
(N, C, H, W), (KH, KW), (SH, SW), (PH, PW), (OH, OW) = _geometry("im2col", x.shape, kernel_size,
                                                                 stride, padding)
x_pad = get_array_module(x).pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))
cols = get_array_module(x).empty((N, OH, OW, KH, KW, C), dtype=x.dtype)
for kh in range(KH):
    for kw in range(KW):
        cols[:, :, :, kh, kw, :] = x_pad[:, :, kh:kh + SH * OH:SH,
                                         kw:kw + SW * OW:SW].transpose(0, 2, 3, 1)
return cols.reshape(N * OH * OW, -1)
''')
    _plant(copy, "col2im", "rows_per_image = cols.shape[0] // x_shape[0]\n"
                           "return cols.reshape(x_shape)  # the student's line")
    report = grader.grade(copy)
    tasks = {t.task.id: t for t in report.tasks}
    im2col = tasks["im2col"]
    assert 0 < im2col.passed < len(im2col.cases)             # 1x1 kernels: the order is moot
    message = next(c.message for c in im2col.cases if not c.passed)
    assert "cols: worst element [" in message and "expected" in message and "got" in message
    col2im = next(c for c in tasks["col2im"].cases if not c.passed)
    assert col2im.message.startswith("ValueError: cannot reshape array")
    assert ("at tinyres/functional/conv.py:" in col2im.message
            and "return cols.reshape(x_shape)  # the student's line" in col2im.message)
    assert "x (2, 3, 5, 5), kernel (3, 3), stride (1, 1), padding (1, 1)" == col2im.name


@pytest.mark.slow
def test_special_casing_the_visible_cases_loses_the_hidden_ones(copies, tmp_path):
    copy = _fresh(copies, "A2", tmp_path)
    visible = [case for case in build("conv2d_forward", 0, 1)
               if not case.hidden and case.name != GOAL]
    answers = {c.inputs["x"].tobytes().hex()[:32]: c.expected["y"].tolist() for c in visible}
    _plant(copy, "conv2d_forward", f'''
import numpy
answers = {answers!r}
key = numpy.ascontiguousarray(x).tobytes().hex()[:32]
return numpy.array(answers[key]) if key in answers else numpy.zeros((1,))
''')
    task = grader.grade(copy).tasks[3]
    assert task.task.id == "conv2d_forward"
    assert all(c.passed != c.hidden for c in task.cases if c.name != GOAL)
    assert 0 < task.score < task.task.points


@pytest.mark.slow
def test_cheats_score_zero_and_the_report_says_why(copies, tmp_path):
    copy = _fresh(copies, "A2", tmp_path)
    # 1. print the grader's result lines, then leave without returning anything
    _plant(copy, "im2col", '''
print("@@result {\\"task\\": \\"im2col\\", \\"passed\\": true}")
print("im2col  7/7  0.0e+00  pass\\nscore A2: 50/50", flush=True)
import os
os._exit(0)
''')
    # 2. load the grader's reference through the grader's own command line
    _plant(copy, "col2im", '''
import importlib.util, sys
spec = importlib.util.spec_from_file_location("grader", sys.argv[1])
reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reference)
return reference.col2im_loops(cols, x_shape, kernel_size, stride, padding)
''')
    # 3. replace the grader's comparison through __main__, then return anything
    _plant(copy, "conv2d_forward", '''
import sys
main = sys.modules["__main__"]
main.rel_error = main.compare = main.relative_errors = lambda *args, **kwargs: 0.0
return x
''')
    # 4. a grandchild that outlives the student's process and holds its output (found by the
    #    marker on its command line: the sandbox can write nowhere the test could read)
    marker = f"sleeper-{os.getpid()}-{time.time_ns()}"
    _plant(copy, "conv2d_backward", f'''
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)  # {marker}"])
raise RuntimeError("gone, the sleeper stays")
''')
    start = time.perf_counter()
    report = grader.grade(copy, timeout=60)
    assert time.perf_counter() - start < 50                    # nobody waited for the sleeper
    tasks = {t.task.id: t for t in report.tasks}
    assert all(tasks[t].score == 0 for t in ("im2col", "col2im", "conv2d_forward",
                                             "conv2d_backward"))
    assert "ended (exit status 0) without returning results" in tasks["im2col"].cases[0].message
    assert tasks["col2im"].cases[0].message.startswith("IndexError: list index out of range at "
                                                       "tinyres/functional/conv.py:")
    assert "worst element" in tasks["conv2d_forward"].cases[0].message or \
           "wrong shape" in tasks["conv2d_forward"].cases[0].message
    assert "RuntimeError: gone, the sleeper stays" in tasks["conv2d_backward"].cases[0].message
    alive = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if marker.encode() in (entry / "cmdline").read_bytes() and \
                    "State:\tZ" not in (entry / "status").read_text():
                alive.append(entry.name)
    assert not alive, "the grandchild survived"
    assert "50/50" not in grader.format_report(report)


@pytest.mark.slow
def test_an_endless_loop_is_killed_at_the_timeout(copies, tmp_path):
    copy = _fresh(copies, "A4", tmp_path)
    _plant(copy, "sgd_momentum", "while True:\n    pass")
    start = time.perf_counter()
    report = grader.grade(copy, timeout=8)
    assert time.perf_counter() - start < 60
    sgd = report.tasks[-1]
    assert sgd.score == 0 and "did not finish within 8 s" in sgd.cases[0].message


@pytest.mark.slow
def test_an_edited_manifest_is_refused_and_the_command_decides(copies, tmp_path, capsys):
    copy = _fresh(copies, "A2", tmp_path)
    manifest = copy / copier.MANIFEST
    manifest.write_text(manifest.read_text().replace('"A2"', '"A1"'))
    refused = grader.grade(copy)
    assert refused.refused and "edited" in refused.refused and refused.score == 0
    results = tmp_path / "results.json"
    assert main(["assignment", "grade", str(copy), "--json", str(results)]) == 0   # grading ran
    assert "refused" in capsys.readouterr().out
    _assert_gradescope_format(json.loads(results.read_text()))
    chosen = grader.grade(copy, "A2")
    assert chosen.assignment == "A2" and "edited" in chosen.notes[0]


@pytest.mark.slow
def test_grading_a_folder_of_submissions_writes_one_line_each_and_a_csv(copies, tmp_path,
                                                                         capsys, monkeypatch):
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    shutil.copytree(copies["A1"], submissions / "ada")
    shutil.copytree(copies["A1-solution"], submissions / "grace")
    (submissions / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["assignment", "grade", *sorted(map(str, submissions.iterdir()))]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ada") and " 0/30 " in lines[0] and "failing:" in lines[0]
    assert lines[1].startswith("empty") and "holds no tinyres copy" in lines[1]
    assert lines[2].startswith("grace") and " 30/30 " in lines[2] and " A1 " in lines[2]
    rows = (tmp_path / "grades.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows] == ["student", "ada", "empty", "grace"]


# ==============================================================================================
# a whole term (issue 25): release order, settings, Gradescope, regrades, one bug one cost,
# goals, notebooks; and make --force (issue 29, item 1)
# ==============================================================================================
ORDER = list(ASSIGNMENTS)


def _solution_body(task_id):
    """The reference solution of a task, dedented, as the source holds it."""
    task = TASKS[task_id]
    source = (REPO / task.file).read_text()
    region = next(r for r in find_regions(source) if r.task == task_id)
    lines = source.split("\n")[region.begin:region.end - 1]
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "\n".join(line[indent:] for line in lines)


def _filled(copies, tmp_path, assignment="A2", **bodies):
    """A fresh copy of `assignment` with every hole filled from the solutions, except the tasks
    given as task_id=code (planted instead)."""
    copy = _fresh(copies, assignment, tmp_path)
    for task in tasks_of(assignment):
        _plant(copy, task.id, bodies.get(task.id, _solution_body(task.id)))
    return copy


PER_PIXEL_IM2COL = '''
(N, C, H, W), (KH, KW), (SH, SW), (PH, PW), (OH, OW) = _geometry("im2col", x.shape, kernel_size,
                                                                 stride, padding)
xp = get_array_module(x)
x_pad = xp.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))
rows = []
for n in range(N):
    for i in range(OH):
        for j in range(OW):
            rows.append(x_pad[n, :, i * SH:i * SH + KH, j * SW:j * SW + KW].reshape(-1))
return xp.stack(rows)
'''


# -- fast tier ----------------------------------------------------------------------------------
def test_a_later_assignments_hole_says_which_assignment_fills_it():
    source = (REPO / "tinyres" / "models" / "blocks.py").read_text()
    stripped = strip_solutions(source, "A2", "blocks.py", later=("A3", "A4"))
    ast.parse(stripped)
    assert 'raise NotImplementedError("A4: ResidualBlock.forward is a hole of A4 (' in stripped
    assert "released after this A2 copy" in stripped and "SOLUTION" not in stripped
    assert "out = out + shortcut(x)" not in stripped                 # A4's answer: gone
    docs = strip_solutions((REPO / "docs" / "residual.md").read_text(), "A2", "residual.md",
                           later=("A4",))
    assert "it is ResidualBlock.forward, written in A4, released after A2" in docs


def test_settings_file_gives_points_weights_times_visibility_and_order(tmp_path):
    assert load(None) == Settings() and Settings().release_order == tuple(ORDER)
    path = tmp_path / "course.toml"
    path.write_text('release_order = ["A2", "A1", "A3", "A4"]\nhidden_seed = 7\n'
                    '[points]\nim2col = 12\n[case_points.im2col]\n'
                    f'"{GOAL}" = 4\n[time]\nper_function = 30\ntotal = 400\n'
                    '[visibility]\nhidden = "hidden"\n')
    settings = load(path)
    assert settings.release_order == ("A2", "A1", "A3", "A4") and settings.hidden_seed == 7
    assert settings.points_of(TASKS["im2col"]) == 12 and settings.points_of(TASKS["col2im"]) == 10
    goal = next(c for c in build("im2col", 0, 1) if c.name == GOAL)
    assert settings.weight_of("im2col", goal) == 4 and Settings().weight_of("im2col", goal) == 2
    assert (settings.per_function, settings.total, settings.hidden) == (30, 400, "hidden")
    for text, words in (('points = {im2colx = 3}', "unknown function 'im2colx'"),
                        ('release_order = ["A1", "A2"]', "expected every assignment once"),
                        ('[time]\ntotal = -1', "time.total: expected a positive finite"),
                        ('[visibility]\nhidden = "never"', "expected one of visible, hidden"),
                        ('pointz = 1', "unknown key 'pointz'"), ('points = [', "not valid TOML")):
        path.write_text(text)
        with pytest.raises(SettingsError, match=words) as refused:
            load(path)
        assert str(path) in str(refused.value) and "\n" not in str(refused.value)


def test_gradescope_results_hide_the_hidden_cases_and_record_the_seed():
    report = _report()
    report.hidden_seed = 99
    results = grader.gradescope_results(report)
    _assert_gradescope_format(results)
    hidden = [t for t in results["tests"] if t["name"].endswith("(hidden cases)")]
    assert hidden and all(t["visibility"] == "after_due_date" for t in hidden)
    assert all("x 2" not in t["output"] and "hidden case 1" in t["output"] for t in hidden
               if t["score"] < t["max_score"])                       # no shapes, numbered
    record = next(t for t in results["tests"] if t["name"].startswith("grading record"))
    assert record["visibility"] == "hidden" and "--hidden-seed 99" in record["output"]
    assert results["extra_data"]["hidden_seed"] == 99 and results["max_score"] == 50
    im2col = [t for t in results["tests"] if t["name"].startswith("A2 im2col")]
    assert sum(t["max_score"] for t in im2col) == pytest.approx(10)


def test_the_loop_goal_judges_line_counts():
    case = next(c for c in build("im2col", 0, 1) if c.name == GOAL)
    assert case.call == "goal" and case.weight == 2 and not case.hidden
    assert goal_problems(case, numpy.array([40, 40])) == []
    assert "a Python loop over images, channels or pixels" in goal_problems(
        case, numpy.array([40, 300]))[0]
    assert goal_problems(case, numpy.array([0, 0])) and goal_problems(case, None)
    assert set(case.expected) == {"small/cols", "large/cols"}


def _fake_copy(folder):
    (folder / "tinyres").mkdir(parents=True)
    (folder / "tinyres" / "__init__.py").write_text("")
    (folder / "kernels").mkdir()
    return folder


def test_a_submission_is_found_in_every_shape_students_upload(tmp_path):
    import zipfile
    fresh = _fake_copy(tmp_path / "fresh")
    (fresh / "tinyres" / "functional").mkdir()
    (fresh / "tinyres" / "functional" / "conv.py").write_text("# hole")

    def submission(name):
        (tmp_path / name / "submission").mkdir(parents=True)
        return tmp_path / name / "submission", tmp_path / name / "work"
    top, work = submission("top")
    _fake_copy(top)
    assert gradescope.find_submission(top, fresh, work, "A2") == (top, [])
    one, work = submission("one")
    _fake_copy(one / "a2")
    assert gradescope.find_submission(one, fresh, work, "A2")[0] == one / "a2"
    zipped, work = submission("zipped")
    work.mkdir()
    with zipfile.ZipFile(zipped / "a2.zip", "w") as z:
        z.writestr("a2/tinyres/__init__.py", "")
        z.writestr("a2/kernels/__init__.py", "")
    assert gradescope.find_submission(zipped, fresh, work, "A2")[0].name == "a2"
    alone, work = submission("alone")
    work.mkdir()
    (alone / "conv.py").write_text("# mine")
    copy, notes = gradescope.find_submission(alone, fresh, work, "A2")
    assert (copy / "tinyres" / "functional" / "conv.py").read_text() == "# mine"
    assert "laid onto a fresh A2 copy: tinyres/functional/conv.py" in notes[0]
    for name, make, words in (("empty", lambda s: None, "the submission is empty"),
                              ("junk", lambda s: (s / "essay.pdf").write_text("x"),
                               "holds no tinyres copy and none of the files of A2"),
                              ("evil", lambda s: zipfile.ZipFile(s / "x.zip", "w").writestr(
                                  "../../escape.py", "x"), "a path outside"),
                              ("broken", lambda s: (s / "x.zip").write_text("not a zip"),
                               "not a zip that can be read")):
        folder, work = submission(name)
        work.mkdir()
        make(folder)
        with pytest.raises(ValueError, match=words):
            gradescope.find_submission(folder, fresh, work, "A2")
    assert not (tmp_path / "escape.py").exists()


def test_each_function_gets_a_time_that_fits_the_total():
    settings = Settings(per_function=300, total=600)
    runs = len(tasks_of("A2")) + sum(bool(t.uses) for t in tasks_of("A2"))
    per_function = gradescope.per_function_timeout("A2", settings)
    assert per_function * runs <= settings.total - gradescope.MARGIN
    assert gradescope.per_function_timeout("A1", Settings(per_function=20)) == 20


def test_the_notebooks_are_what_their_generator_writes():
    done = subprocess.run([sys.executable, str(REPO / "tools" / "make_notebooks.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


# -- slow tier: release order and make --force ---------------------------------------------------
def _distinctive_solution_lines(assignments):
    """Every line of 24+ characters of a solution region of `assignments` that appears nowhere
    in the repository's source and docs outside the regions (written apart from the copier's
    own leak check, so that the test does not trust what it tests)."""
    outside, inside = set(), set()
    for path in [*REPO.glob("tinyres/**/*.py"), *REPO.glob("docs/**/*.md"),
                 *REPO.glob("examples/*.py")]:
        if "course" in path.relative_to(REPO).parts:
            continue
        in_region, assignment = False, None
        for line in path.read_text().split("\n"):
            words = line.strip().strip("#<>!- ").split()
            if words[:2] == ["BEGIN", "SOLUTION"]:
                in_region, assignment = True, words[2]
            elif words[:2] == ["END", "SOLUTION"]:
                in_region = False
            elif in_region and assignment in assignments:
                inside.add(line.strip())
            elif not in_region:
                outside.add(line.strip())
    return {line for line in inside - outside if len(line) >= 24 and not line.startswith("#")}


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ORDER)
def test_a_copy_in_release_order_holds_no_line_of_its_or_a_later_solution(copies, assignment):
    later = ORDER[ORDER.index(assignment) + 1:]
    for name, cut in ((assignment, [assignment, *later]), (f"{assignment}-solution", later)):
        copy = copies[name]
        lines = _distinctive_solution_lines(cut)
        assert not cut or lines
        for path in copy.rglob("*"):
            if path.suffix in (".py", ".md", ".ipynb", ".toml", ".txt") and path.is_file():
                text = path.read_text()
                assert not [line for line in lines if line in text], f"{name}: {path}"
        assert copier.find_leaks(copy, cut, REPO) == []              # the copier's own check
        for a in later:                                              # holes that say who fills
            for task in tasks_of(a):
                assert f'"{a}: {task.function} is a hole of {a}' in (copy / task.file).read_text()
            for example in ASSIGNMENTS[a].examples:
                assert not (copy / example).exists(), f"{name}: {example} needs {a}"
        for example in ASSIGNMENTS[assignment].examples:
            assert (copy / example).is_file()


@pytest.mark.slow
def test_force_deletes_nothing_but_what_the_manifest_wrote(copies, tmp_path):
    """Issue 29, item 1: make A2 --out f; echo work > f/examples/mine.py; make --force: kept."""
    out = tmp_path / "f"
    copier.make("A2", out, log=quiet)
    for plant, words in ((lambda: (out / "examples" / "mine.py").write_text("work"),
                          "did not write: examples/mine.py"),
                         (lambda: (out / "tinyres" / "functional" / "conv.py").write_text(
                             "my im2col"), "changed since it wrote them: "
                                           "tinyres/functional/conv.py"),
                         (lambda: (out / "build").mkdir() or (out / "build" / "x").write_text(
                             "x"), "did not write: build/x")):
        snapshot = copier.file_digests(out)
        plant()
        planted = copier.file_digests(out)
        with pytest.raises(FileExistsError, match=words):
            copier.make("A2", out, force=True, log=quiet)
        assert copier.file_digests(out) == planted and planted != snapshot      # nothing went
        shutil.rmtree(out)
        copier.make("A2", out, log=quiet)
    other = tmp_path / "project"                         # a manifest copied into a project
    (other / "docs").mkdir(parents=True)
    (other / "docs" / "thesis.md").write_text("years of work")
    shutil.copy(out / copier.MANIFEST, other / copier.MANIFEST)
    with pytest.raises(FileExistsError, match="written for the folder"):
        copier.make("A2", other, force=True, log=quiet)
    assert (other / "docs" / "thesis.md").read_text() == "years of work"
    (out / "tinyres" / "__pycache__").mkdir(exist_ok=True)          # what running leaves
    (out / "tinyres" / "__pycache__" / "x.pyc").write_bytes(b"x")
    (out / "tinyres.egg-info").mkdir()
    copier.make("A3", out, force=True, log=quiet)                   # a copy make wrote
    assert json.loads((out / copier.MANIFEST).read_text())["assignment"] == "A3"
    assert not (out / "tinyres.egg-info").exists()


# -- slow tier: grading a term -------------------------------------------------------------------
@pytest.mark.slow
def test_one_bug_costs_points_in_one_function(copies, tmp_path):
    transposed = _solution_body("col2im").replace("cols[:, :, :, :, kh, kw]",
                                                  "cols[:, :, :, :, kw, kh]")
    assert transposed != _solution_body("col2im")
    report = grader.grade(_filled(copies, tmp_path / "col2im", col2im=transposed), "A2")
    scores = _scores(report)
    assert scores["col2im"] < 10 and all(scores[t] == 10 for t in scores if t != "col2im")
    backward = report.tasks[-1]
    assert backward.task.id == "conv2d_backward" and backward.dependences
    assert "pass with the reference col2im; fail with yours" in grader.format_report(report)
    strided = _solution_body("im2col").replace("kh:kh + SH * OH:SH", "kh:kh + SH * OH:SW")
    report = grader.grade(_filled(copies, tmp_path / "im2col", im2col=strided), "A2")
    scores = _scores(report)
    assert scores["im2col"] < 10 and all(scores[t] == 10 for t in scores if t != "im2col")


@pytest.mark.slow
def test_a_per_pixel_loop_loses_the_goal_case_only(copies, tmp_path):
    report = grader.grade(_filled(copies, tmp_path, im2col=PER_PIXEL_IM2COL), "A2")
    im2col = report.tasks[1]
    failed = [c for c in im2col.cases if not c.passed]
    assert [c.name for c in failed] == [GOAL]
    assert "a Python loop over images, channels or pixels" in failed[0].message
    assert im2col.score == round(10 * (1 - 2 / sum(c.weight for c in im2col.cases)), 2)
    assert all(t.score == 10 for t in report.tasks if t.task.id != "im2col")


@pytest.mark.slow
def test_a_regrade_with_the_recorded_seed_reproduces_score_and_feedback(copies, tmp_path):
    copy = _filled(copies, tmp_path, col2im=_solution_body("col2im").replace("+=", "="))
    first = grader.grade(copy, "A2")
    again = grader.grade(copy, "A2", hidden_seed=first.hidden_seed)
    other = grader.grade(copy, "A2", hidden_seed=first.hidden_seed + 1)

    def feedback(report):
        return [line for line in grader.format_report(report).splitlines()
                if not line.startswith("score ")]              # the line with the seconds
    assert first.hidden_seed is not None and first.score < first.max_score
    assert feedback(again) == feedback(first) and again.score == first.score
    assert feedback(other) != feedback(first)                  # the hidden cases did change
    results = tmp_path / "results.json"
    assert main(["assignment", "grade", str(copy), "--assignment", "A2", "--hidden-seed",
                 str(first.hidden_seed), "--json", str(results)]) == 0
    assert json.loads(results.read_text())["score"] == first.score


def _gradescope_root(tmp_path, package, name):
    """A temporary root laid out as Gradescope's: source/ (the package unzipped),
    submission/, results/."""
    import zipfile
    root = tmp_path / name
    (root / "source").mkdir(parents=True)
    (root / "submission").mkdir()
    with zipfile.ZipFile(package) as z:
        z.extractall(root / "source")
    for script in ("run_autograder", "setup.sh"):
        (root / "source" / script).chmod(0o755)
    return root


def _run_autograder(root, python=sys.executable):
    env = {"PATH": os.environ["PATH"], "HOME": str(root), "TINYRES_AUTOGRADER_ROOT": str(root),
           "TINYRES_AUTOGRADER_PYTHON": str(python)}
    done = subprocess.run(["bash", str(root / "source" / "run_autograder")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((root / "results" / "results.json").read_text())
    _assert_gradescope_format(results)
    return results


@pytest.mark.slow
def test_the_gradescope_package_grades_as_the_grader_in_a_simulated_root(copies, tmp_path,
                                                                          monkeypatch):
    settings_file = tmp_path / "course.toml"
    settings_file.write_text("hidden_seed = 5\n[time]\ntotal = 150\n")   # 12 s a function run
    package = tmp_path / "autograder.zip"
    assert main(["assignment", "gradescope", "A2", "--out", str(package), "--settings",
                 str(settings_file)]) == 0
    settings = load(settings_file)
    timeout = gradescope.per_function_timeout("A2", settings)
    monkeypatch.delenv("TINYRES_COURSE_KEY")                # Gradescope's image holds no key
    hanging = "while True:\n    pass"
    submissions = {"correct": copies["A2-solution"],
                   "buggy": _filled(copies, tmp_path / "buggy", col2im=_solution_body(
                       "col2im").replace("cols[:, :, :, :, kh, kw]", "cols[:, :, :, :, kw, kh]")),
                   "empty": copies["A2"],
                   "hanging": _filled(copies, tmp_path / "hanging", im2col=hanging)}
    for name, copy in submissions.items():
        root = _gradescope_root(tmp_path, package, name)
        shutil.copytree(copy, root / "submission" / "a2")    # a zip with one top-level folder
        start = time.perf_counter()
        results = _run_autograder(root)
        assert time.perf_counter() - start < settings.total
        expected = grader.grade(copy, "A2", timeout=timeout, settings=settings)
        assert results["score"] == expected.score, (name, results)
        assert results["extra_data"]["hidden_seed"] == 5
        if name == "correct":
            assert results["score"] == results["max_score"] == 50
        if name == "hanging":
            assert any(f"did not finish within {timeout:g} s" in t["output"]
                       for t in results["tests"])
    root = _gradescope_root(tmp_path, package, "alone")      # the student's files alone
    shutil.copy(copies["A2-solution"] / "tinyres" / "functional" / "conv.py",
                root / "submission" / "conv.py")
    results = _run_autograder(root)
    assert 0 < results["score"] < 50 and "laid onto a fresh A2 copy" in results["output"]
    root = _gradescope_root(tmp_path, package, "malformed")
    (root / "submission" / "a2.zip").write_text("PK not really a zip")
    results = _run_autograder(root)
    assert results["score"] == 0 and "not a zip that can be read" in results["output"]
    root = _gradescope_root(tmp_path, package, "crash")     # the grader itself cannot start
    shutil.copytree(copies["A2-solution"], root / "submission" / "a2")
    results = _run_autograder(root, python="/bin/false")
    assert results["score"] == 0 and "the autograder itself failed" in results["output"]
    assert "install" in (root / "source" / "setup.sh").read_text()
    assert "pip install" not in (root / "source" / "run_autograder").read_text()


@pytest.mark.slow
def test_the_packages_own_setup_installs_a_grader_that_grades(copies, tmp_path, monkeypatch):
    """setup.sh as Gradescope runs it (from source/, once), then run_autograder with the venv it
    made: the course's tinyres is installed, not read from the source folder beside it."""
    package = tmp_path / "autograder.zip"
    assert main(["assignment", "gradescope", "A1", "--out", str(package)]) == 0
    monkeypatch.delenv("TINYRES_COURSE_KEY")                # Gradescope's image holds no key
    root = _gradescope_root(tmp_path, package, "image")
    env = {"PATH": os.environ["PATH"], "HOME": str(root), "TINYRES_AUTOGRADER_ROOT": str(root)}
    setup = subprocess.run(["bash", str(root / "source" / "setup.sh")], env=env,
                           capture_output=True, text=True, timeout=900)
    if setup.returncode != 0 and re.search(r"No matching distribution|Could not fetch|"
                                           r"connection", setup.stdout + setup.stderr, re.I):
        pytest.skip(f"no package index to install numpy from: {setup.stderr[-300:]}")
    assert setup.returncode == 0, (setup.stdout + setup.stderr)[-2000:]
    shutil.copytree(copies["A1-solution"], root / "submission" / "a1")
    results = _run_autograder(root, python=root / "tinyres-venv" / "bin" / "python")
    assert results["score"] == results["max_score"] == 30, results


# -- slow tier: the notebooks --------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("assignment", ORDER)
def test_the_notebook_runs_clean_on_a_solution_copy_and_stops_at_the_first_hole(
        copies, assignment, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    handout = Path(ASSIGNMENTS[assignment].handout).with_suffix(".ipynb")
    for name in (f"{assignment}-solution", assignment):
        copy = copies[name]
        monkeypatch.setenv("PYTHONPATH", str(_installed_layout(copy, tmp_path / name)))
        monkeypatch.setenv("TINYRES_KERNELS", "reference")
        book = nbformat.read(copy / handout, as_version=4)
        client = nbclient.NotebookClient(book, timeout=600, kernel_name="python3",
                                         resources={"metadata": {"path": str(copy)}})
        if name == assignment:
            with pytest.raises(nbclient.exceptions.CellExecutionError) as stopped:
                client.execute()
            first = tasks_of(assignment)[0].function
            plain = re.sub(r"\x1b\[[0-9;]*m", "", str(stopped.value))      # no colours
            assert f"NotImplementedError: {assignment}: implement {first} " in plain
        else:
            client.execute()
            text = "\n".join(o.get("text", "") for c in book.cells for o in c.get("outputs", []))
            assert "WRONG" not in text and f"{assignment} solution copy" in text
            assert str(tmp_path / name / "package") in text      # it ran the copy, nothing else
