"""`tinyres lab NAME`: one of the paper's findings, reproduced (the lab's own module runs it)."""
import sys
from pathlib import Path

from tinyres.environment import set_engine
from tinyres.labs import get_lab
from tinyres.labs.runs import LabError


def run(args):
    """tinyres lab NAME: one of the paper's findings, reproduced (tinyres.labs)."""
    set_engine(args)
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
