"""The course room's commands: `tinyres assignment make / grade / gradescope / list` (course
copies, their autograder and its Gradescope package) and `tinyres gradcheck` (every registered
op against finite differences)."""
import json
import os
import sys
import time
from pathlib import Path

import numpy


def run_gradcheck(args):
    """tinyres gradcheck: the registered cases of every op family, as a table."""
    import tinyres
    from tinyres.course.checks import REGISTRY  # (registers every op family's cases)
    from tinyres.gradcheck import GradcheckError, gradcheck

    if args.backend:
        tinyres.set_backend(args.backend)
    names = [n for n in REGISTRY if not args.only or args.only.lower() in n.lower()]
    if not names:
        print(f"no registered op matches {args.only!r}; ops: {', '.join(REGISTRY)}")
        return 2
    rng = numpy.random.default_rng(args.seed)
    print(f"gradient check in float64 against central differences (backend "
          f"{tinyres.get_backend()})")
    header = f"{'op':<36} {'case':<48} {'max rel err':>11}  result"
    print(header)
    print("-" * len(header))
    failures = 0
    start = time.perf_counter()
    for name in names:
        for description, fn, inputs in REGISTRY[name](rng):
            try:
                report = gradcheck(fn, inputs)
                error, result = f"{report.max_rel_error:.2e}", "pass"
                if report.sampled:
                    result += f" ({report.checked}/{report.total} elements)"
            except GradcheckError as err:
                failures += 1
                error, result = "-", f"FAIL: {err}"
            except NotImplementedError as err:        # a hole of a course copy, still open
                failures += 1
                error, result = "-", f"FAIL: NotImplementedError: {err}"
            print(f"{name:<36} {description:<48} {error:>11}  {result}")
    print("-" * len(header))
    print(f"{'all passed' if not failures else f'{failures} FAILED'} "
          f"in {time.perf_counter() - start:.1f} s")
    return 1 if failures else 0


def run_assignment(args):
    """tinyres assignment make / grade / list: course copies of tinyres and their autograder."""
    if args.action == "list":
        print(format_assignments())
        return 0
    try:
        from tinyres.course import copier, grader, gradescope
        from tinyres.course.settings import load
    except ImportError:                     # a student copy leaves the course tools out
        print("tinyres assignment: this tinyres is a student copy; making copies and grading "
              "are course staff's tools (in the course's own tinyres)", file=sys.stderr)
        return 2
    try:
        settings = load(args.settings)
        if args.action == "make":
            copier.make(args.assignment, args.out, solution=args.solution, force=args.force,
                        order=settings.release_order)
        elif args.action == "gradescope":
            gradescope.package(args.assignment, args.out, settings)
        else:
            return _grade(args, grader, settings)
        return 0
    except (ValueError, FileExistsError, FileNotFoundError, RuntimeError) as err:
        print(f"tinyres assignment {args.action}: {err}", file=sys.stderr)
        return 2


def _grade(args, grader, settings):
    """One folder: its table (and --json); several: one line each and a CSV, a row (and the
    student's feedback file beside it) written as each student is graded. Exit 0 whenever
    grading ran, whatever the scores."""
    from tinyres.course.assignments import ASSIGNMENTS
    from tinyres.course.options import output_file_problem
    missing = [d for d in args.directories if not Path(d).is_dir()]
    if missing:
        raise FileNotFoundError(f"no such folder: {', '.join(missing)}")
    if args.hidden_seed is not None and not 0 <= args.hidden_seed < 2 ** 32:
        raise ValueError(f"--hidden-seed {args.hidden_seed}: expected an integer in [0, 2**32) "
                         f"(the seed a report or results.json recorded)")
    if args.json and len(args.directories) > 1:
        raise ValueError("--json writes one submission's results (Gradescope grades one "
                         "submission at a time); for a folder of submissions use --csv")
    csv_path = args.csv or ("grades.csv" if len(args.directories) > 1 else None)
    if csv_path and output_file_problem(csv_path):          # the default grades.csv
        raise ValueError(f"--csv {output_file_problem(csv_path)}")
    sheet = csv_path and grader.GradeSheet(csv_path, [args.assignment] if args.assignment
                                           else list(ASSIGNMENTS))
    try:
        for directory in args.directories:
            report = grader.grade(directory, args.assignment, timeout=args.timeout,
                                  hidden_seed=args.hidden_seed, settings=settings)
            print(grader.format_report(report) if len(args.directories) == 1
                  else grader.summary_line(report), flush=True)
            if sheet:
                sheet.add(report)
    finally:
        if sheet:
            sheet.close()
    if args.json:                  # the last act, once every process of the student is dead
        part = Path(f"{args.json}.part")
        part.write_text(json.dumps(grader.gradescope_results(report, settings), indent=2))
        os.replace(part, args.json)
        print(f"Gradescope results written to {args.json}")
    if sheet:
        print(f"{len(args.directories)} submissions; scores written to {csv_path}, each "
              f"student's feedback to {grader.feedback_path(csv_path, report).parent}/")
    return 0


def format_assignments():
    """Every assignment with its functions, files and written parts (`assignment list`)."""
    from tinyres.course.assignments import ASSIGNMENTS, tasks_of
    lines = []
    for a in ASSIGNMENTS.values():
        lines.append(f"{a.id}  {a.title}   (handout: {a.handout})")
        lines += [f"      {t.function:<28} {t.file:<40} {t.points:>3} points"
                  for t in tasks_of(a.id)]
        lines += [f"      written: {w.name}   ({w.points} points, manually graded)"
                  for w in a.written]
    return "\n".join(lines)
