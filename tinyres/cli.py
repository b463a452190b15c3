"""Floor 8: the `tinyres` command. Thin: it wires each subcommand to the room that runs it.

    tinyres train                 train a model on CIFAR-10 with the paper's recipe
    tinyres eval                  test accuracy and confusion table of a checkpoint
    tinyres gradcheck             every registered op against finite differences, as a table
    tinyres info                  versions, backend, kernels, GPU pieces
    tinyres assignment            course copies (make A1..A4) and their autograder (grade)
    tinyres bench                 time a training step on every path, against PyTorch
    tinyres lab                   the paper's findings reproduced: degradation, responses, ...

Each room owns its options (tinyres/train/options.py, course/options.py, labs/options.py,
bench/options.py) and its command (train/command.py, course/command.py, labs/command.py,
bench/command.py); a room's command is imported only when it runs.

A mistake of the user's (a tinyres.errors.UserError: a bad option, file, data set or run
directory) is printed as one line on stderr, exit status 2, without a traceback; `--debug` (before
or after the subcommand) or TINYRES_DEBUG=1 prints the traceback too. Options and environment
variables are checked before any work starts (tinyres.environment).
"""
import argparse
import sys

import tinyres
from tinyres.environment import check_environment, info_rows
from tinyres.errors import UserError, report_error


def cmd_info(args):
    rows = info_rows()
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


def cmd_train(args):
    from tinyres.train.command import run_train
    return run_train(args)


def cmd_eval(args):
    from tinyres.train.command import run_eval
    return run_eval(args)


def cmd_gradcheck(args):
    from tinyres.course.command import run_gradcheck
    return run_gradcheck(args)


def cmd_assignment(args):
    from tinyres.course.command import run_assignment
    return run_assignment(args)


def cmd_bench(args):
    """tinyres bench: ResNet training steps and eval forwards on every path, racing PyTorch."""
    from tinyres.bench.command import run          # the benchmark is imported only to run it
    return run(args)


def cmd_lab(args):
    from tinyres.labs.command import run
    return run(args)


def build_parser():
    from tinyres.bench.options import add_arguments as add_bench_arguments
    from tinyres.course.options import add_assignment_arguments, add_gradcheck_arguments
    from tinyres.labs import LABS
    from tinyres.labs.options import DESCRIPTION as LAB_DESCRIPTION
    from tinyres.labs.options import add_arguments as add_lab_arguments
    from tinyres.train.options import TRAIN_DESCRIPTION, add_eval_arguments, add_train_arguments

    parser = OneLineErrorParser(prog="tinyres", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"tinyres {tinyres.__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser
    wiring = [
        (add("train", help="train a model on CIFAR-10 with the paper's recipe",
             description=TRAIN_DESCRIPTION), add_train_arguments, cmd_train),
        (add("eval", help="test accuracy and confusion table of a run"),
         add_eval_arguments, cmd_eval),
        (add("info", help="versions, backend, kernels and GPU pieces"), None, cmd_info),
        (add("gradcheck", help="check every op's backward numerically"),
         add_gradcheck_arguments, cmd_gradcheck),
        (add("assignment", help="course assignments: student copies and their autograder"),
         add_assignment_arguments, cmd_assignment),
        (add("lab", help="the paper's findings reproduced: " + ", ".join(LABS),
             description=LAB_DESCRIPTION,
             epilog="labs: " + "; ".join(f"{name}: {text}" for name, text in LABS.items())),
         add_lab_arguments, cmd_lab),
        (add("bench", help="time training steps and eval forwards on every path (reference, "
                           "fast, GPU) against PyTorch"), add_bench_arguments, cmd_bench),
    ]
    for command, add_arguments, run in wiring:
        if add_arguments is not None:
            add_arguments(command)
        command.set_defaults(run=run)
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help=DEBUG_HELP)      # `tinyres train ... --debug` works too
    return parser


DEBUG_HELP = "on an error, print the Python traceback too (or set TINYRES_DEBUG=1)"


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, with its usage errors as one line (the usage is one --help away)."""

    def error(self, message):
        print(f"{self.prog}: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


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
