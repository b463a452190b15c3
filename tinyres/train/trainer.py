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

Under `mpiexec -n N` the same Trainer runs on every rank, data-parallel (tinyres.distributed):
each rank trains on its slice of every batch, the gradients are averaged, rank 0 alone prints and
writes the run directory; resume with the same N.
"""
import contextlib
import dataclasses
import json
import signal
import sys
import threading
import time
from pathlib import Path

from tqdm import tqdm

import tinyres
from tinyres import backend
from tinyres.kernels.memory import keep_freed_memory
from tinyres.data import (CIFAR10, DataLoader, DatasetError, PerPixelMeanSubtraction,
                          RandomCrop, RandomHorizontalFlip, Compose, Normalize, bundled_sample)
from tinyres.data.cifar import content_sha256
from tinyres.distributed import (DataParallel, DistributedError, ShardedLoader, SingleProcess,
                                 check_ranks_agree, convert_sync_batchnorm, get_communicator,
                                 shard_dataset)
from tinyres.errors import UserError
from tinyres.serialization import CheckpointError
from tinyres.models import TRAINING_LR, get_model
from tinyres.optim import SGD, paper_schedule
from tinyres.train.checkpoint import (CHECKPOINT, count_tensors, first_few, load_model_state,
                                      non_finite_tensors, read_run_checkpoint)
from tinyres.train.curves import plot_run
from tinyres.train.loop import (TrainingDiverged, epoch_statistics, epoch_sums, evaluate,
                                train_epoch)
from tinyres.train.metrics import (append_iterations, append_metrics, truncate_iterations,
                                   truncate_metrics)

EXPLODING_FACTOR, EXPLODING_STEPS = 10, 5     # flag a loss 10x its first value, 5 steps running


@dataclasses.dataclass
class TrainConfig:
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


def load_cifar(data, train, download=False):
    """The CIFAR-10 split to use: `data` if given ('sample' for the bundled sample; a folder is
    downloaded into only with `download`); otherwise the full set from the cache when it is
    there, else the bundled sample (works offline)."""
    if data == "sample":
        return bundled_sample(train)
    if data is not None:
        return CIFAR10(data, train=train, download=download)
    try:
        return CIFAR10(None, train=train, download=False)
    except DatasetError:
        return bundled_sample(train)


def read_run_config(path, state=None):
    """(TrainConfig, progress dict) of the run checkpoint at `path` (read and checked, see
    checkpoint.py, unless its `state` is given)."""
    state = read_run_checkpoint(path) if state is None else state
    settings = json.loads(str(state["config"]))
    known = {field.name for field in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise CheckpointError(f"{path} was written by another version of tinyres (settings "
                              f"{', '.join(unknown)} are unknown to this one); use that version")
    return TrainConfig(**settings), state["progress"]


def _transforms(config, train_set):
    normalise = (PerPixelMeanSubtraction.from_dataset(train_set) if config.normalize == "pixel"
                 else Normalize())
    return Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), normalise]), normalise


class Trainer:
    """Everything a run needs, built from a TrainConfig; `fit()` trains to the last epoch."""

    def __init__(self, config, show_progress=True, log=print, comm=None):
        if config.normalize not in ("channel", "pixel"):
            raise ValueError(f"normalize must be 'channel' or 'pixel', got {config.normalize!r}")
        self.comm = get_communicator() if comm is None else comm   # SingleProcess w/o mpiexec
        self.is_root = self.comm.rank == 0                 # rank 0 alone prints and writes files
        if config.lr is None:
            config.lr = TRAINING_LR.get(config.model, 0.1)
        self.config, self.show_progress = config, show_progress and self.is_root
        self.log = log if self.is_root else (lambda *args, **kwargs: None)
        self.out = Path(config.out)
        self.device = backend.default_device()

        train_set = load_cifar(config.data, True, config.download)
        self.test_set = load_cifar(config.data, False, config.download)
        unverified = sorted(set(getattr(train_set, "unverified", []))
                            | set(getattr(self.test_set, "unverified", [])))
        if unverified:
            self.log(f"note: {', '.join(unverified)} in {config.data} could not be verified (no "
                     f"SHA256SUMS lists them and they are not the official CIFAR-10 files); "
                     f"they are used as they are")
        if config.limit_train is not None:
            if config.limit_train > len(train_set.labels):
                raise UserError(f"--limit-train {config.limit_train}: the training set "
                                f"({train_set.source}) has only {len(train_set.labels)} images")
            train_set = _first(train_set, config.limit_train)
        if len(train_set.labels) < config.batch_size:
            raise UserError(f"--batch-size {config.batch_size}: the training set has "
                            f"{len(train_set.labels)} images, fewer than one batch; use a "
                            f"--batch-size of at most {len(train_set.labels)}")
        self.train_set = train_set
        train_transform, test_transform = _transforms(config, train_set)
        if self.comm.size == 1:
            self.train_loader = DataLoader(train_set, config.batch_size, shuffle=True,
                                           drop_last=True, seed=config.seed,
                                           transform=train_transform)
            self.test_loader = DataLoader(self.test_set, 500, transform=test_transform)
        else:                                # this rank's slice of each batch and of the test set
            check_ranks_agree(self.comm, {"settings": config.to_json(),
                                          "training data": content_sha256(train_set.images,
                                                                          train_set.labels),
                                          "test data": content_sha256(self.test_set.images,
                                                                      self.test_set.labels)},
                              "the run's settings and data")
            self.train_loader = ShardedLoader(train_set, config.batch_size, self.comm.rank,
                                              self.comm.size, shuffle=True, drop_last=True,
                                              seed=config.seed, transform=train_transform)
            self.test_loader = DataLoader(shard_dataset(self.test_set, self.comm.rank,
                                                        self.comm.size), 500,
                                          transform=test_transform)

        tinyres.manual_seed(config.seed)
        self.model = get_model(config.model, num_classes=len(train_set.classes)).to(self.device)
        if config.sync_bn and self.comm.uses_mpi:       # (fit() refuses sync_bn without MPI)
            convert_sync_batchnorm(self.model, self.comm)
        # Data-parallel: rank 0's parameters on every rank, gradients averaged at every step.
        self.parallel = DataParallel(self.model, self.comm) if self.comm.size > 1 else None
        self.optimizer = SGD(self.model.parameters(), lr=config.lr, momentum=config.momentum,
                             weight_decay=config.weight_decay)
        self.total_iterations = config.epochs * len(self.train_loader)
        self.scheduler = paper_schedule(self.optimizer, self.total_iterations,
                                        warmup_iterations=config.warmup_iterations)
        self.epochs_done, self.iteration, self.last_finite_loss = 0, 0, None
        self.sums = epoch_sums()            # of the epoch in progress (restored on a resume)
        self.first_loss, self.high_steps, self.flagged = None, 0, False
        self.saved_at = None                # (epochs done, iteration) of the checkpoint on disk
        self.unsaved_steps = []             # iterations.csv rows since the checkpoint
        self._stop_requested = False

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self):
        return {"config": self.config.to_json(), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "loader": self.train_loader.state_dict(), "rng": tinyres.nn.init.get_rng_state(),
                "progress": {"epochs_done": self.epochs_done, "iteration": self.iteration,
                             "last_finite_loss": self.last_finite_loss,
                             "first_loss": self.first_loss, "epoch_sums": dict(self.sums),
                             "ranks": self.comm.size}}

    def save_checkpoint(self):
        """Write checkpoint.npz (rank 0), after checking that the state is finite."""
        self.check_state_is_finite()
        if self.is_root:                    # every rank holds the same state: rank 0 writes it
            self.out.mkdir(parents=True, exist_ok=True)
            append_iterations(self.out / "iterations.csv", self.unsaved_steps)
            self.unsaved_steps = []
            tinyres.save(self.state_dict(), self.out / CHECKPOINT)
        self.saved_at = (self.epochs_done, self.iteration, self.last_finite_loss)
        self.comm.barrier()                 # (under MPI the others wait until it is written)

    def check_state_is_finite(self):
        """TrainingDiverged, naming the tensors, if a weight, buffer or momentum is NaN or inf."""
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
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
        if self.first_loss is not None and loss is not None and \
                loss > EXPLODING_FACTOR * self.first_loss:
            return (f"the last checkpoint, {self.out / CHECKPOINT} ({where}), is kept and finite, "
                    f"but its loss had already exploded ({loss:.4g}, first {self.first_loss:.4g}): "
                    f"resuming it would likely diverge again; start again with a lower --lr")
        return f"the last good checkpoint, {self.out / CHECKPOINT} ({where}), is kept"

    @classmethod
    def resume(cls, out, show_progress=True, log=print, comm=None, epochs=None, checkpoint=None):
        """A Trainer restored from a checkpoint, ready to continue: `checkpoint` (a file) if
        given, else `out`/checkpoint.npz. Under MPI every rank reads it (so it must be visible to
        all), and the job must have the number of ranks that made it.

        `epochs` other than the run's own re-plans the schedule for that many epochs (more than
        are done): extending a finished run, or shortening an unfinished one."""
        path = Path(checkpoint) if checkpoint is not None else Path(out) / CHECKPOINT
        if not path.is_file():
            raise UserError(f"--resume: no checkpoint at {path}; start the run without --resume")
        state = read_run_checkpoint(path)
        config, progress = read_run_config(path, state)
        config.out = str(out)
        epochs_done = int(progress["epochs_done"])
        comm = get_communicator() if comm is None else comm
        _check_same_ranks(int(progress.get("ranks", 1)), comm.size, path)
        planned = config.epochs
        if epochs is not None and epochs != planned:
            if epochs <= epochs_done:
                raise UserError(f"--resume --epochs {epochs}: {out} has already trained "
                                f"{epochs_done} epochs; ask for more than {epochs_done} to "
                                f"train on, or leave --epochs out")
            config.epochs = epochs
        trainer = cls(config, show_progress, log, comm)
        load_model_state(trainer.model, state["model"], path, config.model)
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.scheduler.load_state_dict(state["scheduler"])
        trainer.train_loader.load_state_dict(state["loader"])
        tinyres.nn.init.set_rng_state(state["rng"])
        trainer.epochs_done, trainer.iteration = epochs_done, int(progress["iteration"])
        trainer.last_finite_loss = progress["last_finite_loss"]
        trainer.first_loss = progress.get("first_loss")
        trainer.sums.update(progress.get("epoch_sums") or {})
        trainer.saved_at = (trainer.epochs_done, trainer.iteration, trainer.last_finite_loss)
        if config.epochs != planned:
            trainer.log(trainer.describe_replanning(planned))
        return trainer

    @classmethod
    def for_evaluation(cls, checkpoint, data=None):
        """A one-process Trainer holding the model of the checkpoint file `checkpoint`, with its
        test set (from `data` if given, else the run's own)."""
        state = read_run_checkpoint(checkpoint)
        config, _ = read_run_config(checkpoint, state)
        config.data = data if data is not None else config.data
        config.sync_bn = False                              # evaluation needs no MPI
        trainer = cls(config, show_progress=False, log=lambda *args: None,
                      comm=SingleProcess())
        load_model_state(trainer.model, state["model"], checkpoint, config.model)
        return trainer

    def describe_replanning(self, planned):
        """The log line of a run whose number of epochs changed on --resume."""
        schedule = getattr(self.scheduler, "schedule", self.scheduler)      # under a warm-up
        first, second = schedule.milestones
        lr = self.config.lr
        return (f"{'extending' if self.config.epochs > planned else 'shortening'} the run from "
                f"{planned} to {self.config.epochs} epochs: the learning-rate schedule is "
                f"re-planned for {self.total_iterations} iterations (lr {lr:g} until iteration "
                f"{first}, {lr / 10:g} until {second}, then {lr / 100:g}); we are at iteration "
                f"{self.iteration}, so the lr is now {self.scheduler.get_last_lr()[0]:g}. "
                f"metrics.csv states the plan of each epoch (planned_epochs)")

    # -- the run --------------------------------------------------------------------------------
    def fit(self):
        """Train until config.epochs; returns the last epoch's metrics row.

        Ctrl-C saves a checkpoint at the current step and re-raises KeyboardInterrupt; a NaN/inf
        loss raises TrainingDiverged and leaves the last good (end-of-epoch) checkpoint as it was.
        """
        config, row = self.config, None
        self._check_sync_bn()
        keep_freed_memory()        # the allocator keeps freed blocks: no page faults per step
                                   # (process-wide, so here, where training starts)
        if self.is_root:
            self.out.mkdir(parents=True, exist_ok=True)
            truncate_metrics(self.out / "metrics.csv", self.epochs_done)   # rows after checkpoint
            truncate_iterations(self.out / "iterations.csv", self.iteration)
        ranks = "" if self.comm.size == 1 else (
            f"; {self.comm.size} MPI ranks x {config.batch_size // self.comm.size} images per "
            f"batch, batch norm {'synchronised' if config.sync_bn else 'per rank'}")
        self.log(f"training {config.model} on {self.train_set.source}; testing on "
                 f"{self.test_set.source}; {len(self.train_loader)} iterations per epoch, "
                 f"{self.total_iterations} in all; backend {backend.get_backend()}{ranks}; "
                 f"output in {self.out}")
        with self._ctrl_c_between_steps():
            while self.epochs_done < config.epochs:
                row = self._one_epoch()
        return row

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
        config = self.config
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
               "planned_epochs": config.epochs}
        self.sums = epoch_sums()            # the next epoch starts its own sums
        if self.is_root:
            append_metrics(self.out / "metrics.csv", row)
        self.save_checkpoint()
        if self.is_root:
            plot_run(self.out, self.out / "curves.png",
                     f"{config.model}: {data_description(self.train_set, self.test_set)}")
        self.log(f"epoch {self.epochs_done}/{config.epochs}: train loss {row['train_loss']:.3f}, "
                 f"train error {row['train_error']:.3f}, test accuracy "
                 f"{row['test_accuracy']:.3f}, {row['images_per_second']:.0f} images/s, "
                 f"{row['epoch_seconds']:.1f} s")
        return row

    def _track(self, step):
        self.iteration, self.last_finite_loss = step["iteration"], step["train_loss"]
        self.unsaved_steps.append(step)
        self._watch_for_explosion(self.iteration, self.last_finite_loss)
        stop = self._stop_requested
        if self.parallel is not None:       # all ranks stop at the same step, or none does
            stop = self.parallel.any_rank(stop)
        if stop:
            raise KeyboardInterrupt

    def _watch_for_explosion(self, iteration, loss):
        """Flag, once, a loss that stays far above the run's first loss: it is diverging even
        while it is still finite."""
        if self.first_loss is None:
            self.first_loss = loss
        self.high_steps = self.high_steps + 1 if loss > EXPLODING_FACTOR * self.first_loss else 0
        if self.high_steps == EXPLODING_STEPS and not self.flagged and self.is_root:
            self.flagged = True
            tqdm.write(f"warning: the loss is exploding: {loss:.4g} at step {iteration}, above "
                     f"{EXPLODING_FACTOR}x its first value ({self.first_loss:.4g}) for "
                     f"{EXPLODING_STEPS} steps in a row; the learning rate ({self.config.lr:g}) "
                     f"is likely too high: stop with Ctrl-C and try a lower --lr",
                     file=sys.stderr)

    @contextlib.contextmanager
    def _ctrl_c_between_steps(self):
        """While training, Ctrl-C only asks to stop; the stop happens between two steps (in
        _track), so a checkpoint never holds a half-applied update."""
        self._stop_requested = False
        if threading.current_thread() is not threading.main_thread():
            yield                                  # signals reach the main thread only
            return
        previous = signal.signal(signal.SIGINT,
                                 lambda signum, frame: setattr(self, "_stop_requested", True))
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


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


def data_description(train_set, test_set):
    """What a run trained and tested on, short enough for a figure's title."""
    return f"{train_set.name}, {len(train_set.labels):,} train / {len(test_set.labels):,} test images"


def _first(dataset, count):
    """The first `count` images of a data set (a view, for short runs)."""
    subset = type(dataset).__new__(type(dataset))
    vars(subset).update(vars(dataset))
    subset.images, subset.labels = dataset.images[:count], dataset.labels[:count]
    subset.source = f"{dataset.source}, first {len(subset.labels)}"
    return subset


__all__ = ["TrainConfig", "Trainer", "TrainingDiverged", "load_cifar", "evaluate"]
