"""`tinyres lab NAME`: one of the paper's findings, reproduced (the lab's own module runs it)."""
import sys
from pathlib import Path

from tinyres.environment import set_engine
from tinyres.labs import get_lab
from tinyres.labs.runs import LabError

# Options that only some labs take: on any other lab they are refused, never ignored.
ONLY = {"--paper": ("degradation",), "--download": ("degradation",),
        "--report-only": ("degradation", "responses"), "--depths": ("degradation", "responses")}


def run(args):
    """tinyres lab NAME: one of the paper's findings, reproduced (tinyres.labs)."""
    set_engine(args)
    for flag, labs in ONLY.items():
        if getattr(args, flag[2:].replace("-", "_")) and args.name not in labs:
            print(f"tinyres lab {args.name}: {flag} is an option of the "
                  f"{' and '.join(labs)} lab{'s' if len(labs) > 1 else ''} only; leave it out",
                  file=sys.stderr)
            return 2
    if args.download and not args.paper:
        print("tinyres lab degradation: --download goes with --paper (the full CIFAR-10); "
              "without it the lab trains on --data as given", file=sys.stderr)
        return 2
    if args.paper and args.depths:
        print("tinyres lab degradation: --depths does not go with --paper (the paper's depths, "
              "20 to 110, are its recipe); leave one out", file=sys.stderr)
        return 2
    out = Path(args.out or f"runs/lab-{args.name}" + ("-paper" if args.paper else "")
               + ("-smoke" if args.smoke else ""))
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
