"""Floor 8: the `tinyres` command. Thin: each subcommand calls the public API a learner calls.

    tinyres train                 train a model on CIFAR-10 with the paper's recipe
    tinyres eval                  test accuracy and confusion table of a checkpoint
    tinyres gradcheck             every registered op against finite differences, as a table
    tinyres info                  versions, backend, kernels, GPU pieces
    tinyres assignment            course copies (make A1..A4) and their autograder (grade)
    tinyres bench                 time a training step on every path, against PyTorch
    tinyres lab                   the paper's findings reproduced: degradation, responses, ...
"""
import argparse
import importlib
import platform
import sys
import time
from pathlib import Path

import numpy

import tinyres


def _version_of(module_name):
    try:
        module = importlib.import_module(module_name)
    except Exception as err:                              # absent, or present but broken
        return f"not available ({type(err).__name__})"
    return getattr(module, "__version__", "installed")


def _gpu_visible():
    try:
        import cupy
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:
        return f"no ({type(err).__name__}: {err})" if "cupy" in sys.modules else "no (no CuPy)"
    return f"yes ({count} device{'s' if count != 1 else ''})" if count else "no"


def cmd_info(args):
    from tinyres import dispatch
    rows = [
        ("tinyres", tinyres.__version__),
        ("python", platform.python_version()),
        ("backend", tinyres.get_backend()),
        ("kernels", dispatch.get_kernels()),
        ("numpy", numpy.__version__),
        ("numba (CPU kernels)", _version_of("numba")),
        ("numba-cuda (GPU kernels)", _version_of("numba_cuda")),
        ("cupy", _version_of("cupy")),
        ("GPU visible", _gpu_visible()),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


def cmd_gradcheck(args):
    import tinyres.checks  # noqa: F401  (registers every op family's cases)
    from tinyres.gradcheck import REGISTRY, GradcheckError, gradcheck

    if args.backend:
        tinyres.set_backend(args.backend)
    names = [n for n in REGISTRY if not args.only or args.only.lower() in n.lower()]
    if not names:
        print(f"no registered op matches {args.only!r}; ops: {', '.join(REGISTRY)}")
        return 2
    rng = numpy.random.default_rng(args.seed)
    print(f"gradient check in float64 against central differences (backend {tinyres.get_backend()})")
    header = f"{'op':<36} {'case':<48} {'max rel err':>11}  result"
    print(header)
    print("-" * len(header))
    failures = 0
    start = time.perf_counter()
    for name in names:
        for description, fn, inputs in REGISTRY[name](rng):
            try:
                report = gradcheck(fn, inputs)
                error, result = f"{report.max_rel_error:.2e}", "pass"
                if report.sampled:
                    result += f" ({report.checked}/{report.total} elements)"
            except GradcheckError as err:
                failures += 1
                error, result = "-", f"FAIL: {err}"
            print(f"{name:<36} {description:<48} {error:>11}  {result}")
    print("-" * len(header))
    print(f"{'all passed' if not failures else f'{failures} FAILED'} "
          f"in {time.perf_counter() - start:.1f} s")
    return 1 if failures else 0


def positive_int(text):
    """argparse type: a whole number >= 1 (thread counts, batch sizes)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _set_engine(args):
    """Apply --backend, --kernels and --threads before anything makes a tensor."""
    from tinyres import dispatch
    if getattr(args, "backend", None):
        tinyres.set_backend(args.backend)
    if getattr(args, "kernels", None):
        dispatch.set_kernels(args.kernels)
    if getattr(args, "threads", None) is not None:
        tinyres.set_num_threads(args.threads)


def cmd_train(args):
    """Train; under `mpiexec -n N` every rank runs this same function (tinyres.distributed)."""
    from tinyres.distributed import DistributedError, abort_job, get_communicator
    from tinyres.train import TrainingDiverged

    try:
        comm = get_communicator()           # one process: SingleProcess, and no mpi4py
    except DistributedError as err:         # started by mpiexec, but no mpi4py
        print(f"tinyres train: {err}", file=sys.stderr)
        return 2
    try:
        return _train(args, comm)
    except KeyboardInterrupt:
        return 130
    except (TrainingDiverged, DistributedError) as err:   # raised on every rank alike
        if comm.rank == 0:
            print(f"tinyres train: {err}", file=sys.stderr)
        return 1 if isinstance(err, TrainingDiverged) else 2
    except Exception as err:
        if comm.size > 1:                   # maybe this rank alone failed: end the whole job,
            abort_job(comm, err)            # or the others would wait for it forever
        raise


def _train(args, comm):
    from tinyres.models import list_models
    from tinyres.train import TrainConfig, Trainer

    _set_engine(args)
    out = args.out or f"runs/{args.model}"
    if args.resume:
        trainer = Trainer.resume(out, show_progress=not args.quiet)
        if comm.rank == 0:
            print(f"resuming {out} at epoch {trainer.epochs_done}, iteration "
                  f"{trainer.iteration} (settings from its checkpoint)")
    else:
        if args.model not in list_models():
            if comm.rank == 0:
                print(f"tinyres train: unknown model {args.model!r}; choose one of: "
                      f"{', '.join(list_models())}", file=sys.stderr)
            return 2
        config = TrainConfig(model=args.model, epochs=args.epochs, batch_size=args.batch_size,
                             lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                             warmup_iterations=args.warmup, normalize=args.normalize,
                             data=args.data, limit_train=args.limit_train, seed=args.seed,
                             out=out, sync_bn=args.sync_bn)
        trainer = Trainer(config, show_progress=not args.quiet)
    row = trainer.fit()
    if row is not None and comm.rank == 0:
        print(f"done: test accuracy {row['test_accuracy']:.4f} after {int(row['epoch'])} epochs; "
              f"metrics in {trainer.out / 'metrics.csv'}, curves in {trainer.out / 'curves.png'}")
    return 0


def cmd_eval(args):
    from tinyres.data import DataLoader
    from tinyres.train import Trainer, evaluate, load_cifar

    _set_engine(args)
    trainer = Trainer.resume(Path(args.checkpoint).parent if Path(args.checkpoint).is_file()
                             else args.checkpoint, show_progress=False, log=lambda *a: None)
    test_set = load_cifar(args.data if args.data else trainer.config.data, train=False)
    loader = DataLoader(test_set, 500, transform=trainer.test_loader.transform)
    result = evaluate(trainer.model, loader, trainer.device, num_classes=len(test_set.classes))
    print(f"{trainer.config.model} from {args.checkpoint} on {test_set.source}")
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


def cmd_assignment(args):
    """tinyres assignment make / grade / list: course copies of tinyres and their autograder."""
    from tinyres import assignment
    try:
        if args.action == "list":
            print(assignment.format_tasks())
            return 0
        if args.action == "make":
            assignment.make(args.assignment, args.out, solution=args.solution, force=args.force)
            return 0
        results = assignment.grade(args.directory, args.assignment and [args.assignment],
                                   timeout=args.timeout)
        return 0 if all(r["passed"] for r in results.values()) else 1
    except (ValueError, FileExistsError, FileNotFoundError, RuntimeError) as err:
        print(f"tinyres assignment {args.action}: {err}", file=sys.stderr)
        return 2


def cmd_bench(args):
    """tinyres bench: ResNet training steps and eval forwards on every path, racing PyTorch."""
    from tinyres import bench
    return bench.run(args)


def cmd_lab(args):
    """tinyres lab NAME: one of the paper's findings, reproduced (tinyres.labs)."""
    from tinyres.labs import get_lab
    from tinyres.labs.runs import LabError

    _set_engine(args)
    out = Path(args.out or f"runs/lab-{args.name}" + ("-smoke" if args.smoke else ""))
    out.mkdir(parents=True, exist_ok=True)
    try:
        return get_lab(args.name).run(args, out)
    except KeyboardInterrupt:
        print(f"\ninterrupted: the runs under {out} that had begun training saved a "
              f"checkpoint; the same command continues where they stopped", file=sys.stderr)
        return 130
    except LabError as err:
        print(f"tinyres lab {args.name}: {err}", file=sys.stderr)
        return 2


def build_parser():
    parser = argparse.ArgumentParser(prog="tinyres", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"tinyres {tinyres.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train", help="train a model on CIFAR-10 with the paper's recipe",
        description="Train on CIFAR-10 with the recipe of He et al. (2015) section 4.2, scaled "
                    "to the epochs asked: SGD momentum 0.9, weight decay 1e-4, batch 128, lr "
                    "0.1 divided by 10 at 50 % and 75 % of the iterations, pad-crop-flip "
                    "augmentation. Without --data it uses the full CIFAR-10 from the cache "
                    "($TINYRES_DATA or ~/.cache/tinyres) if present, else the real sample "
                    "bundled with tinyres (5,482 training and 1,017 test images; offline). The "
                    "run directory gets metrics.csv (per epoch), iterations.csv (per step) and "
                    "curves.png (training error per iteration, test error per epoch, lr drops "
                    "marked: the paper's Fig. 6 for one net).")
    train.add_argument("--model", default="resnet20", help="model name (default resnet20)")
    train.add_argument("--epochs", type=int, default=5,
                       help="epochs (default 5: about a minute on 2 cores on the bundled sample)")
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--lr", type=float,
                       help="initial learning rate (default: the model's recipe, 0.1 for the "
                            "ResNets as in the paper, 0.02 for VGG)")
    train.add_argument("--momentum", type=float, default=0.9)
    train.add_argument("--weight-decay", type=float, default=1e-4)
    train.add_argument("--warmup", type=int, default=0, metavar="ITERATIONS",
                       help="iterations at lr 0.01 first (the paper's ResNet-110 warm-up)")
    train.add_argument("--normalize", choices=["channel", "pixel"], default="channel",
                       help="per-channel mean/std, or the paper's per-pixel mean subtraction")
    train.add_argument("--data", help="a CIFAR-10 folder (downloaded there if absent), or "
                                      "'sample' for the bundled sample")
    train.add_argument("--limit-train", type=int, metavar="N",
                       help="train on the first N images only (quick runs)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", help="run directory (default runs/MODEL)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its checkpoint")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--sync-bn", action="store_true",
                       help="under mpiexec: batch norm with the statistics of the whole batch "
                            "over all ranks (default: each rank's own slice)")
    train.set_defaults(run=cmd_train)

    evaluate = commands.add_parser("eval", help="test accuracy and confusion table of a run")
    evaluate.add_argument("--checkpoint", required=True,
                          help="a checkpoint.npz, or the run directory holding it")
    evaluate.add_argument("--data", help="CIFAR-10 folder (default: the run's data)")
    evaluate.set_defaults(run=cmd_eval)

    for command in (train, evaluate):
        command.add_argument("--backend", choices=tinyres.backend.BACKENDS)
        command.add_argument("--kernels", choices=["fast", "reference"])
        command.add_argument("--threads", type=positive_int, metavar="N",
                             help="threads for BLAS, the kernels and the readable path "
                                  "(default: every core this process may use)")

    info = commands.add_parser("info", help="versions, backend, kernels and GPU pieces")
    info.set_defaults(run=cmd_info)

    check = commands.add_parser("gradcheck", help="check every op's backward numerically")
    check.add_argument("--only", help="run only ops whose name contains this text")
    check.add_argument("--backend", choices=tinyres.backend.BACKENDS)
    check.add_argument("--seed", type=int, default=0)
    check.set_defaults(run=cmd_gradcheck)

    course = commands.add_parser("assignment", help="course assignments: student copies and "
                                                     "their autograder")
    course_actions = course.add_subparsers(dest="action", required=True)
    make = course_actions.add_parser("make", help="write a student copy of an assignment")
    make.add_argument("assignment", choices=["A1", "A2", "A3", "A4"])
    make.add_argument("--out", required=True, help="folder for the copy (new or empty)")
    make.add_argument("--solution", action="store_true",
                      help="keep the reference solutions (a copy for course staff)")
    make.add_argument("--force", action="store_true", help="replace a non-empty --out folder")
    grade = course_actions.add_parser("grade", help="grade a student copy; exit 1 on a failure")
    grade.add_argument("directory", help="the folder `assignment make` wrote")
    grade.add_argument("--assignment", choices=["A1", "A2", "A3", "A4"],
                       help="which assignment (default: the one the copy was made for)")
    grade.add_argument("--timeout", type=float, default=600, help="seconds (default 600)")
    course_actions.add_parser("list", help="the assignments, their functions and files")
    course.set_defaults(run=cmd_assignment)

    from tinyres.labs import LABS
    lab = commands.add_parser(
        "lab", help="the paper's findings reproduced: " + ", ".join(LABS),
        description="Reproduce one of the paper's findings. Results go to runs/lab-NAME/: "
                    "every curve as CSV, the figure as PNG, report.txt with the numbers. The "
                    "training labs resume where they stopped (Ctrl-C checkpoints every run).",
        epilog="labs: " + "; ".join(f"{name}: {text}" for name, text in LABS.items()))
    lab.add_argument("name", choices=list(LABS), metavar="NAME", help=", ".join(LABS))
    lab.add_argument("--smoke", action="store_true",
                     help="a tiny version in seconds (for CI): checks the lab runs, shows nothing")
    lab.add_argument("--data", help="as for train: a CIFAR-10 folder, or 'sample' (default: "
                                    "the cache if it holds CIFAR-10, else the bundled sample)")
    lab.add_argument("--out", help="output directory (default runs/lab-NAME)")
    lab.add_argument("--epochs", type=positive_int, help="override the lab's epochs per run")
    lab.add_argument("--seeds", type=positive_int, metavar="N",
                     help="override the lab's number of seeds (0..N-1)")
    lab.add_argument("--jobs", type=positive_int, default=2,
                     help="training runs side by side, one process each (default 2)")
    lab.add_argument("--threads", type=positive_int, metavar="N", default=1,
                     help="threads per training run (default 1: with --jobs 2, one core each)")
    lab.add_argument("--quiet", action="store_true", help="no progress bar")
    lab.add_argument("--kernels", choices=["fast", "reference"])
    lab.set_defaults(run=cmd_lab)

    from tinyres.bench import add_arguments as add_bench_arguments
    race = commands.add_parser("bench", help="time training steps and eval forwards on every "
                                             "path (reference, fast, GPU) against PyTorch")
    add_bench_arguments(race)
    race.set_defaults(run=cmd_bench)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except tinyres.backend.BackendError as err:
        print(f"tinyres: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
