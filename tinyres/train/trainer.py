"""Floor 7: a whole training run with the paper's recipe, checkpointed and resumable.

The recipe of He et al. (2015), section 4.2, for CIFAR-10, scaled to the epochs asked:
    SGD, momentum 0.9, weight decay 1e-4 (on every parameter), batch 128 (last partial batch
    dropped), lr 0.1 divided by 10 at 50 % and 75 % of all iterations (the paper's 32k and 48k of
    64k), stepped per iteration; 4-pixel zero padding, random 32x32 crop, random horizontal flip;
    per-channel normalisation (or the paper's per-pixel mean subtraction); He init.

A run directory holds:
    checkpoint.npz   model + optimizer + schedule + loader position + progress (with the partial
                     sums of an interrupted epoch), after every epoch and on Ctrl-C, written
                     atomically (a crash never leaves half a file) and only when every weight and
                     buffer is finite (see checkpoint.py)
    metrics.csv      one row per epoch
    iterations.csv   one row per training step (its batch's loss and error, its lr)
    curves.png       training error at every iteration, test error at every epoch, lr changes
                     marked (the paper's Fig. 6 in small; curves.py)
Resuming from checkpoint.npz continues with exactly the batches, learning rates and momentum the
uninterrupted run would have used, so on the CPU it reproduces its numbers, metrics.csv included.
Resuming with more epochs than planned extends the run: the schedule is re-planned for the new
total (its milestones move to 50 % and 75 % of it), which the log and metrics.csv state.

Watching for divergence: a NaN or infinite loss stops the run at once; a loss that stays far
above its starting value (EXPLODING_FACTOR x, EXPLODING_STEPS steps in a row) is flagged with the
step and a suggestion; a state with a NaN or inf weight or buffer (batch norm's running variance
can overflow while the loss is still finite) stops the run at the end of the epoch, before
anything is written.

The Trainer composes small parts, each in its own file: the data (data.py: both splits from one
resolved source, pinned by a digest), the recipe (recipe.py: model, SGD, schedule), the run
directory (run_directory.py: checked before any work, locked for the life of the training), the
watches (watch.py: an exploding loss, Ctrl-C between steps), the checkpoint's checks
(checkpoint.py), the metrics files (metrics.py), what the run says and draws (report.py). A write
that fails (a full disk) ends the run with one line saying which checkpoint is kept.

Under `mpiexec -n N` the same Trainer runs on every rank, data-parallel (tinyres.distributed):
each rank trains on its slice of every batch, the gradients are averaged, rank 0 alone prints and
writes the run directory; resume with the same N.
"""
import contextlib
import dataclasses
import json
import math
import time
from pathlib import Path

import tinyres
from tinyres import backend
from tinyres.distributed import DistributedError, get_communicator
from tinyres.errors import UserError
from tinyres.kernels.memory import keep_freed_memory
from tinyres.models import TRAINING_LR, list_models
from tinyres.serialization import CheckpointError
from tinyres.train.checkpoint import (CHECKPOINT, count_tensors, first_few, load_model_state,
                                      non_finite_tensors, read_run_checkpoint)
from tinyres.train.data import RunData, loaders
from tinyres.train.loop import (TrainingDiverged, epoch_statistics, epoch_sums, evaluate,
                                train_epoch)
from tinyres.train.metrics import (append_iterations, append_metrics, read_metrics,
                                   truncate_iterations, truncate_metrics)
