"""Course assignments: the solution markers, `tinyres assignment make`, and the autograder.

Grading the repository itself (the reference solutions) must score full marks; grading a fresh
student copy must score zero on exactly the removed functions, naming each; a wrong
implementation must fail with its error. Grading runs a subprocess per call, so the calls are
shared between tests (module-scoped fixtures).
"""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tinyres import assignment
from tinyres.assignment import ASSIGNMENTS, TASKS, strip_solutions, tasks_of
from tinyres.cli import main

REPO = Path(__file__).resolve().parents[1]


def quiet(*args, **kwargs):
    pass


@pytest.fixture(scope="module")
def solution_grades():
    """The repository's own code, graded on every assignment (one subprocess)."""
    return assignment.grade(REPO, timeout=300, log=quiet)


@pytest.fixture(scope="module")
def student_copies(tmp_path_factory):
    """A fresh student copy of each assignment."""
    root = tmp_path_factory.mktemp("assignments")
    return {a: (root / a, assignment.make(a, root / a, log=quiet)) for a in ASSIGNMENTS}


# -- the markers in the source -------------------------------------------------------------------
def test_every_task_has_exactly_one_region_in_the_source():
    regions = assignment.all_regions(REPO)
    found = [r.task for r in regions]
    assert sorted(found) == sorted(TASKS), "solution markers were lost or duplicated"
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
    kept = strip_solutions(source, "A2", "ops.py")                        # another assignment:
    assert "unbroadcast(gy * self.b, self.a.shape)" in kept and "SOLUTION" not in kept


@pytest.mark.parametrize("text, error", [
    ("# BEGIN SOLUTION A1 mul_backward\nx = 1\n", "never closed"),
    ("x = 1\n# END SOLUTION\n", "without"),
    ("# BEGIN SOLUTION A1 mul_backward\n# BEGIN SOLUTION A1 sum_backward\n", "inside"),
    ("# BEGIN SOLUTION A2 mul_backward\nx = 1\n# END SOLUTION\n", "known task"),
    ("# BEGIN SOLUTION\nx = 1\n# END SOLUTION\n", "known task"),
])
def test_broken_markers_are_reported_with_file_and_line(text, error):
    with pytest.raises(ValueError, match=error) as caught:
        assignment.find_regions(text, "some/file.py")
    assert "some/file.py:" in str(caught.value)


# -- make -------------------------------------------------------------------------------------
def test_student_copy_removes_exactly_the_assignments_functions(student_copies):
    for assignment_id, (folder, removed) in student_copies.items():
        assert sorted(removed) == sorted(t.id for t in tasks_of(assignment_id))
        for path in (folder / "tinyres").rglob("*.py"):
            text = path.read_text()
            ast.parse(text, str(path))                   # every file is still valid Python
            if path.name != "assignment.py":
                assert "BEGIN SOLUTION" not in text, path
        for test in ["tests/conftest.py"] + ASSIGNMENTS[assignment_id].tests:
            assert (folder / test).is_file()
        assert (folder / ASSIGNMENTS[assignment_id].handout).is_file()
        assert (folder / "pyproject.toml").is_file() and (folder / "kernels").is_dir()
        marker = json.loads((folder / ".tinyres-assignment").read_text())
        assert marker["assignment"] == assignment_id


