"""`tinyres lab NAME`: one of the paper's findings, reproduced (the lab's own module runs it)."""
import sys
from pathlib import Path

from tinyres.environment import set_engine
from tinyres.labs import get_lab
from tinyres.labs.runs import LabError

REPORTS_ONLY = ("degradation", "responses")     # the labs that can report without training


def run(args):
    """tinyres lab NAME: one of the paper's findings, reproduced (tinyres.labs)."""
    set_engine(args)
    for flag, asked in (("--paper", args.paper), ("--download", args.download)):
        if asked and args.name != "degradation":
            print(f"tinyres lab {args.name}: {flag} is an option of the degradation lab only "
                  f"(`tinyres lab degradation --paper`); leave it out", file=sys.stderr)
            return 2
    if args.report_only and args.name not in REPORTS_ONLY:
        print(f"tinyres lab {args.name}: --report-only is an option of the "
              f"{' and '.join(REPORTS_ONLY)} labs only; leave it out", file=sys.stderr)
        return 2
    if args.download and not args.paper:
        print("tinyres lab degradation: --download goes with --paper (the full CIFAR-10); "
              "without it the lab trains on --data as given", file=sys.stderr)
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
