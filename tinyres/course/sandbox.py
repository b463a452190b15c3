"""Where the student's code runs: a process that can reach nothing of the grader's.

    confined([python, "-I", "runner.py"], workdir)    the command, wrapped for the sandbox

The grader runs each function of a submission in a private interpreter (a virtual environment
whose only package is NumPy: `import tinyres` finds the submission or nothing). On Linux, with
util-linux's `unshare` and `setpriv`, that interpreter also runs

- in a **mount namespace** of its own, where the grader's home (and so the course key,
  ~/.config/tinyres/course-key), and any folder on the way to the interpreter or NumPy that
  other users may not enter (/root), are covered by an empty tmpfs; the interpreter's and
  NumPy's folders are mounted back, read-only, where they were;
- in a **pid namespace** with its own /proc: no other process of the machine is visible (no
  /proc/<pid>/environ, mem or root of the grader to read, nobody to signal), and when its first
  process (the runner's guard) ends, the kernel kills every process left in it;
- with **no capabilities** (nothing can undo the mounts) and, when the grader is root (a
  container, Gradescope), as the unprivileged user 65534, "nobody": root's files (the disk, a
  key file of mode 600) are closed to it, and so is every file the grader writes. A grader
  that is not root cannot change user; it maps itself in a user namespace instead, so the
  student's code can still read and write that user's files outside the covered folders.

`available()` tries this once per process. Where it cannot work (not Linux, no `unshare`, a
container that forbids namespaces) the student's code runs as the grader's user, and the
grader refuses to grade while a course key is on the machine (grader.py): the key would be
readable by the student's code.

Run as a script (by `confined`'s command, inside the new namespaces, before the student's
code), this file makes the mounts and then becomes the student's command through `setpriv`.
Plain Python at the top: it runs with `python -I` and imports nothing of tinyres.
"""
import ctypes
import functools
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

NOBODY = 65534                      # the unprivileged uid and gid (Linux's "nobody")
MS_RDONLY, MS_NOSUID, MS_NODEV = 1, 2, 4                   # linux/mount.h
MS_REMOUNT, MS_BIND, MS_REC = 32, 4096, 16384


# -- outside: what the grader calls ------------------------------------------------------------
def private_interpreter(folder):
    """A virtual environment in `folder` whose only package is NumPy (a link to the grader's):
    its Python sees neither the grader's site-packages nor an editable finder, so in it
    `import tinyres` finds the submission's copy or nothing, and `site.main()` adds nothing."""
    import numpy
    base = Path(os.path.realpath(sys._base_executable))
    (folder / "bin").mkdir(parents=True)
    (folder / "pyvenv.cfg").write_text(f"home = {base.parent}\n"
                                       f"include-system-site-packages = false\n")
    (folder / "bin" / "python").symlink_to(base)
    site = folder / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    site.mkdir(parents=True)
    (site / "numpy").symlink_to(Path(numpy.__file__).parent)
    return folder / "bin" / "python"


def shown_folders():
    """What the private interpreter reads outside its own folder: Python's prefix, NumPy and
    the libraries NumPy's wheel links to (numpy.libs, beside it)."""
    import numpy
    numpy_folder = Path(numpy.__file__).resolve().parent
    folders = [Path(os.path.realpath(sys._base_executable)).parent.parent, numpy_folder,
               numpy_folder.with_name("numpy.libs")]
    return [f for f in folders if f.is_dir()]


def _closed_to_others(folder):
    """The outermost folder on the way to `folder` (not itself) that other users may not
    enter, or None."""
    for part in reversed(folder.parents):
        if not part.stat().st_mode & stat.S_IXOTH:
            return part
    return None


def covered_folders(shown, as_nobody):
    """The folders to hide under an empty tmpfs: the grader's home (and the key's folder, if it
    lies elsewhere), and, when the student's code runs as nobody, each folder it could not
    enter on its way to one that is shown (or to its own scratch folder)."""
    from tinyres.course.signing import KEY_FILE
    found = {Path.home().resolve(), KEY_FILE.parent.resolve()}
    if as_nobody:
        found |= {f for f in map(_closed_to_others, shown) if f is not None}
    found -= {Path("/"), *shown}     # a shown folder mounted back onto its own cover would
    return sorted(f for f in found if not any(p in found for p in f.parents))   # find the cover


