"""`tinyres assignment gradescope A2 --out autograder.zip`: the autograder package for Gradescope.

Gradescope unzips the package into /autograder/source, runs `setup.sh` once when it builds the
image, then `run_autograder` for each submission, which must leave /autograder/results/
results.json. The package holds:

    setup.sh          installs, once: a virtual environment with numpy and the course's tinyres
                      (the engine the grader trusts, with its references and cases), from source/
    run_autograder    grades /autograder/submission; always leaves a valid results.json: a crash
                      of the grader itself, or a run past the total time, still gives a score of
                      0 with the reason (the shell script writes it when Python could not)
    settings.json     the course's settings (tinyres/course/settings.py), resolved
    tinyres/, kernels/, pyproject.toml, README.md     the course's tinyres
    fresh/            a fresh student copy of the assignment, for submissions of the files alone

`run_autograder` calls `python -m tinyres.course.gradescope run`, which finds the submission in
any of the shapes students upload (find_submission): the copy's folder itself, a zip of it with
one top-level folder (unpacked by Gradescope, or not), or the files they wrote alone (conv.py,
conv_loops.py), laid onto the fresh copy. Each function gets the settings' per-function time,
cut so that every run of the student's code fits in the settings' total (Gradescope's limit).

The paths are Gradescope's; TINYRES_AUTOGRADER_ROOT (default /autograder) and
TINYRES_AUTOGRADER_PYTHON (default the setup's venv) move them, for a test or a dry run.
"""
import json
import os
import shutil
import stat
import sys
import tempfile
import traceback
import zipfile
from dataclasses import asdict
from pathlib import Path

from tinyres.course import copier, grader
from tinyres.course.assignments import ASSIGNMENTS, check_assignment_id, tasks_of
from tinyres.course.settings import load, parse

SOURCE = ("tinyres", "kernels")
SOURCE_FILES = ("pyproject.toml", "README.md")
MARGIN = 60                  # seconds of the total kept for Python's start, copying, results
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc", "*.egg-info")

SETUP = """\
#!/usr/bin/env bash
# Gradescope runs this once, when it builds the autograder image: everything the grader needs
# is installed here (run_autograder installs nothing). Written by `tinyres assignment gradescope`.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v python3 >/dev/null || ! python3 -m venv --help >/dev/null 2>&1; then
    apt-get update && apt-get install -y python3 python3-venv python3-pip
fi
venv="${TINYRES_AUTOGRADER_ROOT:-/autograder}/tinyres-venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --upgrade pip
"$venv/bin/python" -m pip install numpy .      # the course's tinyres
# checked from /: here `import tinyres` would find this source folder, not what was installed
(cd / && "$venv/bin/python" -c "import tinyres.course.grader")
"""

RUN = """\
#!/usr/bin/env bash
# Gradescope runs this for each submission. Written by `tinyres assignment gradescope`.
# It always leaves a valid results.json: if the grader itself fails or runs past the total time
# ({total:g} s in the settings), this script writes a score of 0 with the reason.
root="$(cd "${{TINYRES_AUTOGRADER_ROOT:-/autograder}}" && pwd)"
python="${{TINYRES_AUTOGRADER_PYTHON:-$root/tinyres-venv/bin/python}}"
results="$root/results/results.json"
mkdir -p "$root/results"
# `python -m` puts the working folder first on sys.path: the root holds no tinyres of its own
cd "$root"
rm -f "$results"
timeout --kill-after=5 {limit} "$python" -m tinyres.course.gradescope run --root "$root" \\
    --assignment {assignment} --settings "$root/source/settings.json"
status=$?
if ! "$python" -c 'import json, sys; r = json.load(open(sys.argv[1])); r["score"], r["tests"]' \\
        "$results" 2>/dev/null; then
    why="the autograder itself failed (exit status $status; 124: past {limit} s)"
    printf '{{"score": 0, "output": "%s; %s", "tests": []}}\\n' "$why" \\
        "your code is not at fault. Tell course staff." > "$results"
fi
exit 0
"""


