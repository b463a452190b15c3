"""Floor 7: the `tinyres train` and `tinyres eval` commands, over the public Trainer.

    tinyres train   checks every option, the data and the run directory, then trains (a new run,
                    or --resume); under `mpiexec -n N` every rank runs the same command
    tinyres eval    a checkpoint's test accuracy and its confusion table

Under MPI a mistake seen by one rank alone ends the whole job (the others would wait for it
forever); a mistake every rank sees alike is printed once, by rank 0.
"""
import dataclasses

from tinyres.environment import set_engine
from tinyres.errors import UserError, report_error
from tinyres.train.options import check_data_option
from tinyres.train.settings import check_resume, given_settings


def run_train(args):
    """Train; under `mpiexec -n N` every rank runs this same function (tinyres.distributed)."""
    from tinyres.distributed import DistributedError, abort_job, get_communicator
    from tinyres.train import TrainingDiverged

    comm = get_communicator()           # one process: SingleProcess, and no mpi4py
    if args.collective_timeout is not None:
        comm.timeout = args.collective_timeout
    try:
        return _train(args, comm)
    except KeyboardInterrupt:
        return 130
    except (TrainingDiverged, DistributedError) as err:   # raised on every rank alike
        if comm.rank == 0:
            report_error(args, err)
        return 1 if isinstance(err, TrainingDiverged) else 2
    except Exception as err:
        if comm.size > 1:                   # maybe this rank alone failed: end the whole job,
            if isinstance(err, UserError):  # or the others would wait for it forever
                report_error(args, err, f"rank {comm.rank}: ")
                comm.abort(2)
            abort_job(comm, err)
        raise


def _train(args, comm):
    from tinyres.models import list_models
    from tinyres.train import TrainConfig, Trainer

    given = given_settings(args)
    model = given.get("model", TrainConfig.model)
    if model not in list_models():
        raise UserError(f"--model: unknown model {model!r}; choose one of: "
                        f"{', '.join(list_models())}")
    check_data_option(args.data, args.download)
    out = args.out or f"runs/{model}"
    if args.resume:
        stop = check_resume(out, given, args.epochs, comm)
        if stop:
            return 0
    _prepare_run_directory(out, args, comm)
    set_engine(args)
    if args.resume:
        trainer = Trainer.resume(out, show_progress=not args.quiet, epochs=args.epochs)
        if comm.rank == 0:
            print(f"resuming {out} at epoch {trainer.epochs_done}, iteration "
                  f"{trainer.iteration} (settings from its checkpoint)")
    else:
        trainer = Trainer(new_config(given, out, args), show_progress=not args.quiet)
    row = trainer.fit()
    if row is not None and comm.rank == 0:
        print(f"done: test accuracy {row['test_accuracy']:.4f} after {int(row['epoch'])} epochs; "
              f"metrics in {trainer.out / 'metrics.csv'}, curves in {trainer.out / 'curves.png'}")
    return 0


def _prepare_run_directory(out, args, comm):
    """Rank 0 makes the run directory ready; every rank learns whether it could."""
    from tinyres.train.run_directory import RunDirectoryError, prepare_run_directory

    problem = None
    if comm.rank == 0:                      # rank 0 writes the run directory; all ranks agree
        try:
            prepare_run_directory(out, resume=args.resume, overwrite=args.overwrite)
        except RunDirectoryError as err:
            problem = str(err)
    problem = comm.allgather(problem)[0]
    if problem:
        raise RunDirectoryError(problem)


def new_config(given, out, args):
    """The TrainConfig of a new run: the settings given, TrainConfig's defaults for the rest."""
    from tinyres.train import TrainConfig

    defaults = {field.name: field.default for field in dataclasses.fields(TrainConfig)}
    settings = {**defaults, **given, "out": out, "download": args.download}
    settings["epochs"] = args.epochs if args.epochs is not None else defaults["epochs"]
    return TrainConfig(**settings)


def run_eval(args):
    """tinyres eval: a checkpoint's test accuracy, loss and confusion table."""
    from tinyres.data import DataLoader
    from tinyres.train import Trainer, evaluate
    from tinyres.train.checkpoint import checkpoint_file

    check_data_option(args.data)
    path = checkpoint_file(args.checkpoint)               # the file named is the file used
    set_engine(args)
    trainer = Trainer.for_evaluation(path, data=args.data)
    test_set = trainer.test_set
    loader = DataLoader(test_set, 500, transform=trainer.test_loader.transform)
    result = evaluate(trainer.model, loader, trainer.device, num_classes=len(test_set.classes))
    print(f"{trainer.config.model} from {path} on {test_set.source}")
    print(f"test accuracy {result['test_accuracy']:.4f}, loss {result['test_loss']:.4f}")
    print(format_confusion(result["confusion"], test_set.classes))
    return 0


def format_confusion(confusion, classes):
    """The confusion table: rows are true classes, columns predicted, with per-class accuracy."""
    short = [name[:5] for name in classes]
    lines = ["true \\ predicted " + " ".join(f"{s:>5}" for s in short) + "  accuracy"]
    for name, row in zip(classes, confusion):
        total = row.sum()
        accuracy = row[classes.index(name)] / total if total else float("nan")
        lines.append(f"{name:<17} " + " ".join(f"{v:>5d}" for v in row) + f"  {accuracy:8.3f}")
    return "\n".join(lines)
