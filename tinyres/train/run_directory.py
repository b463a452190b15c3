"""Floor 7: the run directory — checked before any work, claimed by one training at a time.

`tinyres train --out DIR` checks DIR before it loads data or builds a model, and changes nothing
while it checks (`check_run_directory`):

    --resume and --overwrite          refused: one continues the run, the other replaces it
    DIR holds anything, no --resume   refused, saying what is there: a finished week of training
                                      is never replaced by accident (--overwrite replaces it)
    DIR cannot be written             refused now, not after the first epoch has trained

Only once every option, the data and the model have passed their checks does a training claim
DIR (`claim_run_directory`, from Trainer.fit): it creates DIR, locks it with an OS file lock
(fcntl.flock on the directory itself, held until the training ends, released by the OS when the
process dies, however it dies), and only then, under the lock, removes what --overwrite replaces
(the previous run's files, and only those) and the `.checkpoint.npz.*.tmp` files left by saves
that were killed midway (only plain files of exactly the name tinyres.save gives them). A second
training into a locked DIR is refused: two runs never mix their rows in one metrics.csv.
"""
import contextlib
import json
import os
import re
import tempfile
from pathlib import Path

from tinyres.errors import UserError
from tinyres.train.checkpoint import CHECKPOINT, read_run_checkpoint

try:
    import fcntl
except ImportError:                     # Windows: no flock; runs are not locked there
    fcntl = None

# what a run writes in its directory
RUN_FILES = (CHECKPOINT, "metrics.csv", "iterations.csv", "curves.png")
# tinyres.save writes `.NAME.<8 hex digits>.tmp` beside NAME, then renames it to NAME
STALE_SAVE = re.compile(rf"^\.{re.escape(CHECKPOINT)}\.[0-9a-f]{{8}}\.tmp$")


class RunDirectoryError(UserError):
    """The run directory cannot be used as asked (the message says what is there and what to
    do)."""


def is_stale_save(path):
    """A temporary file a killed save left (a folder of that name is someone's, not litter)."""
    path = Path(path)
    return bool(STALE_SAVE.match(path.name)) and path.is_file() and not path.is_symlink()


def describe_contents(out):
    """What a run directory holds, in a few words ("checkpoint.npz (epoch 4 of 4), metrics.csv
    (4 rows), curves.png, 2 other files")."""
    entries = sorted(p.name for p in Path(out).iterdir() if not is_stale_save(p))
    described = []
    for name in entries:
        if name == CHECKPOINT:
            try:
                state = read_run_checkpoint(Path(out) / name)
                planned = json.loads(str(state["config"]))["epochs"]
                name += f" (epoch {int(state['progress']['epochs_done'])} of {planned})"
            except (UserError, ValueError, KeyError, TypeError):
                name += " (unreadable)"
        elif name == "metrics.csv" and (Path(out) / name).is_file():
            with open(Path(out) / name, errors="replace") as f:
                rows = max(sum(1 for _ in f) - 1, 0)
            name += f" ({rows} row{'' if rows == 1 else 's'})"
        if name.split(" ")[0] in RUN_FILES:
            described.append(name)
    others = len(entries) - len(described)
    if others:
        described.append(f"{others} other file{'s' if others > 1 else ''}")
    return ", ".join(described)


def check_run_directory(out, resume=False, overwrite=False):
    """Refuse, with RunDirectoryError, a run directory that cannot be used as asked; nothing is
    created, changed or removed here."""
    out = Path(out)
    if resume and overwrite:
        raise RunDirectoryError(f"--resume continues the run in --out {out}, --overwrite "
                                f"replaces it: give one of the two")
    if out.exists() and not out.is_dir():
        raise RunDirectoryError(f"--out {out} is a file, not a directory; choose another --out")
    if not resume and out.is_dir() and any(not is_stale_save(p) for p in out.iterdir()):
        if not overwrite:
            raise RunDirectoryError(
                f"--out {out} already holds {describe_contents(out)}; continue that run with "
                f"--resume, replace it with --overwrite, or choose another --out")
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise RunDirectoryError(f"--out {out}: {existing} is a file, not a directory; choose "
                                f"another --out")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".tinyres-write-check-"):
            pass
    except OSError as err:
        raise RunDirectoryError(f"--out {out} is not writable ({err.strerror or err}); fix its "
                                f"permissions or choose another --out") from None


@contextlib.contextmanager
def claim_run_directory(out, resume=False, overwrite=False):
    """Hold `out` for one training: create it, lock it (RunDirectoryError if another training
    holds it), then, under the lock, remove what `overwrite` replaces and stale temporary files.
    A new run (neither `resume` nor `overwrite`) is refused where a checkpoint already is."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = os.open(out, os.O_RDONLY)
    except OSError as err:
        raise RunDirectoryError(f"--out {out} cannot be created or opened ({err.strerror or err}"
                                f"); fix its permissions or choose another --out") from None
    try:
        _lock(handle, out)
        if overwrite:
            for name in RUN_FILES:
                (out / name).unlink(missing_ok=True)
        elif not resume and (out / CHECKPOINT).exists():
            raise RunDirectoryError(
                f"--out {out} already holds {describe_contents(out)}; continue that run with "
                f"--resume, replace it with --overwrite, or choose another --out")
        for stale in out.iterdir():
            if is_stale_save(stale):
                os.remove(stale)
        yield out
    finally:
        os.close(handle)                    # closing the directory releases its lock


def _lock(handle, out):
    if fcntl is None:
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RunDirectoryError(f"--out {out} is in use: another training is writing it now; "
                                f"wait until it ends (then --resume continues it), or choose "
                                f"another --out") from None
