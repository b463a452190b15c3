"""Floor 7: what a run says — the log lines of its start, of each epoch, of a re-planned schedule,
and its curves after each epoch (curves.py draws them). Each reads a Trainer and changes nothing.
"""
from tinyres import backend
from tinyres.train.curves import plot_run


def starting(trainer):
    """The first line: the model, the data, the iterations, the backend, where the run goes."""
    config, comm = trainer.config, trainer.comm
    ranks = "" if comm.size == 1 else (
        f"; {comm.size} MPI ranks x {config.batch_size // comm.size} images per batch, batch "
        f"norm {'synchronised' if config.sync_bn else 'per rank'}")
    return (f"training {config.model} on {trainer.train_set.source}; testing on "
            f"{trainer.test_set.source}; {len(trainer.train_loader)} iterations per epoch, "
            f"{trainer.total_iterations} in all; backend {backend.get_backend()}{ranks}; "
            f"output in {trainer.out}")


def epoch_done(trainer, row):
    """The line of an epoch's metrics row."""
    return (f"epoch {trainer.epochs_done}/{trainer.config.epochs}: train loss "
            f"{row['train_loss']:.3f}, train error {row['train_error']:.3f}, test accuracy "
            f"{row['test_accuracy']:.3f}, {row['images_per_second']:.0f} images/s, "
            f"{row['epoch_seconds']:.1f} s")


def replanning(trainer, planned):
    """The line of a run whose number of epochs changed on --resume (from `planned`)."""
    scheduler, config = trainer.scheduler, trainer.config
    schedule = getattr(scheduler, "schedule", scheduler)      # under a warm-up
    first, second = schedule.milestones
    lr = config.lr
    return (f"{'extending' if config.epochs > planned else 'shortening'} the run from "
            f"{planned} to {config.epochs} epochs: the learning-rate schedule is "
            f"re-planned for {trainer.total_iterations} iterations (lr {lr:g} until iteration "
            f"{first}, {lr / 10:g} until {second}, then {lr / 100:g}); we are at iteration "
            f"{trainer.iteration}, so the lr is now {scheduler.get_last_lr()[0]:g}. "
            f"metrics.csv states the plan of each epoch (planned_epochs)")


def draw_curves(trainer):
    """curves.png: the run's training and test error so far (the paper's Fig. 6 for one net)."""
    plot_run(trainer.out, trainer.out / "curves.png",
             f"{trainer.config.model}: {trainer.data.describe()}")
