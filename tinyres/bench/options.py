"""The options of `tinyres bench`, apart from the benchmark itself, so that the CLI can list them
without importing it (the CLI imports the benchmark only when `tinyres bench` runs)."""
import argparse

from tinyres.options import natural_int, positive_int, thread_count

PATHS = ("reference", "fast", "cupy", "torch", "torch-cuda")


def add_arguments(parser):
    """The options of `tinyres bench` (shared by the CLI and `python -m tinyres.bench`)."""
    parser.add_argument("--model", default="resnet20",
                        choices=["resnet20", "resnet32", "resnet44", "resnet56", "resnet110"])
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--threads", type=thread_count, default=None,
                        help="threads for BLAS, Numba and PyTorch (default: all CPUs)")
    parser.add_argument("--steps", type=positive_int, default=10,
                        help="timed steps per path (medians are reported)")
    parser.add_argument("--warmup", type=natural_int, default=3,
                        help="untimed steps per path first")
    parser.add_argument("--paths", nargs="+", choices=PATHS,
                        help="race only these paths (default: every available one)")
    parser.add_argument("--profile", action="store_true",
                        help="per-op breakdown of a training step instead of the race")
    parser.add_argument("--kernels", action="store_true",
                        help="time each fast kernel against its reference twin")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the peak-memory measurement (one process per path)")
    parser.add_argument("--probe-memory", metavar="PATH", help=argparse.SUPPRESS)
