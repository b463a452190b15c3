"""Floor 8: the `tinyres` command. Thin: each subcommand calls the public API a learner calls.

    tinyres info                  versions, backend, kernels, GPU pieces
    tinyres gradcheck             every registered op against finite differences, as a table
"""
import argparse
import importlib
import platform
import sys
import time

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


def build_parser():
    parser = argparse.ArgumentParser(prog="tinyres", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"tinyres {tinyres.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    info = commands.add_parser("info", help="versions, backend, kernels and GPU pieces")
    info.set_defaults(run=cmd_info)

    check = commands.add_parser("gradcheck", help="check every op's backward numerically")
    check.add_argument("--only", help="run only ops whose name contains this text")
    check.add_argument("--backend", choices=tinyres.backend.BACKENDS)
    check.add_argument("--seed", type=int, default=0)
    check.set_defaults(run=cmd_gradcheck)
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
