"""The labs' training runs: many (model, seed) runs of `tinyres train`, side by side, resumable.

A lab asks for a list of RunSpecs; `train_runs` trains each in its own directory under the lab's
output (``plain20-seed0/`` ...) with the same Trainer as `tinyres train` — so each run directory
holds its checkpoint.npz, metrics.csv, iterations.csv and curves.png — running `jobs` of them at a
time in worker processes with `threads` threads each. Two single-threaded runs side by side use
two cores better than one run on two threads (the small convolutions of CIFAR nets scale poorly
across threads).

Stopping and starting again: Ctrl-C stops every run between two steps and checkpoints it; the
same command later resumes each unfinished run where it stopped and skips the finished ones. A
directory that holds a run with other settings is an error, never overwritten.
"""
import dataclasses
import json
import multiprocessing
import os
import signal
import time
import traceback
from pathlib import Path

from tqdm import tqdm

from tinyres.train.metrics import read_metrics


class LabError(RuntimeError):
    """A lab cannot run as asked (bad option, a run directory with other settings)."""


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One training run of a lab: the settings of `tinyres train` it uses."""
    model: str
    seed: int
    epochs: int
    warmup: int = 0                   # iterations at lr 0.01 first (the paper's ResNet-110)
    data: str | None = None           # as `tinyres train --data`
    limit_train: int | None = None
    batch_size: int = 128
    normalize: str = "channel"        # as `tinyres train --normalize` ("pixel": the paper's)

    @property
    def name(self):
        return f"{self.model}-seed{self.seed}"

    def config(self, out):
        from tinyres.models import TRAINING_LR
        from tinyres.train import TrainConfig
        return TrainConfig(model=self.model, epochs=self.epochs, batch_size=self.batch_size,
                           lr=TRAINING_LR[self.model],
                           warmup_iterations=self.warmup, data=self.data,
                           normalize=self.normalize, limit_train=self.limit_train,
                           seed=self.seed, out=str(out))


def train_runs(specs, root, jobs=1, threads=None, show_progress=True, reuse=None):
    """Train every spec (resuming unfinished runs) in root/spec.name, at most `jobs` at a time,
    each in its own process; returns {spec: run directory} once all have finished. A run that
    another lab already made in the directory `reuse`/spec.name is taken from there."""
    root = Path(root)
    directories = {spec: (Path(reuse) / spec.name
                          if reuse and (Path(reuse) / spec.name / "checkpoint.npz").is_file()
                          else root / spec.name) for spec in specs}
    context = multiprocessing.get_context("spawn")      # a fresh interpreter: no forked threads
    waiting, running = list(specs), {}
    bar = tqdm(total=sum(spec.epochs for spec in specs), desc=f"{len(specs)} runs",
               unit="epoch", disable=not show_progress, dynamic_ncols=True)
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                spec = waiting.pop(0)
                process = context.Process(target=_worker, name=spec.name,
                                          args=(spec, directories[spec], threads))
                process.start()
                running[process] = spec
            for process in [p for p in running if not p.is_alive()]:
                spec = running.pop(process)
                check_exit(spec, process.exitcode, directories[spec])
            bar.update(_epochs_done(directories.values()) - bar.n)
            time.sleep(0.5)
    finally:
        _stop(running)          # on Ctrl-C or a failed run: the others checkpoint and stop
        bar.update(_epochs_done(directories.values()) - bar.n)
        bar.close()
    return directories


def _stop(running):
    for process in running:
        if process.is_alive():
            os.kill(process.pid, signal.SIGINT)     # the Trainer checkpoints between two steps
    for process in running:
        process.join()


LAB_ERROR_EXIT = 3          # a run's exit code for a mistake the lab explains in one line
INTERRUPTED = (130, -signal.SIGINT)     # a run's exit code after Ctrl-C (its own, or a signal's)


def check_exit(spec, exitcode, directory):
    """A finished run's exit code: 0 is done; Ctrl-C's (the run checkpointed, as the others will)
    is KeyboardInterrupt, whichever process it reached first; anything else a LabError."""
    if exitcode in INTERRUPTED:
        raise KeyboardInterrupt
    if exitcode != 0:
        raise LabError(_failure(spec, exitcode, directory))


def _failure(spec, exitcode, directory):
    """What the lab says when a run failed: the one-line message its train.log ends with, or
    where to read the traceback."""
    log = directory / "train.log"
    if exitcode == LAB_ERROR_EXIT:
        return log.read_text().splitlines()[-1]
    return f"run {spec.name} failed (exit code {exitcode}); the traceback is in {log}"


def _worker(spec, out, threads):
    """One run in its own process: train it, resume it, or find it finished. Its log, and what
    went wrong if anything did, go to out/train.log."""
    from tinyres.errors import UserError
    from tinyres.train import TrainingDiverged

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "train.log").open("a") as log_file:
        try:
            _train(spec, out, threads, lambda message: print(message, file=log_file, flush=True))
        except KeyboardInterrupt:
            raise SystemExit(130)
        except (LabError, UserError, TrainingDiverged) as err:   # damaged data, a run
            print(f"{spec.name}: {err}", file=log_file)              # directory in use, ...
            raise SystemExit(LAB_ERROR_EXIT)
        except Exception:
            traceback.print_exc(file=log_file)
            raise SystemExit(1)


def _epochs_done(directories):
    return sum(len(read_metrics(d / "metrics.csv")) for d in directories)


def _train(spec, out, threads, log):
    import tinyres
    from tinyres.train import Trainer

    if threads:
        tinyres.set_num_threads(threads)
    wanted = spec.config(out)
    if (out / "checkpoint.npz").is_file():
        trainer = Trainer.resume(out, show_progress=False, log=log)
        _check_same_settings(trainer.config, wanted, out)
    else:
        trainer = Trainer(wanted, show_progress=False, log=log)
    trainer.fit()


def _check_same_settings(found, wanted, out):
    found, wanted = dataclasses.asdict(found), dataclasses.asdict(wanted)
    different = {k: (found[k], wanted[k]) for k in wanted if k != "out" and found[k] != wanted[k]}
    if different:
        what = ", ".join(f"{k} {a!r} (asked {b!r})" for k, (a, b) in different.items())
        raise LabError(f"{out} holds a run with other settings: {what}. Delete that directory "
                       f"to train it again, or give the lab another --out")


def started_runs(specs, root):
    """{spec: directory} of the specs whose run under `root` has a checkpoint (at least one
    epoch, or a Ctrl-C), for a lab's --report-only: nothing is trained. A run with other
    settings is an error, as for training."""
    from tinyres.train.trainer import read_run_config

    found = {}
    for spec in specs:
        directory = Path(root) / spec.name
        if (directory / "checkpoint.npz").is_file():
            config, _ = read_run_config(directory / "checkpoint.npz")
            _check_same_settings(config, spec.config(directory), directory)
            found[spec] = directory
    return found


def load_run(directory):
    """A finished run's curves: {"steps": iterations.csv rows, "epochs": metrics.csv rows,
    "config": its settings}."""
    directory = Path(directory)
    from tinyres import load
    state = load(directory / "checkpoint.npz")
    return {"steps": read_metrics(directory / "iterations.csv"),
            "epochs": read_metrics(directory / "metrics.csv"),
            "config": json.loads(str(state["config"]))}