def per_function_timeout(assignment_id, settings):
    """Seconds each run of the student's code may take: the settings' per_function, cut so
    that every run (one per function, two for a function graded with stand-ins) fits in the
    total less MARGIN."""
    runs = sum(1 + bool(t.uses) for t in tasks_of(assignment_id))
    return min(settings.per_function, max(1.0, (settings.total - MARGIN) / runs))


def package(assignment_id, out, settings, log=print):
    """Write the autograder zip of `assignment_id` to `out`."""
    check_assignment_id(assignment_id)
    out = Path(out)
    if out.suffix != ".zip":
        raise ValueError(f"--out {out}: expected a file name ending in .zip (Gradescope uploads "
                         f"a zip)")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give the zip's file name")
    root = copier.repository_root()
    limit = int(settings.total) - 10
    with tempfile.TemporaryDirectory(prefix="tinyres-gradescope-") as work:
        fresh = Path(work) / "fresh"
        copier.make(assignment_id, fresh, log=lambda *args: None, order=settings.release_order)
        part = out.with_name(out.name + ".part")
        with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as z:
            _add(z, "setup.sh", SETUP, executable=True)
            _add(z, "run_autograder", RUN.format(assignment=assignment_id, limit=limit,
                                                 total=settings.total), executable=True)
            _add(z, "settings.json", json.dumps(_settings_json(settings), indent=2))
            for folder in SOURCE:
                _add_tree(z, root / folder, folder)
            for name in SOURCE_FILES:
                z.write(root / name, name)
            _add_tree(z, fresh, "fresh")
        os.replace(part, out)
    log(f"{assignment_id}: Gradescope autograder written to {out}")
    log(f"   per function: {per_function_timeout(assignment_id, settings):g} s (total "
        f"{settings.total:g} s: set Gradescope's autograder timeout to at least that)")
    seed = settings.hidden_seed
    log("   hidden cases: " + (f"seed {seed}" if seed is not None else
                               "a seed drawn per submission, recorded in results.json"))
    return out


def _settings_json(settings):
    content = asdict(settings)
    content.pop("source")
    time = {"per_function": content.pop("per_function"), "total": content.pop("total")}
    visibility = {"visible": content.pop("visible"), "hidden": content.pop("hidden")}
    content["release_order"] = list(content["release_order"])
    if content["hidden_seed"] is None:
        content.pop("hidden_seed")
    return {**content, "time": time, "visibility": visibility}


def _add(z, name, text, executable=False):
    info = zipfile.ZipInfo(name)
    info.external_attr = ((0o755 if executable else 0o644) | stat.S_IFREG) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    z.writestr(info, text)


def _add_tree(z, folder, name):
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(_IGNORED(str(path.parent), [part]) for part in
                                      relative.parts):
            z.write(path, f"{name}/{relative.as_posix()}")


# -- the submission -----------------------------------------------------------------------------
def _is_copy(folder):
    return (folder / "tinyres" / "__init__.py").is_file() and (folder / "kernels").is_dir()


def _unzip(archive, destination):
    """Extract `archive` into `destination`, refusing links and paths that leave it."""
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            target = (destination / info.filename).resolve()
            if destination.resolve() not in target.parents and target != destination.resolve():
                raise ValueError(f"{archive.name} holds {info.filename!r}, a path outside the "
                                 f"zip's folder")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ValueError(f"{archive.name} holds a link, {info.filename!r}")
        z.extractall(destination)


