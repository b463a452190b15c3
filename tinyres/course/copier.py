"""`tinyres assignment make`: a student copy of tinyres, a whole engine with holes.

    tinyres assignment make A2 --out DIR [--solution] [--force]

The copy holds tinyres/, kernels/, docs/, examples/, pyproject.toml and the assignment's tests
(with tests/conftest.py and the helpers it imports), so `pip install -e .` inside it makes `import
tinyres`, the `tinyres` command, the examples and the tests run the student's code. In it:

- every region of the assignment (tinyres/course/holes.py) is a NotImplementedError naming the
  task, in the source; in the docs, a worked code block of a hole becomes a pointer to the
  handout (the math stays);
- a kernel package (kernels/cpu, kernels/gpu) that holds a fast twin of a hole is replaced by
  one that raises ImportError, so tinyres.dispatch runs the readable code (the student's);
- readable files that compute a hole another way (functional/winograd.py, a 3x3 convolution,
  in an A2 copy) and the grader's side of tinyres/course (references, cases, grader, this
  copier) are left out;
- tinyres/student_copy.py says which copy it is; `import tinyres` announces it once per process
  ("A2 copy: im2col, ... are yours; fast kernels off for them"), `tinyres info` shows it;
- .tinyres-assignment, the manifest, names the assignment and what `make` wrote, signed with the
  course key (an HMAC; tinyres/course/signing.py), so the grader notices an edited manifest and
  `make --force` replaces only a folder `make` created.

`make` then greps the copy for every hole's solution lines and refuses to leave a copy that
still holds one.
"""
import ast
import datetime
import fnmatch
import shutil
from pathlib import Path

from tinyres.course import signing
from tinyres.course.assignments import TASKS, check_assignment_id, tasks_of
from tinyres.course.holes import find_regions, strip_solutions

MANIFEST = ".tinyres-assignment"
FOLDERS = ("tinyres", "kernels", "docs", "examples")
FILES = ("pyproject.toml", "README.md", ".gitignore")
SHARED_TESTS = ("tests/conftest.py", "tests/helpers.py", "tests/cifar_folder.py")
GRADER_SIDE = ("copier.py", "grader.py", "runner.py", "references.py", "cases.py", "feedback.py")
# what installing and testing a copy writes into it (--force may delete these too)
REGENERATED = ("*.egg-info", "build", ".pytest_cache", ".hypothesis", ".benchmarks", "__pycache__")
_IGNORED = ("__pycache__", "*.pyc", "*.nbi", "*.nbc", "out", "runs", "*.egg-info")


def repository_root():
    """The source checkout this tinyres runs from (where pyproject.toml and kernels/ are)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / "kernels").is_dir():
        raise RuntimeError(f"tinyres assignment make needs a source checkout of tinyres (with "
                           f"pyproject.toml and kernels/); this tinyres runs from {root}")
    return root


def _marked_files(root):
    """The files that may hold regions: Python source, examples, Markdown docs (not this
    package, whose docstrings describe the markers)."""
    course = root / "tinyres" / "course"
    return [path for folder, pattern in (("tinyres", "*.py"), ("docs", "*.md"),
                                         ("examples", "*.py"))
            for path in sorted((root / folder).rglob(pattern)) if course not in path.parents]


def all_regions(root):
    """Every region in the repository's Python source and Markdown docs, in file order."""
    return [region for path in _marked_files(root)
            for region in find_regions(path.read_text(), path)]


