"""Kill `tinyres train` with SIGKILL at random moments, many times; check that it always recovers.

    python tools/crash_test.py [--kills 20] [--seed 0] [--workdir DIR]

Not part of the test suite (it takes minutes). What it does:

1. An uninterrupted reference run of `tinyres train` (ResNet-20 on the first 64 images of the
   bundled sample, batches of 16, 4 epochs, one thread).
2. The same run again, killed with SIGKILL (no chance to clean up) at a random moment of one of
   three kinds, chosen at random for each attempt: a random time after the start (uniform up to
   the reference run's length: start-up, compiling, any epoch); the instant a checkpoint is
   being written (its temporary file has appeared); or up to half a second after a checkpoint
   was renamed into place (while metrics.csv and curves.png are written). Then the run continues
   with `--resume` (or starts again with `--overwrite` when it died before its first
   checkpoint) and is killed again, until an attempt finishes: a chain. Chains follow each other
   until --kills kills have been made (the last chain is then left to finish). After every kill
   the newest checkpoint, if there is one, must load, be a run checkpoint and be finite.
3. At the end of every chain the run must equal the reference: every column of metrics.csv but
   the timings, and the final weights bit for bit.

It exits 0 when everything held, 1 otherwise; its last line is the summary that docs/training.md
quotes.
"""
import argparse
import csv
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tinyres.serialization import load  # noqa: E402
from tinyres.train.checkpoint import read_run_checkpoint  # noqa: E402
from tinyres.train.metrics import TIMING_COLUMNS  # noqa: E402

RUN = ["--model", "resnet20", "--data", "sample", "--limit-train", "64", "--batch-size", "16",
       "--epochs", "4", "--seed", "1", "--threads", "1", "--quiet"]


def train(out, *extra):
    """Start `tinyres train` into `out`; its stderr goes to `out`.stderr (read on a failure)."""
    log = open(Path(f"{out}.stderr"), "w")
    process = subprocess.Popen([sys.executable, "-m", "tinyres", "train", *RUN, "--out",
                                str(out), *extra], stdout=subprocess.DEVNULL, stderr=log)
    log.close()                                       # the child holds its own copy
    return process


def errors_of(out):
    return Path(f"{out}.stderr").read_text().strip()[-300:]


def epochs_saved(out):
    """The epochs done in the run's checkpoint (0 without one, or while it cannot be read)."""
    try:
        return int(load(Path(out) / "checkpoint.npz")["progress"]["epochs_done"])
    except Exception:                    # absent, or a check after a kill reports it
        return 0


def metrics_without_timings(out):
    with open(Path(out) / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS}
                for row in csv.DictReader(f)]


def same_run(out, reference):
    """'' when the run in `out` equals the reference run, else what differs."""
    if metrics_without_timings(out) != metrics_without_timings(reference):
        return "metrics.csv differs"
    want, got = load(Path(reference) / "checkpoint.npz"), load(Path(out) / "checkpoint.npz")
    differing = [k for k in want["model"]
                 if not numpy.array_equal(want["model"][k], got["model"][k])]
    return f"weights differ in {', '.join(differing[:3])}" if differing else ""


def check_after_kill(out):
    """'' when the newest checkpoint (if any) loads as a finite run checkpoint, else why not."""
    path = Path(out) / "checkpoint.npz"
    if not path.exists():
        return ""
    try:
        read_run_checkpoint(path)
    except Exception as err:                     # any failure to load is what we look for
        return f"{type(err).__name__}: {err}"
    return ""


def wait_for_the_moment(attempt, out, kind, delay, rng):
    """Wait until the moment of `kind` (None: never) while `attempt` runs; True when it came
    (kill now), False when the attempt ended first."""
    def checkpoint_identity():
        try:
            return os.stat(out / "checkpoint.npz").st_ino      # a new file on every save
        except FileNotFoundError:
            return None

    started, first = time.perf_counter(), checkpoint_identity()
    while attempt.poll() is None:
        if kind == "at a random time" and time.perf_counter() - started >= delay:
            return True
        if kind == "while a checkpoint was written" and any(out.glob(".checkpoint.npz.*.tmp")):
            return True
        if kind == "just after a checkpoint was written" and checkpoint_identity() != first:
            time.sleep(rng.uniform(0, 0.5))
            return attempt.poll() is None
        time.sleep(0.002)
    return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs in all (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="for the random kill times")
    parser.add_argument("--workdir", type=Path, help="default: a temporary folder")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tinyres-crash-"))
    work.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    reference = train(work / "reference")
    if reference.wait() != 0:
        sys.exit(f"the reference run failed: {errors_of(work / 'reference')}")
    duration = time.perf_counter() - start
    print(f"reference run: {duration:.1f} s, in {work / 'reference'}", flush=True)

    kills, chains, broken_checkpoints, unequal, failed = 0, 0, [], [], []
    kinds = {"at a random time": 0, "while a checkpoint was written": 0,
             "just after a checkpoint was written": 0}
    while kills < args.kills:
        chains += 1
        out = work / f"chain{chains}"
        while True:
            resumable = (out / "checkpoint.npz").exists()
            attempt = train(out, "--resume") if resumable else train(out, "--overwrite")
            kind = rng.choice(list(kinds)) if kills < args.kills else None
            if not wait_for_the_moment(attempt, out, kind, rng.uniform(0, duration), rng):
                if attempt.returncode != 0:
                    failed.append(f"chain {chains}: an attempt exited {attempt.returncode}: "
                                  f"{errors_of(out)}")
                    break
                difference = same_run(out, work / "reference")
                print(f"chain {chains}: finished, "
                      f"{difference or 'equal to the reference run'}", flush=True)
                if difference:
                    unequal.append(f"chain {chains}: {difference}")
                break
            attempt.send_signal(signal.SIGKILL)
            attempt.wait()
            kills += 1
            kinds[kind] += 1
            problem = check_after_kill(out)
            state = problem or (f"checkpoint at epoch {epochs_saved(out)}"
                                if (out / "checkpoint.npz").exists() else "no checkpoint yet")
            print(f"chain {chains}: kill {kills} {kind}, {state}", flush=True)
            if problem:
                broken_checkpoints.append(f"chain {chains}, kill {kills}: {problem}")
    leftovers = [str(p) for p in work.rglob(".checkpoint.npz.*.tmp")]
    problems = broken_checkpoints + unequal + failed + leftovers
    print(f"{kills} SIGKILLs in {chains} chains ("
          f"{', '.join(f'{count} {kind}' for kind, count in kinds.items())}): "
          f"{kills - len(broken_checkpoints)} of {kills} "
          f"left a loadable, finite checkpoint (or none yet); "
          f"{chains - len(unequal) - len(failed)} of {chains} chains completed by --resume "
          f"equal to the uninterrupted run (metrics.csv but timings, weights bit for bit); "
          f"{len(leftovers)} temporary files left")
    for problem in problems:
        print("  " + problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