def find_submission(submission, fresh, work, assignment_id):
    """(the folder to grade, notes): the submission as a copy, whatever shape it came in;
    raises ValueError with the reason a student reads when it holds none."""
    submission, work = Path(submission), Path(work)
    if not submission.is_dir():
        raise ValueError(f"no submission folder {submission}")
    entries = [p for p in submission.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if not entries:
        raise ValueError("the submission is empty: upload your copy's folder (as a zip), or "
                         "the files you wrote")
    if _is_copy(submission):
        return submission, []
    zips = [p for p in entries if p.suffix == ".zip" and p.is_file()]
    if len(entries) == 1 and zips:                        # a zip Gradescope did not unpack
        unpacked = work / "unzipped"
        unpacked.mkdir()
        try:
            _unzip(zips[0], unpacked)
        except (zipfile.BadZipFile, OSError) as error:
            raise ValueError(f"{zips[0].name} is not a zip that can be read ({error})")
        return find_submission(unpacked, fresh, work / "inner", assignment_id)
    folders = [p for p in entries if p.is_dir()]
    if len(entries) == 1 and folders and _is_copy(folders[0]):       # one top-level folder
        return folders[0], [f"graded the copy in the folder {folders[0].name}/"]
    return _lay_onto_fresh(submission, fresh, work, assignment_id)


def _lay_onto_fresh(submission, fresh, work, assignment_id):
    """The student's files alone (conv.py, or tinyres/functional/conv.py) copied onto a fresh
    copy, each where the assignment's file of that name is."""
    wanted = {t.file: t.file for t in tasks_of(assignment_id)}
    wanted.update({Path(t.file).name: t.file for t in tasks_of(assignment_id)})
    found = {}
    for path in sorted(p for p in submission.rglob("*.py") if p.is_file() and not p.is_symlink()):
        relative = path.relative_to(submission).as_posix()
        key = next((k for k in (relative, path.name) if k in wanted), None)
        if key and wanted[key] not in found:
            found[wanted[key]] = path
    if not found:
        files = sorted(dict.fromkeys(Path(t.file).name for t in tasks_of(assignment_id)))
        raise ValueError(f"the submission holds no tinyres copy and none of the files of "
                         f"{assignment_id} ({', '.join(files)}); upload your copy's folder (as "
                         f"a zip), or those files")
    copy = work / "copy"
    shutil.copytree(fresh, copy, symlinks=True)
    for target, path in found.items():
        shutil.copyfile(path, copy / target)
    return copy, [f"your files laid onto a fresh {assignment_id} copy: "
                  f"{', '.join(sorted(found))}"]


# -- one submission -----------------------------------------------------------------------------
def _failed(reason):
    return {"score": 0, "output": reason, "tests": []}


def run(root, assignment_id, settings):
    """Grade root/submission into root/results/results.json; always writes it."""
    root = Path(root)
    results = root / "results" / "results.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="tinyres-submission-") as work:
            try:
                copy, notes = find_submission(root / "submission", root / "source" / "fresh",
                                              Path(work), assignment_id)
            except ValueError as error:
                content = _failed(f"not graded: {error}")
            else:
                report = grader.grade(copy, assignment_id,
                                      timeout=per_function_timeout(assignment_id, settings),
                                      settings=settings)
                report.notes = notes + report.notes
                content = grader.gradescope_results(report, settings)
    except Exception as error:                     # the grader's own failure: say it, score 0
        traceback.print_exc()
        content = _failed(f"the autograder itself failed ({type(error).__name__}: {error}); "
                          f"your code is not at fault. Tell course staff.")
    part = results.with_name(results.name + ".part")
    part.write_text(json.dumps(content, indent=2))
    os.replace(part, results)
    return content


def main(argv=None):
    """python -m tinyres.course.gradescope run --root R --assignment A2 --settings S"""
    import argparse
    parser = argparse.ArgumentParser(prog="python -m tinyres.course.gradescope")
    parser.add_argument("action", choices=["run"])
    parser.add_argument("--root", default="/autograder")
    parser.add_argument("--assignment", required=True, choices=sorted(ASSIGNMENTS))
    parser.add_argument("--settings")
    args = parser.parse_args(argv)
    path = Path(args.settings) if args.settings else None
    settings = parse(json.loads(path.read_text()), str(path)) if path else load(None)
    content = run(args.root, args.assignment, settings)
    print(f"score {content['score']:g}" + (f"/{content['max_score']:g}"
                                          if "max_score" in content else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
