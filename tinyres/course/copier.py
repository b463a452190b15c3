"""`tinyres assignment make`: a student copy of tinyres, a whole engine with holes.

    tinyres assignment make A2 --out DIR [--solution] [--force] [--settings course.toml]

The copy holds tinyres/, kernels/, docs/, examples/, pyproject.toml and the assignment's tests
(with tests/conftest.py and the helpers it imports), so `pip install -e .` inside it makes `import
tinyres`, the `tinyres` command, the examples and the tests run the student's code. In it:

- every region of the assignment (tinyres/course/holes.py) is a NotImplementedError naming the
  task, in the source; in the docs, a worked code block of a hole becomes a pointer to the
  handout (the math stays);
- release order: so are the regions of every assignment released after it (the settings'
  release_order, A1 A2 A3 A4 by default), each a NotImplementedError saying which assignment
  fills it; the examples that need a later assignment are left out (assignments.py names them);
  the copy holds the finished code of the assignments before it. A solution copy keeps the
  assignment's own solutions and still leaves the later ones out: it is a perfect hand-in;
- a kernel package (kernels/cpu, kernels/gpu) that holds a fast twin of a hole is replaced by
  one that raises ImportError, so tinyres.dispatch runs the readable code (the student's);
- readable files that compute a hole another way (functional/winograd.py, a 3x3 convolution,
  in an A2 copy) and the grader's side of tinyres/course (references, cases, grader, this
  copier) are left out;
- tinyres/student_copy.py says which copy it is; `import tinyres` announces it once per process
  ("A2 copy: im2col, ... are yours; fast kernels off for them"), `tinyres info` shows it;
- .tinyres-assignment, the manifest, names the assignment, the folder it was written to, and
  every file `make` wrote with its SHA-256, signed with the course key (an HMAC;
  tinyres/course/signing.py), so the grader notices an edited manifest, and `make --force`
  replaces a copy only when it is the folder the manifest names and holds nothing but those
  files, unchanged (and what installing and testing leave: REGENERATED). It deletes those files
  and nothing else.

`make` then greps the copy for the solution lines of every hole it cut (the assignment's and
every later one's) and refuses to leave a copy that still holds one.
"""
import ast
import datetime
import fnmatch
import hashlib
import os
import shutil
from pathlib import Path

from tinyres.course import signing
from tinyres.course.assignments import (
    ASSIGNMENTS,
    RELEASE_ORDER,
    TASKS,
    check_assignment_id,
    released_after,
    tasks_of,
)
from tinyres.course.holes import find_regions, strip_solutions

MANIFEST = ".tinyres-assignment"
FOLDERS = ("tinyres", "kernels", "docs", "examples")
FILES = ("pyproject.toml", "README.md", ".gitignore")
SHARED_TESTS = ("tests/conftest.py", "tests/helpers.py", "tests/cifar_folder.py")
GRADER_SIDE = ("copier.py", "grader.py", "runner.py", "sandbox.py", "references.py", "cases.py",
               "feedback.py", "gradescope.py", "settings.py")
# what installing (`pip install -e .`) and testing a copy write into it, at any depth: caches
# that are made again; --force deletes these too. Anything else it did not write stops it.
REGENERATED = ("*.egg-info", ".pytest_cache", ".hypothesis", "__pycache__", ".ipynb_checkpoints")
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


def file_digests(folder):
    """{relative path: SHA-256} of every file under `folder` but the manifest (POSIX paths)."""
    folder = Path(folder)
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file() and not path.is_symlink()
            and path.name != MANIFEST}


def _regenerated(relative):
    return any(fnmatch.fnmatch(part, pattern) for part in Path(relative).parts
               for pattern in REGENERATED)


def _listed(names, limit=8):
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit
                                       else "")


