"""Kill `tinyres train` with SIGKILL at random moments, many times; check that it always recovers.

    python tools/crash_test.py [--kills 20] [--seed 0] [--workdir DIR]

Not part of the test suite (it takes minutes). What it does:

1. An uninterrupted reference run of `tinyres train` (ResNet-20 on the first 64 images of the
   bundled sample, batches of 16, 4 epochs, one thread).
2. The same run again, killed with SIGKILL (no chance to clean up) after a random delay between
   0 and 1.2 x the attempt's expected length (from the reference run's timeline: start-up and
   first epoch, then the epochs left after its checkpoint), then continued with `--resume` (or started again with
   `--overwrite` when it died before its first checkpoint) and killed again, and so on until one
   attempt finishes; then another such chain, until --kills kills have been made (the last chain
   is then left to finish). After every kill the newest checkpoint, if there is one, must load,
   be a run checkpoint and be finite.
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
EPOCHS = 4


def train(out, *extra):
    return subprocess.Popen([sys.executable, "-m", "tinyres", "train", *RUN, "--out", str(out),
                             *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs in all (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="for the random kill times")
    parser.add_argument("--workdir", type=Path, help="default: a temporary folder")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="tinyres-crash-"))

    start, saved_after = time.perf_counter(), {}
    reference = train(work / "reference")
    while reference.poll() is None:               # when each epoch's checkpoint appears
        time.sleep(0.1)
        epochs = epochs_saved(work / "reference")
        if epochs:
            saved_after.setdefault(epochs, time.perf_counter() - start)
    if reference.returncode != 0:
        sys.exit(f"the reference run failed: {reference.stderr.read()}")
    duration = time.perf_counter() - start
    first_epoch = saved_after.get(1, duration / EPOCHS)      # start-up, compiling, epoch 1
    per_epoch = (duration - first_epoch) / (EPOCHS - 1)
    print(f"reference run: {duration:.1f} s (the first checkpoint after {first_epoch:.1f} s), "
          f"in {work / 'reference'}", flush=True)

    kills, chains, mid_save, broken_checkpoints, unequal, failed = 0, 0, 0, [], [], []
    while kills < args.kills:
        chains += 1
        out = work / f"chain{chains}"
        while True:
            resumable = (out / "checkpoint.npz").exists()
            attempt = train(out, "--resume") if resumable else train(out, "--overwrite")
            # a random moment of this attempt's own expected length (and a little beyond)
            expected = first_epoch + (EPOCHS - 1 - epochs_saved(out)) * per_epoch
            delay = rng.uniform(0, 1.2 * expected) if kills < args.kills else None
            try:
                code = attempt.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                attempt.send_signal(signal.SIGKILL)
                attempt.wait()
                kills += 1
                if any(out.glob(".checkpoint.npz.*.tmp")):       # it died in the middle of a save
                    mid_save += 1
                problem = check_after_kill(out)
                state = problem or (f"checkpoint at epoch {epochs_saved(out)}"
                                    if (out / "checkpoint.npz").exists() else "no checkpoint yet")
                print(f"chain {chains}: kill {kills} after {delay:.1f} s, {state}", flush=True)
                if problem:
                    broken_checkpoints.append(f"chain {chains}, kill {kills}: {problem}")
                continue
            if code != 0:
                failed.append(f"chain {chains}: an attempt exited {code}: "
                              f"{attempt.stderr.read().strip()[-300:]}")
                break
            difference = same_run(out, work / "reference")
            print(f"chain {chains}: finished, "
                  f"{difference or 'equal to the reference run'}", flush=True)
            if difference:
                unequal.append(f"chain {chains}: {difference}")
            break
    leftovers = [str(p) for p in work.rglob(".checkpoint.npz.*.tmp")]
    problems = broken_checkpoints + unequal + failed + leftovers
    print(f"{kills} SIGKILLs in {chains} chains ({mid_save} in the middle of a save): "
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
