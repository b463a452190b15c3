"""The options of `tinyres assignment` and `tinyres gradcheck` (the course room's commands), so
that the CLI can list them without importing the course's tools (it imports them only when the
command runs; a student copy leaves the grader's side out)."""
import argparse
from pathlib import Path

from tinyres import backend
from tinyres.options import natural_int, number_in


def output_file_problem(path):
    """Why `path` cannot be written as a results file (None when it can): checked before any
    grading, so a batch never ends in an error after its work is done."""
    path = Path(path)
    if path.is_dir():
        return f"{path} is a folder; give the name of a file (in it, or anywhere)"
    if not path.parent.is_dir():
        return f"{path}: the folder {path.parent} does not exist"
    return None


def output_file(text):
    """argparse type: a file to write (not a folder; its folder exists)."""
    problem = output_file_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def add_assignment_arguments(course):
    """`tinyres assignment make / grade / gradescope / list`."""
    settings_help = ("the course's settings (TOML, or JSON): points, time limits, visibility, "
                     "release order; see docs/assignments/README.md")
    course_actions = course.add_subparsers(dest="action", required=True)
    make = course_actions.add_parser("make", help="write a student copy of an assignment")
    make.add_argument("assignment", choices=["A1", "A2", "A3", "A4"])
    make.add_argument("--out", required=True, help="folder for the copy (new or empty)")
    make.add_argument("--solution", action="store_true",
                      help="keep the reference solutions (a copy for course staff)")
    make.add_argument("--force", action="store_true",
                      help="replace a copy `assignment make` wrote earlier (nothing else)")
    make.add_argument("--settings", metavar="FILE", help=settings_help)
    grade = course_actions.add_parser(
        "grade", help="grade student copies (the student's code runs in a subprocess); exit 0 "
                      "whenever grading ran")
    grade.add_argument("directories", nargs="+", metavar="DIR",
                       help="a copy `assignment make` wrote; several: one line each and a CSV")
    grade.add_argument("--assignment", choices=["A1", "A2", "A3", "A4"],
                       help="which assignment (default: the copy's signed manifest)")
    grade.add_argument("--json", metavar="PATH", type=output_file,
                       help="write Gradescope's results.json (one submission)")
    grade.add_argument("--csv", metavar="PATH", type=output_file,
                       help="write the scores as CSV (default grades.csv for several DIRs)")
    grade.add_argument("--timeout", type=number_in(0, low_open=True), default=None,
                       help="seconds per function (default: the settings' per_function, 300)")
    grade.add_argument("--hidden-seed", type=int, metavar="N",
                       help="the hidden cases' seed (default: drawn, and recorded in the "
                            "report, the results and the CSV; give it to regrade)")
    grade.add_argument("--settings", metavar="FILE", help=settings_help)
    package = course_actions.add_parser(
        "gradescope", help="write the Gradescope autograder zip of an assignment")
    package.add_argument("assignment", choices=["A1", "A2", "A3", "A4"])
    package.add_argument("--out", required=True, metavar="ZIP",
                         help="the zip to write (e.g. autograder.zip)")
    package.add_argument("--settings", metavar="FILE", help=settings_help)
    course_actions.add_parser("list", help="the assignments, their functions and files")


def add_gradcheck_arguments(check):
    """`tinyres gradcheck`."""
    check.add_argument("--only", help="run only ops whose name contains this text")
    check.add_argument("--backend", choices=backend.BACKENDS)
    check.add_argument("--seed", type=natural_int, default=0)