def _prepare_out(out, root, force):
    """Check that `out` may be written: new, empty, or (with --force) a copy `make` wrote there
    that holds nothing else. Returns what --force is to delete (nothing is deleted here)."""
    resolved = out.resolve()
    if resolved == root or root in resolved.parents or resolved in root.parents:
        raise ValueError(f"--out {out} overlaps the repository {root}; choose a folder outside it")
    if not out.exists() or not any(out.iterdir()):
        return []
    if not force:
        raise FileExistsError(f"{out} exists and is not empty; choose another folder, or pass "
                              f"--force to replace a copy that `tinyres assignment make` wrote")
    manifest = signing.read_manifest(out / MANIFEST)
    present = sorted(p.name for p in out.iterdir())
    if manifest is None or not isinstance(manifest.get("digests"), dict):
        raise FileExistsError(f"--force refused: {out} was not written by `tinyres assignment "
                              f"make` (no valid {MANIFEST}); it holds {_listed(present)}. "
                              f"Nothing was deleted.")
    if manifest.get("folder") != str(resolved):
        raise FileExistsError(f"--force refused: the manifest in {out} was written for the folder "
                              f"{manifest.get('folder')}, not this one (a moved or copied "
                              f"manifest). Nothing was deleted.")
    written = manifest["digests"]
    links = [p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_symlink()]
    if links:
        raise FileExistsError(f"--force refused: {out} holds links `make` did not write: "
                              f"{_listed(sorted(links))}. Nothing was deleted.")
    found = {rel: digest for rel, digest in file_digests(out).items() if not _regenerated(rel)}
    added = sorted(set(found) - set(written))
    edited = sorted(rel for rel in set(found) & set(written) if found[rel] != written[rel])
    if added or edited:
        what = "; ".join(part for part in (
            added and f"files `tinyres assignment make` did not write: {_listed(added)}",
            edited and f"files changed since it wrote them: {_listed(edited)}") if part)
        raise FileExistsError(f"--force refused: {out} holds {what}. Move them out (or make the "
                              f"copy elsewhere). Nothing was deleted.")
    return sorted(set(found) | {p.relative_to(out).as_posix() for p in out.rglob("*")
                                if _regenerated(p.relative_to(out))})


def _delete(out, paths):
    """Delete `paths` (relative to `out`: the files a manifest lists, and regenerated caches)
    and the manifest, then every folder left empty; nothing else is touched."""
    for rel in sorted(paths, key=lambda r: -len(Path(r).parts)):
        path = out / rel
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    (out / MANIFEST).unlink(missing_ok=True)
    for folder, _, _ in sorted(os.walk(out), key=lambda entry: -len(Path(entry[0]).parts)):
        if Path(folder) != out and not any(Path(folder).iterdir()):
            Path(folder).rmdir()


def make(assignment_id, out, solution=False, force=False, log=print, order=RELEASE_ORDER):
    """Write the copy of `assignment_id` to `out`, the assignments after it in release `order`
    left out too; returns the tasks of the assignment cut out (none when solution=True: a copy
    for course staff, its own solutions kept, markers removed)."""
    assignment = check_assignment_id(assignment_id)
    later = released_after(assignment_id, tuple(order))
    root, out = repository_root(), Path(out).expanduser()
    replaced = _prepare_out(out, root, force)
    missing = {t.id for a in (assignment_id, *later) for t in tasks_of(a)} - {
        r.task for r in all_regions(root) if r.file.suffix == ".py"}
    if missing:
        raise RuntimeError(f"{assignment_id}: no solution region in the source for task(s) "
                           f"{', '.join(sorted(missing))}; its markers were lost")

    if replaced:
        _delete(out, replaced)               # every check passed: only what make wrote goes
    existed = out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        cut = _write_copy(root, out, assignment, solution, later)
    except BaseException:
        if existed:                          # empty before: empty it again, nothing else was
            for path in list(out.iterdir()):                                   # there
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        else:
            shutil.rmtree(out)
        raise

    log(f"{assignment_id} ({assignment.title}): {'solution' if solution else 'student'} copy "
        f"written to {out}")
    for task in tasks_of(assignment_id):
        log(f"   {'yours' if not solution else 'solved'}: {task.function:<28} {task.file}")
    if later:
        log(f"   left out, released later: {', '.join(later)} (their functions are holes that "
            f"say so; examples left out: "
            f"{', '.join(Path(e).name for a in later for e in ASSIGNMENTS[a].examples)})")
    log(f"   handout: {out / assignment.handout}")
    log(f'   install: cd {out} && python -m pip install -e ".[test]"    (then: python -m '
        f'pytest tests)')
    return cut


def _write_copy(root, out, assignment, solution, later):
    assignment_id = assignment.id
    holes = later if solution else (assignment_id, *later)      # the assignments cut out
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
    for route in {r for a in holes for t in tasks_of(a) for r in t.other_routes}:
        (out / route).unlink(missing_ok=True)
    for example in (e for a in later for e in ASSIGNMENTS[a].examples):
        (out / example).unlink(missing_ok=True)

    cut = [] if solution else [t.id for t in tasks_of(assignment_id)]
    for path in _marked_files(out):
        text = path.read_text()
        if "SOLUTION" in text and find_regions(text, path):
            path.write_text(strip_solutions(text, None if solution else assignment_id, path,
                                            later))
    kernels_off = _drop_kernel_packages(out, holes)
    _write_student_copy_module(out, assignment, solution, kernels_off, later)

    leaks = find_leaks(out, holes, root)
    if leaks:
        raise RuntimeError(f"{assignment_id}: the copy in {out} still holds solution code:\n"
                           + "\n".join(leaks) + "\nMark it with BEGIN/END SOLUTION in the source")
    signing.write_manifest(out / MANIFEST, {
        "assignment": assignment_id, "solution": solution, "later": list(later),
        "made": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "folder": str(out.resolve()), "entries": sorted(p.name for p in out.iterdir()),
        "digests": file_digests(out)})
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