def _prepare_out(out, root, force):
    """Check that `out` may be written (new, empty, or a copy `make` wrote and --force)."""
    resolved = out.resolve()
    if resolved == root or root in resolved.parents or resolved in root.parents:
        raise ValueError(f"--out {out} overlaps the repository {root}; choose a folder outside it")
    if not out.exists() or not any(out.iterdir()):
        return
    if not force:
        raise FileExistsError(f"{out} exists and is not empty; choose another folder, or pass "
                              f"--force to replace a copy that `tinyres assignment make` wrote")
    manifest = signing.read_manifest(out / MANIFEST)
    present = sorted(p.name for p in out.iterdir())
    if manifest is None:
        raise FileExistsError(f"--force refused: {out} was not written by `tinyres assignment "
                              f"make` (no valid {MANIFEST}); it holds {', '.join(present[:8])}"
                              f"{' ...' if len(present) > 8 else ''}. Nothing was deleted.")
    foreign = sorted(name for name in set(present) - set(manifest.get("entries", [])) - {MANIFEST}
                     if not any(fnmatch.fnmatch(name, pattern) for pattern in REGENERATED))
    if foreign:
        raise FileExistsError(f"--force refused: {out} holds {', '.join(foreign)}, which "
                              f"`tinyres assignment make` did not write. Move them out first. "
                              f"Nothing was deleted.")
    for name in present:
        path = out / name
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def make(assignment_id, out, solution=False, force=False, log=print):
    """Write the copy of `assignment_id` to `out`; returns the tasks cut out (none when
    solution=True: a copy for course staff, markers removed, solutions kept)."""
    assignment = check_assignment_id(assignment_id)
    root, out = repository_root(), Path(out).expanduser()
    _prepare_out(out, root, force)
    missing = {t.id for t in tasks_of(assignment_id)} - {r.task for r in all_regions(root)
                                                         if r.file.suffix == ".py"}
    if missing:
        raise RuntimeError(f"{assignment_id}: no solution region in the source for task(s) "
                           f"{', '.join(sorted(missing))}; its markers were lost")

    out.mkdir(parents=True, exist_ok=True)
    try:
        cut = _write_copy(root, out, assignment, solution)
    except BaseException:
        shutil.rmtree(out)                   # empty or absent before: nothing else is lost
        raise

    log(f"{assignment_id} ({assignment.title}): {'solution' if solution else 'student'} copy "
        f"written to {out}")
    for task in tasks_of(assignment_id):
        log(f"   {'yours' if not solution else 'solved'}: {task.function:<28} {task.file}")
    log(f"   handout: {out / assignment.handout}")
    log(f"   install: cd {out} && python -m pip install -e .    (then: python -m pytest tests)")
    return cut


def _write_copy(root, out, assignment, solution):
    assignment_id = assignment.id
    for folder in FOLDERS:
        shutil.copytree(root / folder, out / folder, ignore=shutil.ignore_patterns(*_IGNORED))
    for name in FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, out / name)
    (out / "tests").mkdir()
    for test in SHARED_TESTS + assignment.tests:
        shutil.copy2(root / test, out / test)
    for name in GRADER_SIDE:
        (out / "tinyres" / "course" / name).unlink(missing_ok=True)
    if not solution:
        for route in {r for t in tasks_of(assignment_id) for r in t.other_routes}:
            (out / route).unlink(missing_ok=True)

    cut = [] if solution else [t.id for t in tasks_of(assignment_id)]
    for path in _marked_files(out):
        text = path.read_text()
        if "SOLUTION" in text and find_regions(text, path):
            path.write_text(strip_solutions(text, None if solution else assignment_id, path))
    kernels_off = [] if solution else _drop_kernel_packages(out, assignment_id)
    _write_student_copy_module(out, assignment, solution, kernels_off)

    leaks = [] if solution else find_leaks(out, assignment_id, root)
    if leaks:
        raise RuntimeError(f"{assignment_id}: the copy in {out} still holds solution code:\n"
                           + "\n".join(leaks) + "\nMark it with BEGIN/END SOLUTION in the source")
    signing.write_manifest(out / MANIFEST, {
        "assignment": assignment_id, "solution": solution,
        "made": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "entries": sorted(p.name for p in out.iterdir())})
    return cut