def test_student_copy_imports_and_its_untouched_parts_work(student_copies):
    folder = student_copies["A2"][0]
    script = (
        "import numpy, tinyres, tinyres.functional as F\n"
        "assert tinyres.__file__.startswith(%r)\n"
        "x = tinyres.tensor(numpy.random.default_rng(0).standard_normal((2, 3, 4, 4)))\n"
        "y = F.max_pool2d(F.relu(F.batch_norm(x, None, None, None, None, True)), 2)\n"
        "print('untouched ok', y.shape)\n"
        "try:\n"
        "    F.conv2d(x, tinyres.tensor(numpy.ones((2, 3, 3, 3))))\n"
        "except NotImplementedError as err:\n"
        "    print('removed:', err)\n" % str(folder))
    done = subprocess.run([sys.executable, "-c", script], cwd=folder, capture_output=True,
                          text=True, timeout=120,
                          env={"PYTHONPATH": str(folder), "TINYRES_KERNELS": "reference",
                               "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert "untouched ok (2, 3, 2, 2)" in done.stdout
    assert "removed: A2: implement conv2d_forward (see docs/assignments/" in done.stdout


def test_make_refuses_a_non_empty_folder_and_unknown_assignments(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        assignment.make("A1", tmp_path / "x", log=quiet)
    with pytest.raises(ValueError, match="unknown assignment 'A9'"):
        assignment.make("A9", tmp_path / "y", log=quiet)
    assert main(["assignment", "make", "A1", "--out", str(tmp_path / "x")]) == 2


# -- grade ------------------------------------------------------------------------------------
def test_the_reference_solutions_score_full_marks(solution_grades):
    assert set(solution_grades) == set(TASKS)
    for task_id, result in solution_grades.items():
        assert result["passed"], f"{task_id}: {result['message']}"
        assert result["cases"] >= 1 and result["failed"] == 0
        assert result["max_rel_error"] < 1e-5


def test_a_fresh_student_copy_scores_zero_and_names_what_to_implement(student_copies, capsys):
    for assignment_id, (folder, _) in student_copies.items():
        if assignment_id == "A2":
            continue                                     # graded through the CLI below
        results = assignment.grade(folder, timeout=300)
        out = capsys.readouterr().out
        assert f"score {assignment_id}: 0/{len(tasks_of(assignment_id))} functions pass" in out
        for t in tasks_of(assignment_id):
            assert not results[t.id]["passed"]
            assert f"{assignment_id}: implement {t.function} " in results[t.id]["message"]
            assert t.function in out


def test_grade_command_exit_status_and_table(student_copies, capsys):
    folder = student_copies["A2"][0]
    assert main(["assignment", "grade", str(folder)]) == 1
    out = capsys.readouterr().out
    for name in ("im2col", "col2im", "conv2d_forward", "conv2d_backward"):
        assert any(line.startswith(name) and "FAIL  NotImplementedError: A2: implement" in line
                   for line in out.splitlines()), name
    assert "score A2: 0/4 functions pass" in out


def test_a_wrong_implementation_fails_with_its_error(student_copies):
    """The solution's conv.py, but with a col2im that overwrites where patches overlap instead
    of adding (a classic bug): col2im and the backward built on it fail, with their errors;
    im2col and the forward pass: each function is scored on its own."""
    folder = student_copies["A2"][0]
    solution = strip_solutions((REPO / "tinyres" / "functional" / "conv.py").read_text(), None)
    (folder / "tinyres" / "functional" / "conv.py").write_text(solution + """

@fast_twin("col2im")
def col2im(cols, x_shape, kernel_size, stride=1, padding=0):
    (N, C, H, W), (KH, KW), (SH, SW), (PH, PW), (OH, OW) = _geometry(
        "col2im", x_shape, kernel_size, stride, padding)
    cols = cols.reshape(N, OH, OW, C, KH, KW)
    x = get_array_module(cols).zeros((N, C, H + 2 * PH, W + 2 * PW), dtype=cols.dtype)
    for kh in range(KH):
        for kw in range(KW):
            x[:, :, kh:kh + SH * OH:SH, kw:kw + SW * OW:SW] = cols[:, :, :, :, kh, kw].transpose(
                0, 3, 1, 2)                                          # BUG: = instead of +=
    return x[:, :, PH:PH + H, PW:PW + W]
""")
    results = assignment.grade(folder, timeout=300, log=quiet)
    assert results["im2col"]["passed"] and results["conv2d_forward"]["passed"]
    for task_id in ("col2im", "conv2d_backward"):
        assert not results[task_id]["passed"]
        assert "relative error" in results[task_id]["message"]
        assert results[task_id]["max_rel_error"] > 1e-2