def _drop_kernel_packages(out, holes):
    """Replace each kernel package holding a fast twin of a hole of the assignments `holes` by
    one that raises ImportError (tinyres.dispatch then runs the readable code); returns the
    packages replaced."""
    dropped = []
    for package in sorted(p for p in (out / "kernels").iterdir() if (p / "__init__.py").is_file()):
        defined = {name for f in package.rglob("*.py") for name in _defined_names(f)}
        owners = sorted({t.assignment for a in holes for t in tasks_of(a)
                         if set(t.twins) & defined})
        if not owners:
            continue
        shutil.rmtree(package)
        package.mkdir()
        (package / "__init__.py").write_text(
            f'"""Not in this copy: the fast kernels here computed functions of '
            f'{" and ".join(owners)}, holes of this copy\n(written by `tinyres assignment '
            f'make`). tinyres.dispatch falls back to the readable code."""\n'
            f'raise ImportError("tinyres.kernels.{package.name} is not part of a {holes[0]} '
            f'student copy")\n')
        dropped.append(f"kernels/{package.name}")
    return dropped


def _write_student_copy_module(out, assignment, solution, kernels_off, later):
    functions = [t.function for t in tasks_of(assignment.id)]
    own_twins = bool(kernels_off) and any(t.twins for t in tasks_of(assignment.id))
    (out / "tinyres" / "student_copy.py").write_text(f'''\
"""This tinyres is {"a solution" if solution else "a student"} copy of {assignment.id} \
({assignment.title}),
written by `tinyres assignment make`. Yours to write: {", ".join(functions)};
the handout is {assignment.handout}. Fast kernels left out: {", ".join(kernels_off) or "none"}.
Released later, left out as holes that say so: {", ".join(later) or "none"}.
"""
import sys

ASSIGNMENT = {assignment.id!r}
TITLE = {assignment.title!r}
HANDOUT = {assignment.handout!r}
FUNCTIONS = {tuple(functions)!r}
KERNELS_OFF = {tuple(kernels_off)!r}
LATER = {tuple(later)!r}
SOLUTION = {solution!r}
_announced = False


def describe():
    """One line: which copy this is and what is the student's."""
    kind = "solution copy" if SOLUTION else "copy"
    kernels = "; fast kernels off for them" if {own_twins!r} else ""
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


def _solution_lines(root, assignments):
    """{task: its distinctive lines} for every region of `assignments`: the normalised lines of
    16+ characters of its body that appear nowhere in the repository outside a region (so
    `xp = get_array_module(x)`, which many files hold, tells nothing)."""
    public, bodies = set(), {}
    for path in _marked_files(root):
        lines = path.read_text().split("\n")
        inside = set()
        for region in find_regions("\n".join(lines), path):
            inside.update(range(region.begin - 1, region.end))
            if TASKS[region.task].assignment in assignments:
                bodies.setdefault(TASKS[region.task], set()).update(
                    _normalised(line) for line in lines[region.begin:region.end - 1])
        public.update(_normalised(line) for i, line in enumerate(lines) if i not in inside)
    return {task: {line for line in body - public if len(line) >= 16}
            for task, body in bodies.items()}


def find_leaks(copy, assignments, root):
    """Files of `copy` holding any distinctive line of a solution region of `assignments` (an
    id or several), in the source or the docs, as 'file: function (k of n lines)' strings."""
    regions = _solution_lines(root, {assignments} if isinstance(assignments, str)
                              else set(assignments))
    leaks = []
    for path in sorted(p for p in Path(copy).rglob("*") if p.suffix in (".py", ".md", ".ipynb")
                       and p.is_file()):
        text = {_normalised(line) for line in path.read_text(errors="replace").split("\n")}
        if path.suffix == ".ipynb":                      # lines inside the JSON strings
            text |= {_normalised(line.strip().strip('",').replace('\\n', ''))
                     for line in path.read_text(errors="replace").split("\n")}
        for task, lines in regions.items():
            found = lines & text
            if found:
                leaks.append(f"{path.relative_to(copy)}: {task.function} ({len(found)} of "
                             f"{len(lines)} lines)")
    return sorted(set(leaks))
