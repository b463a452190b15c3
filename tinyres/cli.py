"""Floor 8: the `tinyres` command. Thin: each subcommand calls the public API a learner calls.

    tinyres train                 train a model on CIFAR-10 with the paper's recipe
    tinyres eval                  test accuracy and confusion table of a checkpoint
    tinyres gradcheck             every registered op against finite differences, as a table
    tinyres info                  versions, backend, kernels, GPU pieces
    tinyres assignment            course copies (make A1..A4) and their autograder (grade)
    tinyres bench                 time a training step on every path, against PyTorch
    tinyres lab                   the paper's findings reproduced: degradation, responses, ...

A mistake of the user's (a tinyres.errors.UserError: a bad option, file, data set or run
directory) is printed as one line on stderr, exit status 2, without a traceback; `--debug` (before
or after the subcommand) or TINYRES_DEBUG=1 prints the traceback too. Options and environment
variables are checked before any work starts.
"""
import argparse
import dataclasses
import importlib
import json
import math
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import numpy

import tinyres
from tinyres.errors import UserError


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


def _student_copy():
    """tinyres.student_copy, which `tinyres assignment make` writes into a course copy; else
    None."""
    try:
        from tinyres import student_copy
    except ImportError:
        return None
    return student_copy


def cmd_info(args):
    from tinyres import dispatch
    copy = _student_copy()
    kernels = dispatch.get_kernels()
    if copy and copy.KERNELS_OFF:
        kernels += f" (not in this copy: {', '.join(copy.KERNELS_OFF)}; the readable code runs)"
    rows = [
        ("tinyres", tinyres.__version__),
        *([("copy", f"{copy.describe()}; at {Path(tinyres.__file__).parent.parent}")]
          if copy else []),
        ("python", platform.python_version()),
        ("backend", tinyres.get_backend()),
        ("kernels", kernels),
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
    from tinyres.course.checks import REGISTRY  # (registers every op family's cases)
    from tinyres.gradcheck import GradcheckError, gradcheck

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
            except NotImplementedError as err:        # a hole of a course copy, still open
                failures += 1
                error, result = "-", f"FAIL: NotImplementedError: {err}"
            print(f"{name:<36} {description:<48} {error:>11}  {result}")
    print("-" * len(header))
    print(f"{'all passed' if not failures else f'{failures} FAILED'} "
          f"in {time.perf_counter() - start:.1f} s")
    return 1 if failures else 0


# -- option types: argparse turns their ArgumentTypeError into a one-line error, exit 2 ------------
def positive_int(text):
    """argparse type: a whole number >= 1 (thread counts, batch sizes, epochs)."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def natural_int(text):
    """argparse type: a whole number >= 0 (seeds, warm-up iterations)."""
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def number_in(low, high=math.inf, low_open=False, high_open=True):
    """argparse type: a finite number in [low, high) (or (low, ...) with low_open)."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        inside = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high)
        if not (math.isfinite(value) and inside):
            bounds = (f"{'>' if low_open else '>='} {low:g}" if high == math.inf else
                      f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}")
            raise argparse.ArgumentTypeError(f"expected a finite number {bounds}, got {text!r}")
        return value
    return parse


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:                     # macOS, Windows
        return os.cpu_count() or 1


def thread_count(text):
    """argparse type: threads, 1 to the cores this process may use."""
    count, cores = positive_int(text), available_cores()
    if count > cores:
        raise argparse.ArgumentTypeError(f"{count} threads, but this process may use "
                                         f"{cores} core{'s' if cores > 1 else ''}; use at most "
                                         f"{cores}")
    return count


def check_environment():
    """The TINYRES_* variables, checked before any work starts (a typo in one would otherwise
    surface at the first convolution of a long run)."""
    from tinyres import dispatch
    choices = {"TINYRES_KERNELS": dispatch.KERNEL_CHOICES,
               "TINYRES_BACKEND": tinyres.backend.BACKENDS, "TINYRES_DEBUG": ("0", "1")}
    for name, allowed in choices.items():
        value = os.environ.get(name, "")
        if value and value not in allowed:
            raise UserError(f"environment variable {name}={value!r}: expected one of "
                            f"{', '.join(allowed)} (or unset it)")
    checks = {"TINYRES_NUM_THREADS": thread_count,
              "TINYRES_COLLECTIVE_TIMEOUT": number_in(0, low_open=True)}
    for name, parse in checks.items():
        value = os.environ.get(name, "")
        if value:
            try:
                parse(value)
            except argparse.ArgumentTypeError as err:
                raise UserError(f"environment variable {name}={value!r}: {err} (or unset "
                                f"it)") from None


def _set_engine(args):
    """Apply --backend, --kernels and --threads before anything makes a tensor."""
    from tinyres import dispatch
    if getattr(args, "backend", None):
        tinyres.set_backend(args.backend)
    if getattr(args, "kernels", None):
        dispatch.set_kernels(args.kernels)
    if getattr(args, "threads", None) is not None:
        tinyres.set_num_threads(args.threads)
    else:                                   # (check_environment has vetted TINYRES_NUM_THREADS)
        tinyres.get_num_threads()           # applies TINYRES_NUM_THREADS now, before any op


def check_data_option(data, download=False):
    """--data before any work: 'sample', or a folder holding CIFAR-10 (or to download it into
    with --download). Nothing is created here."""
    from tinyres.data.cifar import FOLDER_NAME, META_FILE
    if data in (None, "sample") or download:
        return
    folder = Path(data).expanduser()
    if not folder.is_dir():
        problem = "is a file, not a folder" if folder.exists() else "does not exist"
    elif not any(folder.iterdir()):
        problem = "is an empty folder"
    elif not ((folder / FOLDER_NAME).is_dir() or (folder / META_FILE).is_file()):
        problem = f"holds no CIFAR-10 ({FOLDER_NAME}/ is not there)"
    else:
        return
    raise UserError(f"--data {data} {problem}: the full CIFAR-10 data set is missing. Download "
                    f"it there (170 MB) by adding --download, point --data at the folder that "
                    f"holds {FOLDER_NAME}/, or train offline on the small bundled sample with "
                    f"--data sample")


# The `tinyres train` options that are settings of the run (its TrainConfig field), compared with
# the checkpoint's on --resume: a run continues with the settings it was started with.
RUN_SETTINGS = {"model": "model", "batch_size": "batch_size", "lr": "lr", "momentum": "momentum",
                "weight_decay": "weight_decay", "warmup": "warmup_iterations",
                "normalize": "normalize", "data": "data", "limit_train": "limit_train",
                "seed": "seed", "sync_bn": "sync_bn"}


def cmd_train(args):
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
    from tinyres.train.run_directory import RunDirectoryError, prepare_run_directory

    given = {field: getattr(args, option) for option, field in RUN_SETTINGS.items()
             if getattr(args, option) is not None}
    model = given.get("model", TrainConfig.model)
    if model not in list_models():
        raise UserError(f"--model: unknown model {model!r}; choose one of: "
                        f"{', '.join(list_models())}")
    check_data_option(args.data, args.download)
    out = args.out or f"runs/{model}"
    if args.resume:
        stop = _check_resume(out, given, args.epochs, comm)
        if stop:
            return 0
    problem = None
    if comm.rank == 0:                      # rank 0 writes the run directory; all ranks agree
        try:
            prepare_run_directory(out, resume=args.resume, overwrite=args.overwrite)
        except RunDirectoryError as err:
            problem = str(err)
    problem = comm.allgather(problem)[0]
    if problem:
        raise RunDirectoryError(problem)
    _set_engine(args)
    if args.resume:
        trainer = Trainer.resume(out, show_progress=not args.quiet, epochs=args.epochs)
        if comm.rank == 0:
            print(f"resuming {out} at epoch {trainer.epochs_done}, iteration "
                  f"{trainer.iteration} (settings from its checkpoint)")
    else:
        defaults = {field.name: field.default for field in dataclasses.fields(TrainConfig)}
        settings = {**defaults, **given, "out": out, "download": args.download}
        settings["epochs"] = args.epochs if args.epochs is not None else defaults["epochs"]
        trainer = Trainer(TrainConfig(**settings), show_progress=not args.quiet)
    row = trainer.fit()
    if row is not None and comm.rank == 0:
        print(f"done: test accuracy {row['test_accuracy']:.4f} after {int(row['epoch'])} epochs; "
              f"metrics in {trainer.out / 'metrics.csv'}, curves in {trainer.out / 'curves.png'}")
    return 0


def _check_resume(out, given, epochs, comm):
    """--resume before any work: the settings given must be the run's own (each difference is
    listed); True when the run is finished and --epochs asks for no more (nothing to do)."""
    from tinyres.train.checkpoint import CHECKPOINT, checkpoint_file
    from tinyres.train.trainer import read_run_config

    path = checkpoint_file(out, option="--resume: --out")
    config, progress = read_run_config(path)
    differences = []
    for option, field in RUN_SETTINGS.items():
        if field in given and not _same_setting(field, given[field], getattr(config, field)):
            flag = "--" + option.replace("_", "-")
            differences.append(f"{flag} {_shown(getattr(config, field))} "
                               f"(not {_shown(given[field])})")
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


def _same_setting(field, given, stored):
    if field == "data" and given not in (None, "sample") and stored not in (None, "sample"):
        return Path(given).expanduser().resolve() == Path(stored).expanduser().resolve()
    return given == stored


def _shown(value):
    """A setting as the message shows it: a flag is on or off, None is the default."""
    if value is None:
        return "(the default)"
    if isinstance(value, bool):
        return "on" if value else "off"
    return value


def cmd_eval(args):
    from tinyres.data import DataLoader
    from tinyres.train import Trainer, evaluate
    from tinyres.train.checkpoint import checkpoint_file

    check_data_option(args.data)
    path = checkpoint_file(args.checkpoint)               # the file named is the file used
    _set_engine(args)
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


def cmd_assignment(args):
    """tinyres assignment make / grade / list: course copies of tinyres and their autograder."""
    if args.action == "list":
        print(format_assignments())
        return 0
    try:
        from tinyres.course import copier, grader
    except ImportError:                     # a student copy leaves the course tools out
        print("tinyres assignment: this tinyres is a student copy; making copies and grading "
              "are course staff's tools (in the course's own tinyres)", file=sys.stderr)
        return 2
    try:
        if args.action == "make":
            copier.make(args.assignment, args.out, solution=args.solution, force=args.force)
        else:
            return _grade(args, grader)
        return 0
    except (ValueError, FileExistsError, FileNotFoundError, RuntimeError) as err:
        print(f"tinyres assignment {args.action}: {err}", file=sys.stderr)
        return 2


def _grade(args, grader):
    """One folder: its table (and --json); several: one line each and a CSV. Exit 0 whenever
    grading ran, whatever the scores."""
    missing = [d for d in args.directories if not Path(d).is_dir()]
    if missing:
        raise FileNotFoundError(f"no such folder: {', '.join(missing)}")
    if args.json and len(args.directories) > 1:
        raise ValueError("--json writes one submission's results (Gradescope grades one "
                         "submission at a time); for a folder of submissions use --csv")
    reports = []
    for directory in args.directories:
        report = grader.grade(directory, args.assignment, timeout=args.timeout)
        reports.append(report)
        print(grader.format_report(report) if len(args.directories) == 1
              else grader.summary_line(report), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(grader.gradescope_results(reports[0]), indent=2))
        print(f"Gradescope results written to {args.json}")
    if len(args.directories) > 1 or args.csv:
        grader.write_csv(reports, args.csv or "grades.csv")
        print(f"{len(reports)} submissions; scores written to {args.csv or 'grades.csv'}")
    return 0


def format_assignments():
    """Every assignment with its functions, files and written parts (`assignment list`)."""
    from tinyres.course.assignments import ASSIGNMENTS, tasks_of
    lines = []
    for a in ASSIGNMENTS.values():
        lines.append(f"{a.id}  {a.title}   (handout: {a.handout})")
        lines += [f"      {t.function:<28} {t.file:<40} {t.points:>3} points"
                  for t in tasks_of(a.id)]
        lines += [f"      written: {w.name}   ({w.points} points, manually graded)"
                  for w in a.written]
    return "\n".join(lines)


def cmd_bench(args):
    """tinyres bench: ResNet training steps and eval forwards on every path, racing PyTorch."""
    from tinyres.bench.command import run          # the benchmark is imported only to run it
    return run(args)


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
    parser = OneLineErrorParser(prog="tinyres", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"tinyres {tinyres.__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
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
    # The settings of a run default to None here (TrainConfig's defaults apply), so that
    # --resume can tell which were given and refuse those that differ from the run's own.
    train.add_argument("--model", help="model name (default resnet20)")
    train.add_argument("--epochs", type=positive_int,
                       help="epochs to train (default 5: about a minute on 2 cores on the "
                            "bundled sample); with --resume, a number other than the run's "
                            "re-plans its schedule for that many")
    train.add_argument("--batch-size", type=positive_int, help="default 128")
    train.add_argument("--lr", type=number_in(0, low_open=True),
                       help="initial learning rate (default: the model's recipe, 0.1 for the "
                            "ResNets as in the paper, 0.02 for VGG)")
    train.add_argument("--momentum", type=number_in(0, 1), help="default 0.9")
    train.add_argument("--weight-decay", type=number_in(0), help="default 1e-4")
    train.add_argument("--warmup", type=natural_int, metavar="ITERATIONS",
                       help="iterations at lr 0.01 first (the paper's ResNet-110 warm-up)")
    train.add_argument("--normalize", choices=["channel", "pixel"],
                       help="per-channel mean/std (default), or the paper's per-pixel mean "
                            "subtraction")
    train.add_argument("--data", help="a folder holding CIFAR-10's cifar-10-batches-py/, or "
                                      "'sample' for the bundled sample (default: the cache, "
                                      "else the sample)")
    train.add_argument("--download", action="store_true",
                       help="download CIFAR-10 into --data DIR if it is not there")
    train.add_argument("--limit-train", type=positive_int, metavar="N",
                       help="train on the first N images only (quick runs)")
    train.add_argument("--seed", type=natural_int, help="default 0")
    train.add_argument("--out", help="run directory (default runs/MODEL); must be new or empty "
                                     "unless --resume or --overwrite")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its checkpoint")
    train.add_argument("--overwrite", action="store_true",
                       help="replace the run in --out (its checkpoint, metrics and curves)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--sync-bn", action="store_true", default=None,
                       help="under mpiexec: batch norm with the statistics of the whole batch "
                            "over all ranks (default: each rank's own slice)")
    train.add_argument("--collective-timeout", type=number_in(0, low_open=True),
                       metavar="SECONDS",
                       help="under mpiexec: end the job, naming the rank that did not arrive, "
                            "when a collective waits longer than this (default "
                            "$TINYRES_COLLECTIVE_TIMEOUT, else 600)")
    train.set_defaults(run=cmd_train)

    evaluate = commands.add_parser("eval", help="test accuracy and confusion table of a run")
    evaluate.add_argument("--checkpoint", required=True,
                          help="a checkpoint.npz, or the run directory holding it")
    evaluate.add_argument("--data", help="CIFAR-10 folder (default: the run's data)")
    evaluate.set_defaults(run=cmd_eval)

    for command in (train, evaluate):
        command.add_argument("--backend", choices=tinyres.backend.BACKENDS)
        command.add_argument("--kernels", choices=["fast", "reference"])
        command.add_argument("--threads", type=thread_count, metavar="N",
                             help="threads for BLAS and the fast kernels; the readable path "
                                  "runs on one (default: every core this process may use)")

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
    make.add_argument("--force", action="store_true",
                      help="replace a copy `assignment make` wrote earlier (nothing else)")
    grade = course_actions.add_parser(
        "grade", help="grade student copies (the student's code runs in a subprocess); exit 0 "
                      "whenever grading ran")
    grade.add_argument("directories", nargs="+", metavar="DIR",
                       help="a copy `assignment make` wrote; several: one line each and a CSV")
    grade.add_argument("--assignment", choices=["A1", "A2", "A3", "A4"],
                       help="which assignment (default: the copy's signed manifest)")
    grade.add_argument("--json", metavar="PATH",
                       help="write Gradescope's results.json (one submission)")
    grade.add_argument("--csv", metavar="PATH",
                       help="write the scores as CSV (default grades.csv for several DIRs)")
    grade.add_argument("--timeout", type=float, default=300,
                       help="seconds per function (default 300)")
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

    from tinyres.bench.options import add_arguments as add_bench_arguments
    race = commands.add_parser("bench", help="time training steps and eval forwards on every "
                                             "path (reference, fast, GPU) against PyTorch")
    add_bench_arguments(race)
    race.set_defaults(run=cmd_bench)
    for command in commands.choices.values():     # `tinyres train ... --debug` works too
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help=DEBUG_HELP)
    return parser


DEBUG_HELP = "on an error, print the Python traceback too (or set TINYRES_DEBUG=1)"


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, with its usage errors as one line (the usage is one --help away)."""

    def error(self, message):
        print(f"{self.prog}: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def report_error(args, error, prefix=""):
    """A user's mistake as one line on stderr (with the traceback before it under --debug)."""
    if debugging(args):
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    print(f"tinyres {getattr(args, 'command', '')}: {prefix}{message}", file=sys.stderr)


def debugging(args):
    return bool(getattr(args, "debug", False)) or os.environ.get("TINYRES_DEBUG") == "1"


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        check_environment()
        return args.run(args)
    except (UserError, tinyres.backend.BackendError) as err:
        report_error(args, err)
        return 2


if __name__ == "__main__":
    sys.exit(main())
