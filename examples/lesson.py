"""What every example shares: its command-line options, its numbered steps, its output folder.

An example is a lesson that prints what happens, step by step:

    from lesson import Lesson
    lesson = Lesson(__file__, __doc__)          # reads --step, --smoke, --out, --seed
    lesson.step("Build a small graph")          # "== Step 1: Build a small graph ====="
    ...
    lesson.save(fig, "graph.png")               # examples/out/01_autograd/graph.png, and says so

Options every example takes:

    --step        pause for Enter before each step after the first (read at your own pace), and
                  run the readable reference kernels (tinyres/functional/), the code a
                  breakpoint or a debugger steps into, instead of the fast ones
    --smoke       a seconds-long run with tiny sizes, to check the script works (what the tests
                  run); the environment variable TINYRES_SMOKE=1 does the same
    --out DIR     where figures and files go (default: examples/out/<example name>/)
    --seed N      the seed of every random number (default 0)

An example adds its own options with ``Lesson(__file__, __doc__, options=add)``, where ``add``
takes the argparse parser.
"""
import argparse
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy

HERE = Path(__file__).resolve().parent


class Lesson:
    """The parsed options of one example, and the helpers it prints and saves with."""

    def __init__(self, script, doc, options=None, argv=None):
        self.name = Path(script).stem
        parser = argparse.ArgumentParser(
            prog=Path(script).name, description=(doc or "").strip().split("\n")[0],
            epilog="Every example also honours TINYRES_SMOKE=1 (as --smoke).")
        parser.add_argument("--step", action="store_true",
                            help="pause for Enter between the steps")
        parser.add_argument("--smoke", action="store_true",
                            help="run in seconds at tiny sizes (also: TINYRES_SMOKE=1)")
        parser.add_argument("--out", type=Path, default=None,
                            help=f"folder for figures and files (default examples/out/"
                                 f"{self.name}/)")
        parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        if options is not None:
            options(parser)
        self.args = parser.parse_args(argv)
        self.smoke = self.args.smoke or os.environ.get("TINYRES_SMOKE", "") not in ("", "0")
        self.pausing = self.args.step
        self.out = self.args.out or HERE / "out" / self.name
        self.seed = self.args.seed
        self.rng = numpy.random.default_rng(self.seed)
        self.steps = 0
        numpy.set_printoptions(precision=4, suppress=True, linewidth=100)
        import tinyres
        tinyres.manual_seed(self.seed)
        if self.smoke:
            print(f"[{self.name}: smoke run, tiny sizes]")
        if self.pausing:        # the code a learner steps through is the code that runs
            tinyres.set_kernels("reference")
            print(f"[{self.name} --step: the readable reference kernels run (tinyres/functional/"
                  "*.py, as in `with tinyres.reference_kernels():`); a breakpoint there fires]")

    def pick(self, full, smoke):
        """`full` normally, `smoke` under --smoke: ``epochs = lesson.pick(30, 1)``."""
        return smoke if self.smoke else full

    def step(self, title):
        """Print the next step's heading (after waiting for Enter, under --step)."""
        if self.pausing and self.steps > 0:
            try:
                input("\n   ... press Enter for the next step ")
            except EOFError:                  # no keyboard (a pipe): carry on
                self.pausing = False
        self.steps += 1
        head = f"== Step {self.steps}: {title} "
        print("\n" + head + "=" * max(3, 78 - len(head)))

    def path(self, filename):
        """`filename` in this example's output folder (created on first use)."""
        self.out.mkdir(parents=True, exist_ok=True)
        return self.out / filename

    def save(self, fig, filename):
        """Save a matplotlib figure as a PNG in the output folder and say where it went."""
        path = self.path(filename)
        fig.savefig(path, dpi=100, bbox_inches="tight")
        print(f"   figure: {path}")
        return path

    def figure(self, *args, figsize=None, **kwargs):
        """A new matplotlib figure (drawn off screen, for saving) and its axes, as
        ``plt.subplots`` gives them: ``fig, ax = lesson.figure()``. The figure has a canvas of
        its own (tinyres/plotting.py): a notebook's backend stays the one it chose."""
        from tinyres.plotting import off_screen_figure
        fig = off_screen_figure(figsize=figsize)
        return fig, fig.subplots(*args, **kwargs)


def show(name, value):
    """Print an array (or Tensor) under its name, with its shape and dtype."""
    data = value.numpy() if hasattr(value, "numpy") and callable(value.numpy) else value
    data = numpy.asarray(data)
    body = str(data).replace("\n", "\n    ")
    print(f"{name}  shape {data.shape}, {data.dtype}:\n    {body}")


def table(header, rows, formats=None):
    """Print rows under a header: text left-aligned, numbers right-aligned (floats as '.3e'
    unless `formats` gives {column: format} otherwise)."""
    formats = formats or {}
    cells = [[formats.get(i, "{:.3e}" if isinstance(v, float) else "{}").format(v)
              for i, v in enumerate(row)] for row in rows]
    numeric = [all(isinstance(row[i], (int, float)) for row in rows) for i in range(len(header))]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]

    def line(values):
        return "  ".join(v.rjust(w) if n else v.ljust(w)
                         for v, w, n in zip(values, widths, numeric)).rstrip()
    print(line([str(h) for h in header]))
    for row in cells:
        print(line(row))


def which_kernel(name, array):
    """Which code an op at the dispatch door runs for `array` now, in words."""
    import tinyres.dispatch
    kernel = tinyres.dispatch.kernel_for(name, array)
    if kernel is None:
        reference = tinyres.dispatch.TWINS[name].reference
        return f"the readable reference {reference.__module__}.{reference.__name__}"
    return f"the fast kernel {kernel.__module__}.{kernel.__name__} (Numba; its readable twin " \
           "is in tinyres/functional/)"


def relative_error(a, b):
    """max |a - b| / max(|a|, |b|, 1e-12), over all elements: 0 means identical."""
    a, b = numpy.asarray(a, dtype=numpy.float64), numpy.asarray(b, dtype=numpy.float64)
    scale = numpy.maximum(numpy.maximum(numpy.abs(a), numpy.abs(b)), 1e-12)
    return float((numpy.abs(a - b) / scale).max()) if a.size else 0.0


def find_cifar(given=None, prefer_full=False):
    """What to train on, as (what to pass as `data`, a description).

    `given` (a --data folder, or 'sample') wins. Otherwise: with `prefer_full`, the full CIFAR-10
    when it is in the cache; else the real CIFAR-10 sample bundled with tinyres ('sample': 5,482
    training and 1,017 test images, the labs' data).
    """
    from tinyres.data import CIFAR10, DatasetError
    if given:
        return given, ("the sample bundled with tinyres" if given == "sample" else str(given))
    if prefer_full:
        try:
            CIFAR10(None, train=False, download=False)
            return None, "the full CIFAR-10 (from the cache)"
        except DatasetError:
            pass
    return "sample", "the CIFAR-10 sample bundled with tinyres"


def first(dataset, count):
    """The first `count` images of a data set, as a small data set of its own (quick runs)."""
    if count is None or count >= len(dataset.labels):
        return dataset
    return SimpleNamespace(images=dataset.images[:count], labels=dataset.labels[:count],
                           classes=dataset.classes,
                           source=f"{getattr(dataset, 'source', 'data')}, first {count}")


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)
