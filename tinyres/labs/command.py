"""`tinyres lab NAME`: one of the paper's findings, reproduced (the lab's own module runs it)."""
import sys
from pathlib import Path

from tinyres.environment import set_engine
from tinyres.errors import UserError
from tinyres.labs import get_lab
from tinyres.labs.runs import LabError
from tinyres.train.options import check_data_option

# Options that only some labs take: on any other lab they are refused, never ignored.
ONLY = {"--paper": ("degradation",), "--download": ("degradation",),
        "--report-only": ("degradation", "responses"), "--depths": ("degradation", "responses")}


def run(args):
    """tinyres lab NAME: one of the paper's findings, reproduced (tinyres.labs)."""
    for flag, labs in ONLY.items():
        if getattr(args, flag[2:].replace("-", "_")) and args.name not in labs:
            raise UserError(f"{args.name}: {flag} is an option of the {' and '.join(labs)} "
                            f"lab{'s' if len(labs) > 1 else ''} only; leave it out")
    if args.download and not args.paper:
        raise UserError("degradation: --download goes with --paper (the full "
                        "CIFAR-10); without it the lab trains on --data as given")
    if args.paper and args.depths:
        raise UserError("degradation: --depths does not go with --paper (the "
                        "paper's depths, 20 to 110, are its recipe); leave one out")
    out = Path(args.out or f"runs/lab-{args.name}" + ("-paper" if args.paper else "")
               + ("-smoke" if args.smoke else ""))
    if not args.paper:                  # (the paper's recipe checks its full CIFAR-10 itself)
        check_data_option(args.data)    # before anything is created
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a directory; choose another --out")
    set_engine(args)
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
