"""Floor 7: the run directory, made ready before any work starts.

`tinyres train --out DIR` checks DIR before it loads data or builds a model:

    DIR holds a run, no --resume      refused, saying what is there: a finished week of training
                                      is never replaced by accident (--overwrite replaces it)
    DIR cannot be written             refused now, not after the first epoch has trained
    .checkpoint.npz.*.tmp in DIR      left by saves that were killed midway: removed (only these,
                                      recognised by the exact name tinyres.save gives them)
"""
import json
import os
import re
import tempfile
from pathlib import Path

from tinyres.errors import UserError
from tinyres.train.checkpoint import CHECKPOINT, read_run_checkpoint

# what a run writes in its directory
RUN_FILES = (CHECKPOINT, "metrics.csv", "iterations.csv", "curves.png")
# tinyres.save writes `.NAME.<8 hex digits>.tmp` beside NAME, then renames it to NAME
STALE_SAVE = re.compile(rf"^\.{re.escape(CHECKPOINT)}\.[0-9a-f]{{8}}\.tmp$")


class RunDirectoryError(UserError):
    """The run directory cannot be used as asked (the message says what is there and what to
    do)."""


def describe_contents(out):
    """What a run directory holds, in a few words ("checkpoint.npz (epoch 4 of 4), metrics.csv
    (4 rows), curves.png, 2 other files")."""
    entries = sorted(p.name for p in Path(out).iterdir() if not STALE_SAVE.match(p.name))
    described = []
    for name in entries:
        if name == CHECKPOINT:
            try:
                state = read_run_checkpoint(Path(out) / name)
                planned = json.loads(str(state["config"]))["epochs"]
                name += f" (epoch {int(state['progress']['epochs_done'])} of {planned})"
            except UserError:
                name += " (unreadable)"
        elif name == "metrics.csv":
            with open(Path(out) / name) as f:
                rows = max(sum(1 for _ in f) - 1, 0)
            name += f" ({rows} row{'' if rows == 1 else 's'})"
        if name.split(" ")[0] in RUN_FILES:
            described.append(name)
    others = len(entries) - len(described)
    if others:
        described.append(f"{others} other file{'s' if others > 1 else ''}")
    return ", ".join(described)


def prepare_run_directory(out, resume=False, overwrite=False):
    """Make `out` ready for a run, or raise RunDirectoryError before any work is done.

    A new run needs an empty or absent directory, unless `overwrite` (which removes the previous
    run's files, and only those). Stale temporary files of killed saves are removed. Returns the
    directory, created if needed and checked to be writable."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunDirectoryError(f"--out {out} is a file, not a directory; choose another --out")
    if not resume and out.is_dir() and any(not STALE_SAVE.match(p.name) for p in out.iterdir()):
        if not overwrite:
            raise RunDirectoryError(
                f"--out {out} already holds {describe_contents(out)}; continue that run with "
                f"--resume, replace it with --overwrite, or choose another --out")
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".tinyres-write-check-"):
            pass
    except OSError as err:
        raise RunDirectoryError(f"--out {out} is not writable ({err.strerror or err}); fix its "
                                f"permissions or choose another --out") from None
    for stale in out.iterdir():
        if STALE_SAVE.match(stale.name):
            os.remove(stale)
    return out
