"""Floor 7: a whole training run with the paper's recipe, checkpointed and resumable.

The recipe of He et al. (2015), section 4.2, for CIFAR-10, scaled to the epochs asked:
    SGD, momentum 0.9, weight decay 1e-4 (on every parameter), batch 128 (last partial batch
    dropped), lr 0.1 divided by 10 at 50 % and 75 % of all iterations (the paper's 32k and 48k of
    64k), stepped per iteration; 4-pixel zero padding, random 32x32 crop, random horizontal flip;
    per-channel normalisation (or the paper's per-pixel mean subtraction); He init.

A run directory holds:
    checkpoint.npz   model + optimizer + schedule + loader position + progress, after every epoch
                     (and on Ctrl-C), written atomically: a crash never leaves half a file
    metrics.csv      one row per epoch
    iterations.csv   one row per training step (its batch's loss and error, its lr)
    curves.png       training error at every iteration, test error at every epoch, lr changes
                     marked (the paper's Fig. 6 in small; curves.py)
Resuming from checkpoint.npz continues with exactly the batches, learning rates and momentum the
uninterrupted run would have used, so on the CPU it reproduces its numbers.

Under `mpiexec -n N` the same Trainer runs on every rank, data-parallel (tinyres.distributed):
each rank trains on its slice of every batch, the gradients are averaged, rank 0 alone prints and
writes the run directory; resume with the same N.
"""
import contextlib
import dataclasses
import json
import signal
import threading
import time
from pathlib import Path

import tinyres
from tinyres import backend
from tinyres.data import (CIFAR10, DataLoader, DatasetError, PerPixelMeanSubtraction,
                          RandomCrop, RandomHorizontalFlip, Compose, Normalize, bundled_sample)
from tinyres.data.cifar import content_sha256
from tinyres.distributed import (DataParallel, DistributedError, ShardedLoader,
                                 check_ranks_agree, convert_sync_batchnorm, get_communicator,
                                 shard_dataset)
from tinyres.models import TRAINING_LR, get_model
from tinyres.optim import SGD, paper_schedule
from tinyres.train.loop import TrainingDiverged, evaluate, train_epoch
from tinyres.train.curves import plot_run
from tinyres.train.metrics import (append_iterations, append_metrics, truncate_iterations,
                                    truncate_metrics)

CHECKPOINT = "checkpoint.npz"


@dataclasses.dataclass
class TrainConfig:
    model: str = "resnet20"
    epochs: int = 2
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

    def to_json(self):
        return json.dumps(dataclasses.asdict(self))


def load_cifar(data, train):
    """The CIFAR-10 split to use: `data` if given ('sample' for the bundled sample); otherwise the
    full set from the cache when it is there, else the bundled sample (works offline)."""
    if data == "sample":
        return bundled_sample(train)
    if data is not None:
        return CIFAR10(data, train=train, download=True)
    try:
        return CIFAR10(None, train=train, download=False)
    except DatasetError:
        return bundled_sample(train)


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

        train_set, self.test_set = load_cifar(config.data, True), load_cifar(config.data, False)
        if config.limit_train:
            train_set = _first(train_set, config.limit_train)
        if len(train_set.labels) < config.batch_size:
            raise ValueError(f"the training set has {len(train_set.labels)} images, fewer than "
                             f"one batch of {config.batch_size}")
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
        self.checkpoint_ranks = self.comm.size       # resume() sets the N that made the checkpoint
        self.unsaved_steps = []                      # iterations.csv rows since the checkpoint
        self._stop_requested = False

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self):
        return {"config": self.config.to_json(), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "loader": self.train_loader.state_dict(), "rng": tinyres.nn.init.get_rng_state(),
                "progress": {"epochs_done": self.epochs_done, "iteration": self.iteration,
                             "last_finite_loss": self.last_finite_loss,
                             "ranks": self.comm.size}}

    def save_checkpoint(self):
        if self.is_root:                    # every rank holds the same state: rank 0 writes it
            self.out.mkdir(parents=True, exist_ok=True)
            append_iterations(self.out / "iterations.csv", self.unsaved_steps)
            self.unsaved_steps = []
            tinyres.save(self.state_dict(), self.out / CHECKPOINT)
        self.comm.barrier()                 # (under MPI the others wait until it is written)

    @classmethod
    def resume(cls, out, show_progress=True, log=print, comm=None):
        """A Trainer restored from `out`/checkpoint.npz, ready to continue (under MPI, every rank
        reads the checkpoint, so `out` must be visible to all; with the N that made it)."""
        path = Path(out) / CHECKPOINT
        if not path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {path}")
        state = tinyres.load(path)
        config = TrainConfig(**json.loads(str(state["config"])))
        config.out = str(out)
        trainer = cls(config, show_progress, log, comm)
        trainer.model.load_state_dict(state["model"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.scheduler.load_state_dict(state["scheduler"])
        trainer.train_loader.load_state_dict(state["loader"])
        tinyres.nn.init.set_rng_state(state["rng"])
        progress = state["progress"]
        trainer.epochs_done, trainer.iteration = int(progress["epochs_done"]), int(
            progress["iteration"])
        trainer.last_finite_loss = progress["last_finite_loss"]
        trainer.checkpoint_ranks = int(progress.get("ranks", 1))
        return trainer

    # -- the run --------------------------------------------------------------------------------
    def fit(self):
        """Train until config.epochs; returns the last epoch's metrics row.

        Ctrl-C saves a checkpoint at the current step and re-raises KeyboardInterrupt; a NaN/inf
        loss raises TrainingDiverged and leaves the last good (end-of-epoch) checkpoint as it was.
        """
        config, row = self.config, None
        self._check_ranks()
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

    def _check_ranks(self):
        """Refuse what data-parallel training cannot do as asked (on every rank alike)."""
        if self.checkpoint_ranks != self.comm.size:
            n = self.checkpoint_ranks
            raise DistributedError(f"--resume: the checkpoint in {self.out} was made by {n} "
                                   f"rank{'s' if n > 1 else ''}, this job has {self.comm.size}; "
                                   f"resume with the same number (each rank's slice of every "
                                   f"batch depends on it)")
        if self.config.sync_bn and not self.comm.uses_mpi:
            raise DistributedError("--sync-bn synchronises batch norm across MPI ranks, but this "
                                   "process was not started by mpiexec: run `mpiexec -n N "
                                   "tinyres train --sync-bn ...`, or leave out --sync-bn")

    def _one_epoch(self):
        try:
            stats = train_epoch(self.model, self.train_loader, self.optimizer, self.scheduler,
                                self.device, self.epochs_done, self.iteration,
                                self.last_finite_loss, self.show_progress, on_step=self._track,
                                parallel=self.parallel)
        except KeyboardInterrupt:
            if self.parallel is not None:   # every rank stopped here: save the ranks' mean stats
                self.parallel.average_buffers()
            self.save_checkpoint()
            self.log(f"interrupted at iteration {self.iteration}: checkpoint saved in "
                     f"{self.out / CHECKPOINT}; continue with --resume")
            raise
        config = self.config
        start = time.perf_counter()
        if self.parallel is not None:       # one model everywhere: average BN running statistics
            self.parallel.average_buffers()
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
               "images_per_second": stats["images"] / max(stats["seconds"], 1e-9)}
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
        stop = self._stop_requested
        if self.parallel is not None:       # all ranks stop at the same step, or none does
            stop = self.parallel.any_rank(stop)
        if stop:
            raise KeyboardInterrupt

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
