"""The options of `tinyres assignment` and `tinyres gradcheck` (the course room's commands), so
that the CLI can list them without importing the course's tools (it imports them only when the
command runs; a student copy leaves the grader's side out)."""
from tinyres import backend


def add_assignment_arguments(course):
    """`tinyres assignment make / grade / list`."""
    course_actions = course.add_subparsers(dest="action", required=True)
    make = course_actions.add_parser("make", help="write a student copy of an assignment")
    make.add_argument("assignment", choices=["A1", "A2", "A3", "A4"])
    make.add_argument("--out", required=True, help="folder for the copy (new or empty)")
    make.add_argument("--solution", action="store_true",
                      help="keep the reference solutions (a copy for course staff)")
    make.add_argument("--force", action="store_true",
                      help="replace a copy `assignment make` wrote earlier (nothing else)")
    grade = course_actions.add_parser(
        "grade", help="grade student copies (the student's code runs in a subprocess); exit 0 "
                      "whenever grading ran")
    grade.add_argument("directories", nargs="+", metavar="DIR",
                       help="a copy `assignment make` wrote; several: one line each and a CSV")
    grade.add_argument("--assignment", choices=["A1", "A2", "A3", "A4"],
                       help="which assignment (default: the copy's signed manifest)")
    grade.add_argument("--json", metavar="PATH",
                       help="write Gradescope's results.json (one submission)")
    grade.add_argument("--csv", metavar="PATH",
                       help="write the scores as CSV (default grades.csv for several DIRs)")
    grade.add_argument("--timeout", type=float, default=300,
                       help="seconds per function (default 300)")
    course_actions.add_parser("list", help="the assignments, their functions and files")


def add_gradcheck_arguments(check):
    """`tinyres gradcheck`."""
    check.add_argument("--only", help="run only ops whose name contains this text")
    check.add_argument("--backend", choices=backend.BACKENDS)
    check.add_argument("--seed", type=int, default=0)