from tinyres.train import report
from tinyres.train.recipe import Recipe
from tinyres.train.run_directory import RunDirectoryError, claim_run_directory
from tinyres.train.watch import ExplosionWatch, StopRequest


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The settings of a run: a value, never changed in place (dataclasses.replace makes a
    changed copy)."""
    model: str = "resnet20"
    epochs: int = 5                     # about a minute on 2 cores on the bundled sample
    batch_size: int = 128
    lr: float | None = None             # None: the model's recipe (0.1 for the ResNets)
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iterations: int = 0          # the paper's ResNet-110 warm-up: lr 0.01 for ~400 its
    normalize: str = "channel"          # "channel" (mean/std per channel) or "pixel" (paper)
    data: str | None = None             # a CIFAR-10 folder; None: the cache, else the sample
    limit_train: int | None = None      # use only the first N training images (quick runs)
    seed: int = 0
    out: str = "runs/resnet20"
    sync_bn: bool = False               # under MPI: batch norm statistics over all ranks
    download: bool = False              # fetch CIFAR-10 into `data` if it is not there

    def to_json(self):
        return json.dumps(dataclasses.asdict(self))

    def problems(self):
        """What is wrong with these settings, in words ([] when nothing is)."""
        def whole(value, low):
            return isinstance(value, int) and not isinstance(value, bool) and value >= low

        def number(value, low, high=math.inf):
            return isinstance(value, (int, float)) and not isinstance(value, bool) and \
                math.isfinite(value) and low <= value < high
        checks = {"model": self.model in list_models(), "epochs": whole(self.epochs, 1),
                  "batch_size": whole(self.batch_size, 1),
                  "lr": self.lr is None or (number(self.lr, 0) and self.lr > 0),
                  "momentum": number(self.momentum, 0, 1),
                  "weight_decay": number(self.weight_decay, 0),
                  "warmup_iterations": whole(self.warmup_iterations, 0),
                  "normalize": self.normalize in ("channel", "pixel"),
                  "data": self.data is None or isinstance(self.data, str),
                  "limit_train": self.limit_train is None or whole(self.limit_train, 1),
                  "seed": whole(self.seed, 0), "out": isinstance(self.out, str),
                  "sync_bn": isinstance(self.sync_bn, bool),
                  "download": isinstance(self.download, bool)}
        return [f"{name} {getattr(self, name)!r}" for name, good in checks.items() if not good]


def read_run_config(path, state=None):
    """(TrainConfig, progress dict) of the run checkpoint at `path` (read and checked, see
    checkpoint.py, unless its `state` is given)."""
    state = read_run_checkpoint(path) if state is None else state
    try:
        settings = json.loads(str(state["config"]))
    except ValueError as err:
        raise CheckpointError(f"{path}: its settings are not readable JSON ({err}); the file is "
                              f"damaged: use an intact copy of the run") from None
    progress = state["progress"]
    counts = [progress.get(key) for key in ("epochs_done", "iteration")] \
        if isinstance(progress, dict) else []
    if not isinstance(settings, dict) or not (
            counts and all(_is_count(n) for n in counts)):
        raise CheckpointError(f"{path}: its settings or progress are not what `tinyres train` "
                              f"writes; the file is damaged: use an intact copy of the run")
    known = {field.name for field in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise CheckpointError(f"{path} was written by another version of tinyres (settings "
                              f"{', '.join(unknown)} are unknown to this one); use that version")
    config = TrainConfig(**settings)
    problems = config.problems()
    if problems:
        raise CheckpointError(f"{path} holds settings no run can have ({', '.join(problems)}); "
                              f"the file is damaged or was edited: use an intact copy of the run")
    return config, progress


def _is_count(value):
    """A whole number >= 0 (a Python int, or the 0-d array an older checkpoint may hold)."""
    try:
        return int(value) == value and int(value) >= 0
    except (TypeError, ValueError, OverflowError):
        return False


class Trainer:
    """Everything a run needs, built from a TrainConfig; `fit()` trains to the last epoch.
    `data` (a RunData of this config) is loaded from the config where it is not given.

    Its parts: `data` (RunData: both splits, their source and digests), the loaders, `recipe`
    (model, optimizer, schedule; `model`, `optimizer`, `scheduler` and `parallel` name its
    parts), the counters of the run's progress, `watch` (an exploding loss), `stop` (Ctrl-C
    between steps). The config is a value: the Trainer keeps its own copy, with the model's lr
    filled in."""

    def __init__(self, config, show_progress=True, log=print, comm=None, data=None):
        if config.lr is None:
            config = dataclasses.replace(config, lr=TRAINING_LR.get(config.model, 0.1))
        if config.problems():
            raise ValueError(f"TrainConfig: {', '.join(config.problems())} are not valid")
        self.comm = get_communicator() if comm is None else comm   # SingleProcess w/o mpiexec
        self.is_root = self.comm.rank == 0                 # rank 0 alone prints and writes files
        self.config, self.show_progress = config, show_progress and self.is_root
        self.log = log if self.is_root else (lambda *args, **kwargs: None)
        self.out, self.device = Path(config.out), backend.default_device()
        self.data = RunData.load(config) if data is None else data
        for note in self.data.notes:
            self.log(note)
        self.train_loader, self.test_loader = loaders(config, self.data, self.comm)
        self.recipe = Recipe.build(config, len(self.data.train_set.classes), self.device,
                                   self.comm, len(self.train_loader))
        self.epochs_done, self.iteration, self.last_finite_loss = 0, 0, None
        self.sums = epoch_sums()            # of the epoch in progress (restored on a resume)
        self.saved_at = None                # (epochs done, iteration) of the checkpoint on disk
        self.unsaved_steps = []             # iterations.csv rows since the checkpoint
        self.run_on_disk = False            # whether `out` holds this run already
        self.watch = ExplosionWatch(config.lr, speaks=self.is_root)
        self.stop = StopRequest()

    # the recipe's parts, by the names the loop and a learner use
    model = property(lambda self: self.recipe.model)
    optimizer = property(lambda self: self.recipe.optimizer)
    scheduler = property(lambda self: self.recipe.scheduler)
    parallel = property(lambda self: self.recipe.parallel)
    total_iterations = property(lambda self: self.recipe.total_iterations)
    train_set = property(lambda self: self.data.train_set)
    test_set = property(lambda self: self.data.test_set)

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self):
        return {"config": self.config.to_json(), **self.recipe.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "loader": self.train_loader.state_dict(), "rng": tinyres.nn.init.get_rng_state(),
                "progress": {"epochs_done": self.epochs_done, "iteration": self.iteration,
                             "last_finite_loss": self.last_finite_loss,
                             "first_loss": self.watch.first_loss, "epoch_sums": dict(self.sums),
                             "ranks": self.comm.size, "data": self.data.record}}

    def save_checkpoint(self):
        """Write checkpoint.npz (rank 0), after checking that the state is finite."""
        self.check_state_is_finite()
        if self.is_root:                    # every rank holds the same state: rank 0 writes it
            with self._writing(self.out / CHECKPOINT):
                self.out.mkdir(parents=True, exist_ok=True)
                append_iterations(self.out / "iterations.csv", self.unsaved_steps)
                self.unsaved_steps = []
                tinyres.save(self.state_dict(), self.out / CHECKPOINT)
        self.saved_at = (self.epochs_done, self.iteration, self.last_finite_loss)
        self.run_on_disk = True
        self.comm.barrier()                 # (under MPI the others wait until it is written)

    def _writing(self, path):
        """A failed write (a full disk, a lost mount) as one line that says what is kept."""
        return _explained_write_errors(path, self.last_good_checkpoint)

    def check_state_is_finite(self):
        """TrainingDiverged, naming the tensors, if a weight, buffer or momentum is NaN or inf."""
        state = self.recipe.state_dict()
        bad = non_finite_tensors(state)
        if bad:
            raise TrainingDiverged(
                f"at step {self.iteration} (epoch {self.epochs_done + 1}) {len(bad)} of "
                f"{count_tensors(state)} tensors of the model and optimizer hold NaN or inf "
                f"({first_few(bad)}), though the loss was still finite "
                f"({self.last_finite_loss}); this state was not saved. Try a lower --lr (it is "
                f"{self.config.lr}); {self.last_good_checkpoint()}")

    def last_good_checkpoint(self):
        """Which checkpoint on disk a diverged run leaves, in words."""
        if self.saved_at is None:
            return "no checkpoint of this run was written (it diverged before its first save)"
        epochs, iteration, loss = self.saved_at
        where = (f"end of epoch {epochs}" if epochs * len(self.train_loader) == iteration
                 else f"step {iteration}, in epoch {epochs + 1}")
        if self.watch.exploded(loss):
            return (f"the last checkpoint, {self.out / CHECKPOINT} ({where}), is kept and finite, "
                    f"but its loss had already exploded ({loss:.4g}, first "
                    f"{self.watch.first_loss:.4g}): resuming it would likely diverge again; "
                    f"start again with a lower --lr")
        return f"the last good checkpoint, {self.out / CHECKPOINT} ({where}), is kept"

    @classmethod
    def resume(cls, out, show_progress=True, log=print, comm=None, epochs=None, checkpoint=None,
               verify=False):
        """A Trainer restored from a checkpoint, ready to continue: `checkpoint` (a file) if
        given, else `out`/checkpoint.npz. Under MPI every rank reads it (so it must be visible to
        all), and the job must have the number of ranks that made it. It trains on the data the
        run trained on (see data.py; `verify`: every data file hashed again).

        `epochs` other than the run's own re-plans the schedule for that many epochs (more than
        are done): extending a finished run, or shortening an unfinished one."""
        path = Path(checkpoint) if checkpoint is not None else Path(out) / CHECKPOINT
        if not path.is_file():
            raise UserError(f"--resume: no checkpoint at {path}; start the run without --resume")
        state = read_run_checkpoint(path)
        config, progress = read_run_config(path, state)
        comm = get_communicator() if comm is None else comm
        _check_same_ranks(int(progress.get("ranks", 1)), comm.size, path)
        planned, epochs_done = config.epochs, int(progress["epochs_done"])
        if epochs is not None and epochs != planned and epochs <= epochs_done:
            raise UserError(f"--resume --epochs {epochs}: {out} has already trained "
                            f"{epochs_done} epochs; ask for more than {epochs_done} to "
                            f"train on, or leave --epochs out")
        config = dataclasses.replace(config, out=str(out), epochs=epochs or planned)
        data = RunData.load(config, pinned=progress.get("data"), verify=verify)
        trainer = cls(config, show_progress, log, comm, data)
        trainer.restore(state, path)
        if config.epochs != planned:
            trainer.log(report.replanning(trainer, planned))
        return trainer

    def restore(self, state, path):
        """Continue from a checkpoint's state (read by read_run_checkpoint from `path`)."""
        progress = state["progress"]
        load_model_state(self.model, state["model"], path, self.config.model)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.train_loader.load_state_dict(state["loader"])
        tinyres.nn.init.set_rng_state(state["rng"])
        self.epochs_done, self.iteration = int(progress["epochs_done"]), int(progress["iteration"])
        self.last_finite_loss = progress["last_finite_loss"]
        self.watch.first_loss = progress.get("first_loss")
        self.sums.update(progress.get("epoch_sums") or {})
        self.saved_at = (self.epochs_done, self.iteration, self.last_finite_loss)
        self.run_on_disk = True

    # -- the run --------------------------------------------------------------------------------
    def fit(self, overwrite=False):
        """Train until config.epochs; returns the last epoch's metrics row.

        The run directory is claimed first (run_directory.py: locked for the whole training;
        `overwrite` replaces a run there). Ctrl-C saves a checkpoint at the current step and
        re-raises KeyboardInterrupt; a NaN/inf loss raises TrainingDiverged and leaves the last
        good (end-of-epoch) checkpoint as it was.
        """
        self._check_sync_bn()
        if self.run_on_disk and self.is_root:   # before anything is written
            for name in ("metrics.csv", "iterations.csv"):
                read_metrics(self.out / name)
        with self._claimed(overwrite):
            keep_freed_memory()    # the allocator keeps freed blocks: no page faults per step
                                   # (process-wide, so here, where training starts)
            if self.is_root:
                with self._writing(self.out / "metrics.csv"):
                    truncate_metrics(self.out / "metrics.csv", self.epochs_done)
                    truncate_iterations(self.out / "iterations.csv", self.iteration)
            self.log(report.starting(self))
            row = None
            with self.stop.between_steps():
                while self.epochs_done < self.config.epochs:
                    row = self._one_epoch()
            return row

    @contextlib.contextmanager
    def _claimed(self, overwrite):
        """claim_run_directory on rank 0, for the whole training; every rank learns whether it
        could."""
        with contextlib.ExitStack() as held:
            problem = None
            if self.is_root:
                try:
                    held.enter_context(claim_run_directory(self.out, resume=self.run_on_disk,
                                                           overwrite=overwrite))
                except RunDirectoryError as err:
                    problem = str(err)
            problem = self.comm.allgather(problem)[0]
            if problem:
                raise RunDirectoryError(problem)
            self.run_on_disk = True         # `out` holds this run from now on
            yield

    def _check_sync_bn(self):
        """Refuse what data-parallel training cannot do as asked (on every rank alike)."""
        if self.config.sync_bn and not self.comm.uses_mpi:
            raise DistributedError("--sync-bn synchronises batch norm across MPI ranks, but this "
                                   "process was not started by mpiexec: run `mpiexec -n N "
                                   "tinyres train --sync-bn ...`, or leave out --sync-bn")

    def _one_epoch(self):
        if self.train_loader.epoch > self.epochs_done:     # stopped after the epoch's last step:
            return self._end_of_epoch(epoch_statistics(self.sums, self.iteration))  # finish it
        try:
            stats = train_epoch(self.model, self.train_loader, self.optimizer, self.scheduler,
                                self.device, self.epochs_done, self.iteration,
                                self.last_finite_loss, self.show_progress, on_step=self._track,
                                parallel=self.parallel, sums=self.sums)
        except TrainingDiverged as err:
            raise TrainingDiverged(f"{err}; {self.last_good_checkpoint()}") from None
        except KeyboardInterrupt:
            if self.parallel is not None:   # every rank stopped here: save the ranks' mean stats
                self.parallel.average_buffers()
            self.save_checkpoint()
            self.log(f"interrupted at iteration {self.iteration}: checkpoint saved in "
                     f"{self.out / CHECKPOINT}; continue with --resume")
            raise
        return self._end_of_epoch(stats)

    def _end_of_epoch(self, stats):
        """Test, write the epoch's row and curves, save the checkpoint."""
        start = time.perf_counter()
        if self.parallel is not None:       # one model everywhere: average BN running statistics
            self.parallel.average_buffers()
        self.check_state_is_finite()        # before a row or a checkpoint records this epoch
        test = evaluate(self.model, self.test_loader, self.device,
                        num_classes=len(self.test_set.classes))
        if self.parallel is not None:       # each rank tested its part: sum to the whole set
            test = self.parallel.sum_evaluation(test)
        self.epochs_done += 1
        row = {"epoch": self.epochs_done, "iteration": stats["iteration"],
               "lr": self.scheduler.get_last_lr()[0], "train_loss": stats["train_loss"],
               "train_error": stats["train_error"], "test_loss": test["test_loss"],
               "test_error": 1 - test["test_accuracy"], "test_accuracy": test["test_accuracy"],
               "epoch_seconds": stats["seconds"] + time.perf_counter() - start,
               "images_per_second": stats["images"] / max(stats["seconds"], 1e-9),
               "planned_epochs": self.config.epochs}
        self.sums = epoch_sums()            # the next epoch starts its own sums
        if self.is_root:
            with self._writing(self.out / "metrics.csv"):
                append_metrics(self.out / "metrics.csv", row)
        self.save_checkpoint()
        if self.is_root:
            with self._writing(self.out / "curves.png"):
                report.draw_curves(self)
        self.log(report.epoch_done(self, row))
        return row

    def _track(self, step):
        self.iteration, self.last_finite_loss = step["iteration"], step["train_loss"]
        self.unsaved_steps.append(step)
        self.watch.step(self.iteration, self.last_finite_loss)
        stop = self.stop.requested
        if self.parallel is not None:       # all ranks stop at the same step, or none does
            stop = self.parallel.any_rank(stop)
        if stop:
            raise KeyboardInterrupt


class RunWriteError(UserError):
    """A file of the run could not be written (a full disk, a lost mount, permissions)."""


@contextlib.contextmanager
def _explained_write_errors(path, kept):
    """An OSError while writing `path` as a RunWriteError that says what is kept on disk."""
    try:
        yield
    except OSError as err:
        raise RunWriteError(f"cannot write {path}: {err.strerror or err}; {kept()}: free some "
                            f"space (or fix the folder) and continue with --resume") from None


def _check_same_ranks(checkpoint_ranks, ranks, path):
    """A run continues on the number of MPI ranks it was started with (each rank's share of every
    batch, and its augmentation, depend on it): explain a different number before anything
    else is checked."""
    if checkpoint_ranks != ranks:
        def job(n):
            return "one process (no mpiexec)" if n == 1 else f"{n} MPI ranks (mpiexec -n {n})"
        raise DistributedError(
            f"--resume: {path} was made by {job(checkpoint_ranks)}, this job runs on "
            f"{job(ranks)}; resume it on {job(checkpoint_ranks)}: each rank's share of every "
            f"batch depends on the number of ranks, so another number would not continue the "
            f"same run")


__all__ = ["TrainConfig", "Trainer", "TrainingDiverged", "evaluate", "read_run_config"]
