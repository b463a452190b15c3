"""Floor 7: a resumed run keeps its own settings — the options of `tinyres train` compared with
the TrainConfig its checkpoint holds.

`tinyres train --resume` may repeat a setting of the run (`--model resnet20`), never change one:
a run continues with the settings it was started with, and each difference is listed in the one
line that refuses it. `--epochs` is not a setting in this sense: a number other than the run's
re-plans its schedule (Trainer.resume).
"""
from pathlib import Path

from tinyres.errors import UserError
from tinyres.train.checkpoint import CHECKPOINT, checkpoint_file
from tinyres.train.trainer import read_run_config

# The `tinyres train` options that are settings of the run (its TrainConfig field), compared with
# the checkpoint's on --resume: a run continues with the settings it was started with.
RUN_SETTINGS = {"model": "model", "batch_size": "batch_size", "lr": "lr", "momentum": "momentum",
                "weight_decay": "weight_decay", "warmup": "warmup_iterations",
                "normalize": "normalize", "data": "data", "limit_train": "limit_train",
                "seed": "seed", "sync_bn": "sync_bn"}


def given_settings(args):
    """{TrainConfig field: value} of the run settings given on the command line."""
    return {field: getattr(args, option) for option, field in RUN_SETTINGS.items()
            if getattr(args, option) is not None}


def check_resume(out, given, epochs, comm):
    """--resume before any work: the settings given must be the run's own (each difference is
    listed); True when the run is finished and --epochs asks for no more (nothing to do)."""
    path = checkpoint_file(out, option="--resume: --out")
    config, progress = read_run_config(path)
    differences = []
    for option, field in RUN_SETTINGS.items():
        if field in given and not same_setting(field, given[field], getattr(config, field)):
            flag = "--" + option.replace("_", "-")
            differences.append(f"{flag} {shown(getattr(config, field))} "
                               f"(not {shown(given[field])})")
    if differences:
        raise UserError(f"--resume: {out} was started with {', '.join(differences)}; a run "
                        f"continues with its own settings: leave these options out, or start a "
                        f"new run in another --out")
    done = int(progress["epochs_done"])
    if done >= config.epochs and (epochs is None or epochs == config.epochs):
        if comm.rank == 0:
            print(f"{out} has finished its {config.epochs} epochs: nothing to train. To train it "
                  f"longer, resume with --epochs N, N > {config.epochs} (the learning-rate "
                  f"schedule is then re-planned for N epochs); {Path(out) / CHECKPOINT} is as "
                  f"it was")
        return True
    return False


def same_setting(field, given, stored):
    """Whether a setting given equals the run's: --data folders compare as resolved paths."""
    if field == "data" and given not in (None, "sample") and stored not in (None, "sample"):
        return Path(given).expanduser().resolve() == Path(stored).expanduser().resolve()
    return given == stored


def shown(value):
    """A setting as the message shows it: a flag is on or off, None is the default."""
    if value is None:
        return "(the default)"
    if isinstance(value, bool):
        return "on" if value else "off"
    return value