def _defined_names(path):
    """Top-level functions, classes and assigned names of a Python file."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _drop_kernel_packages(out, assignment_id):
    """Replace each kernel package holding a fast twin of a hole by one that raises ImportError
    (tinyres.dispatch then runs the readable code); returns the packages replaced."""
    twins = {name for t in tasks_of(assignment_id) for name in t.twins}
    dropped = []
    for package in sorted(p for p in (out / "kernels").iterdir() if (p / "__init__.py").is_file()):
        if not any(twins & _defined_names(f) for f in package.rglob("*.py")):
            continue
        shutil.rmtree(package)
        package.mkdir()
        (package / "__init__.py").write_text(
            f'"""Not in this copy: the fast kernels here computed {assignment_id}\'s functions '
            f'(written by\n`tinyres assignment make`). tinyres.dispatch falls back to the '
            f'readable code: yours."""\n'
            f'raise ImportError("tinyres.kernels.{package.name} is not part of an '
            f'{assignment_id} student copy")\n')
        dropped.append(f"kernels/{package.name}")
    return dropped


def _write_student_copy_module(out, assignment, solution, kernels_off):
    functions = [t.function for t in tasks_of(assignment.id)]
    (out / "tinyres" / "student_copy.py").write_text(f'''\
"""This tinyres is {"a solution" if solution else "a student"} copy of {assignment.id} \
({assignment.title}),
written by `tinyres assignment make`. Yours to write: {", ".join(functions)};
the handout is {assignment.handout}. Fast kernels left out: {", ".join(kernels_off) or "none"}.
"""
import sys

ASSIGNMENT = {assignment.id!r}
TITLE = {assignment.title!r}
HANDOUT = {assignment.handout!r}
FUNCTIONS = {tuple(functions)!r}
KERNELS_OFF = {tuple(kernels_off)!r}
SOLUTION = {solution!r}
_announced = False


def describe():
    """One line: which copy this is and what is the student's."""
    kind = "solution copy" if SOLUTION else "copy"
    kernels = "; fast kernels off for them" if KERNELS_OFF else ""
    return f"{{ASSIGNMENT}} {{kind}}: {{', '.join(FUNCTIONS)}} are yours{{kernels}}"


def announce():
    """Say once per process, on stderr, that this tinyres is a copy."""
    global _announced
    if not _announced:
        _announced = True
        print(f"tinyres: {{describe()}} (handout: {{HANDOUT}})", file=sys.stderr)
''')
    init = out / "tinyres" / "__init__.py"
    init.write_text(init.read_text() + "\n# Written by `tinyres assignment make`: this tinyres is"
                    " a course copy.\nfrom tinyres import student_copy  # noqa: E402\n"
                    "student_copy.announce()\n")


def _normalised(line):
    code = line.split("  #")[0].strip()
    return "" if code.startswith("#") else " ".join(code.split())


def find_leaks(copy, assignment_id, root):
    """Files of `copy` holding half or more of the distinctive lines of any solution region of
    the assignment, in the source or the docs, as 'file: function (k of n lines)' strings.
    Distinctive: 16+ characters, and not in the copy of the task's own file (a docs block may
    show the lines around a hole, such as the class and forward of Mul)."""
    regions = []                                     # (task, its distinctive lines), per region
    for region in all_regions(root):
        if TASKS[region.task].assignment == assignment_id:
            body = region.file.read_text().split("\n")[region.begin:region.end - 1]
            lines = {_normalised(line) for line in body} - {""}
            task = TASKS[region.task]
            own_file = (Path(copy) / task.file).read_text().split("\n")
            public = {_normalised(line) for line in own_file}
            regions.append((task, {line for line in lines - public if len(line) >= 16}))
    leaks = []
    for path in sorted(p for p in Path(copy).rglob("*") if p.suffix in (".py", ".md")):
        text = {_normalised(line) for line in path.read_text().split("\n")}
        for task, lines in regions:
            found = lines & text
            if found and len(found) >= min(len(lines), max(2, (len(lines) + 1) // 2)):
                leaks.append(f"{path.relative_to(copy)}: {task.function} ({len(found)} of "
                             f"{len(lines)} lines)")
    return sorted(set(leaks))