def _mode():
    """"nobody" (the grader is root: change user), "namespace" (map the grader's own user),
    or None where namespaces are not there to use."""
    if not sys.platform.startswith("linux") or not (shutil.which("unshare")
                                                    and shutil.which("setpriv")):
        return None
    return "nobody" if os.geteuid() == 0 else "namespace"


def confined(command, workdir, mode=None):
    """`command` (run with `workdir` as its working folder) wrapped so that it runs in the
    sandbox; `command` itself where there is none. mode: "nobody", "namespace" or None
    (default: what `available()` found)."""
    mode = available()[0] if mode is None else mode
    if mode is None:
        return list(command)
    workdir = Path(workdir).resolve()
    if mode == "nobody":             # the student's process writes its outputs here
        for root, dirs, files in os.walk(workdir):
            for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                os.chown(name, NOBODY, NOBODY, follow_symlinks=False)
    shown = shown_folders()
    plan = {"covered": [str(f) for f in covered_folders([*shown, workdir], mode == "nobody")],
            "shown": [str(f) for f in shown], "writable": [str(workdir)],
            "nobody": mode == "nobody"}
    flags = ["--mount", "--pid", "--fork", "--kill-child", "--mount-proc"]
    if mode == "namespace":
        flags = ["--user", "--map-root-user", *flags]
    return [shutil.which("unshare"), *flags, "--", sys.executable, "-I", __file__,
            json.dumps(plan), "--", *command]


@functools.cache
def available():
    """(mode, "") where the sandbox works here, else (None, why not), tried once: a private
    interpreter in the sandbox imports NumPy in a scratch folder."""
    mode = _mode()
    if mode is None:
        return None, ("no Linux namespaces here (the sandbox needs Linux and util-linux's "
                      "unshare and setpriv)")
    workdir = Path(tempfile.mkdtemp(prefix="tinyres-sandbox-"))
    try:
        python = private_interpreter(workdir / "python")
        probe = confined([str(python), "-I", "-c", "import numpy"], workdir, mode)
        done = subprocess.run(probe, cwd=workdir, capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL, env={"PATH": os.defpath})
    except (OSError, subprocess.SubprocessError) as error:
        return None, f"the sandbox could not start ({error})"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        return None, f"the sandbox could not start here ({last[:200]})"
    return mode, ""


# -- inside: the new namespaces, before the student's code --------------------------------------
def _mount(source, target, fstype, flags, data):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(source and source.encode(), target.encode(), fstype and fstype.encode(),
                  flags, data and data.encode()) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"tinyres sandbox: mount of {target}: {os.strerror(error)}")


def enter(plan, command):
    """Cover, show again, and become `command` with no capabilities (as nobody if asked).
    Each shown folder is held open (O_PATH) before the covers hide it, then bound back from
    that handle, read-only: the student's code can neither see past a cover nor write into
    the interpreter or the NumPy the grader itself uses."""
    handles = {path: os.open(path, os.O_PATH) for path in plan["shown"] + plan["writable"]}
    for folder in plan["covered"]:
        _mount("tinyres-sandbox", folder, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m")
    os.umask(0o022)
    for path, handle in handles.items():
        os.makedirs(path, exist_ok=True)
        _mount(f"/proc/self/fd/{handle}", path, None, MS_BIND | MS_REC, None)
        if path not in plan["writable"]:
            _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID, None)
    user = ["--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups"]
    setpriv = shutil.which("setpriv", path=os.defpath)
    os.execv(setpriv, [setpriv, "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all",
                       *(user if plan["nobody"] else []), "--", *command])


if __name__ == "__main__":
    enter(json.loads(sys.argv[1]), sys.argv[3:])
