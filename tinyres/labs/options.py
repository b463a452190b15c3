"""The options of `tinyres lab`, apart from the labs themselves, so that the CLI can list them
without importing a lab (it imports one only when `tinyres lab NAME` runs)."""
from tinyres.labs import LABS
from tinyres.options import positive_int, positive_int_up_to, thread_count

MAX_SEEDS = 1000                # seeds 0..N-1, one training run each: more is a typo

DESCRIPTION = ("Reproduce one of the paper's findings. Results go to runs/lab-NAME/: every "
               "curve as CSV, the figure as PNG, report.txt with the numbers. The training labs "
               "resume where they stopped (Ctrl-C checkpoints every run).")


def add_arguments(lab):
    """The options of `tinyres lab`."""
    lab.add_argument("name", choices=list(LABS), metavar="NAME", help=", ".join(LABS))
    lab.add_argument("--smoke", action="store_true",
                     help="a tiny version in seconds (for CI): checks the lab runs, shows nothing")
    lab.add_argument("--data", help="as for train: a CIFAR-10 folder, or 'sample' (default: "
                                    "the cache if it holds CIFAR-10, else the bundled sample)")
    lab.add_argument("--out", help="output directory (default runs/lab-NAME)")
    lab.add_argument("--epochs", type=positive_int, help="override the lab's epochs per run")
    lab.add_argument("--seeds", type=positive_int_up_to(MAX_SEEDS), metavar="N",
                     help="override the lab's number of seeds (0..N-1)")
    lab.add_argument("--jobs", type=positive_int, default=2,
                     help="training runs side by side, one process each (default 2)")
    lab.add_argument("--threads", type=thread_count, metavar="N", default=1,
                     help="threads per training run (default 1: with --jobs 2, one core each)")
    lab.add_argument("--depths", type=positive_int, nargs="+", metavar="N",
                     help="degradation and responses: the depths of both families (default 20 "
                          "56; `--depths 8 20 --epochs 20` is the lab of 2026-12-05)")
    lab.add_argument("--report-only", action="store_true",
                     help="degradation and responses: train nothing, draw and report from the "
                          "runs as far as they have got (each net's epochs are stated)")
    lab.add_argument("--paper", action="store_true",
                     help="degradation only: the paper's own recipe (section 4.2: 64k "
                          "iterations, 45k/5k split, plain-20..56 and ResNet-20..110) on the "
                          "full CIFAR-10; prints the estimated time before it trains")
    lab.add_argument("--download", action="store_true",
                     help="with --paper: download CIFAR-10 into --data (or the cache) first")
    lab.add_argument("--quiet", action="store_true", help="no progress bar")
    lab.add_argument("--kernels", choices=["fast", "reference"])
