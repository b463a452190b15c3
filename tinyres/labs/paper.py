"""The paper's own recipe for Fig. 6, one flag away: `tinyres lab degradation --paper`.

Section 4.2 of the paper, as written, on the full CIFAR-10 (`--data DIR`, or the cache, or
`--download`):
  data       the 50,000 training images split 45k/5k: the first 45,000 train, the last 5,000
             are the validation set (evaluated once each run has finished); the 10,000 test
             images give the test error after every epoch, as in Fig. 6
  schedule   64k iterations of batch 128: lr 0.1, divided by 10 at 32k and 48k. The Trainer
             counts whole epochs, so this is 182 epochs of 351 iterations (63,882), with the
             drops at 50 % and 75 % of them (31,941 and 47,911)
  nets       plain-20, 32, 44, 56 and ResNet-20, 32, 44, 56, 110 (option A shortcuts)
  warm-up    ResNet-110 only: lr 0.01 for its first 400 iterations, then 0.1. The paper warms
             up "until the training error is below 80 % (about 400 iterations)"; here the 400
             iterations are fixed, so that every run follows a schedule known in advance
  the rest   per-pixel mean subtraction, 4-pixel padding, random crops and flips, SGD with
             momentum 0.9, weight decay 1e-4, He initialisation, one seed (`--seeds N` for more)

Before it trains, the lab times a few training steps of every net on this machine and prints
how long the whole lab will take; then it trains, resumably as every lab, and writes
degradation.png (the paper's Fig. 6 layout), curves.csv and report.txt (training, validation and
test error of every net beside the paper's Table 6). `--paper --smoke` runs the same code at a
tiny size on the bundled sample.
"""
import dataclasses
import time
from types import SimpleNamespace

import numpy

from tinyres.labs import degradation
from tinyres.labs.runs import LabError, RunSpec
from tinyres.train.metrics import read_metrics

# The paper's Table 6 (CIFAR-10, option A shortcuts): test error (%).
PAPER_TEST_ERROR = {"resnet20": 8.75, "resnet32": 7.51, "resnet44": 7.17, "resnet56": 6.97,
                    "resnet110": 6.43}
FULL_TRAINING_SET = 50000


@dataclasses.dataclass(frozen=True)
class PaperDesign:
    plain: tuple = (20, 32, 44, 56)
    resnet: tuple = (20, 32, 44, 56, 110)
    iterations: int = 64000
    train_images: int = 45000           # the first ones; the next `val_images` validate
    val_images: int = 5000
    batch_size: int = 128
    warmup: tuple = (("resnet110", 400),)    # (model, iterations at lr 0.01)
    seeds: tuple = (0,)
    timed_steps: int = 3                # steps timed per net (after one that compiles kernels)

    @property
    def steps_per_epoch(self):
        return self.train_images // self.batch_size

    @property
    def epochs(self):
        return max(1, round(self.iterations / self.steps_per_epoch))

    @property
    def models(self):
        """Deepest first: the longest runs start first."""
        nets = [f"plain{d}" for d in self.plain] + [f"resnet{d}" for d in self.resnet]
        return sorted(nets, key=lambda model: -degradation.split_model(model)[1])


PAPER = PaperDesign()
SMOKE = PaperDesign(plain=(8,), resnet=(8, 14), iterations=16, train_images=256, val_images=128,
                    batch_size=32, warmup=(("resnet14", 4),), timed_steps=1)


def design_for(options):
    design = SMOKE if options.smoke else PAPER
    if options.seeds:
        design = dataclasses.replace(design, seeds=tuple(range(options.seeds)))
    if options.epochs:
        design = dataclasses.replace(design, iterations=options.epochs * design.steps_per_epoch)
    return design


def specs(design, data):
    warmups = dict(design.warmup)
    return [RunSpec(model, seed, design.epochs, warmups.get(model, 0), data,
                    design.train_images, design.batch_size, normalize="pixel")
            for seed in design.seeds for model in design.models]


def find_data(options):
    """The CIFAR-10 folder the recipe trains on (downloaded first with --download), checked to
    hold the whole training set; under --smoke, the bundled sample (or --data)."""
    from tinyres.data import CIFAR10, DatasetError, default_data_root
    if options.smoke:
        return options.data or "sample"
    if options.data == "sample":
        raise LabError("--paper trains on the full CIFAR-10; the bundled sample has 5,482 "
                       "training images. Give --data DIR (a CIFAR-10 folder) or --download, or "
                       "leave out --paper for the lab's subset design")
    folder = str(options.data or default_data_root())
    try:
        found = CIFAR10(folder, train=True, download=options.download)
    except DatasetError as err:
        raise LabError(f"--paper needs the full CIFAR-10: {err}. Give --data DIR (a CIFAR-10 "
                       f"folder) or add --download") from None
    if len(found.labels) < FULL_TRAINING_SET:
        raise LabError(f"--paper trains on the full CIFAR-10 (50,000 training images, split "
                       f"45k/5k); {folder} has {len(found.labels):,}. Give --data DIR with the "
                       f"whole set, or --download; for a subset leave out --paper")
    return folder


def measure_seconds(model_name, images, labels, design):
    """(seconds of a training step: forward, loss, backward, SGD; seconds of an evaluation
    forward) on one batch, each the median of `design.timed_steps`, after one step that
    compiles the kernels and is not counted."""
    import tinyres
    from tinyres.models import get_model
    from tinyres.optim import SGD
    from tinyres.train.loop import train_step

    tinyres.manual_seed(0)
    model = get_model(model_name)
    optimizer = SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    train_step(model, images, labels, optimizer)
    step, forward = [], []
    for _ in range(design.timed_steps):
        start = time.perf_counter()
        train_step(model, images, labels, optimizer)
        step.append(time.perf_counter() - start)
        model.eval()
        start = time.perf_counter()
        with tinyres.no_grad():
            model(images)
        forward.append(time.perf_counter() - start)
        model.train()
    return float(numpy.median(step)), float(numpy.median(forward))


def estimate(design, data, todo, jobs, threads):
    """Print how long the runs still to do (spec, steps left, epochs left) will take here, from
    the step and evaluation times measured now."""
    import tinyres
    from tinyres.data import DataLoader, Normalize
    from tinyres.train import load_cifar

    if not todo:
        return
    if threads:
        tinyres.set_num_threads(threads)
    batch = next(iter(DataLoader(load_cifar(data, True), design.batch_size,
                                 transform=Normalize())))
    images, labels = tinyres.tensor(batch[0]), tinyres.tensor(batch[1])
    test_batches = len(load_cifar(data, False).labels) / design.batch_size
    measured = {model: measure_seconds(model, images, labels, design)
                for model in dict.fromkeys(spec.model for spec, _, _ in todo)}
    run_seconds = sorted((steps * measured[spec.model][0]
                          + epochs * test_batches * measured[spec.model][1]
                          for spec, steps, epochs in todo), reverse=True)
    workers = [0.0] * jobs              # longest run first, each to the least busy worker
    for seconds in run_seconds:
        workers[workers.index(min(workers))] += seconds
    print(f"The paper's recipe: {design.epochs} epochs of {design.steps_per_epoch} iterations "
          f"({design.epochs * design.steps_per_epoch:,}), {len(todo)} runs to train. Measured "
          f"here on a batch of {design.batch_size} ({threads or 'all'} "
          f"thread{'s' if threads != 1 else ''}, alone; median of {design.timed_steps} after a "
          f"step that compiles the kernels), a training step and a test forward:")
    for model, (step, forward) in measured.items():
        print(f"  {degradation.model_title(model):<11} {step:6.2f} s/step  {forward:6.2f} s")
    print(f"Estimated time with --jobs {jobs}: {_duration(max(workers))} (runs side by side "
          f"share the memory bandwidth: expect more; Ctrl-C stops, the same command resumes)",
          flush=True)


def _duration(seconds):
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} hours"
    if seconds >= 120:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds:.0f} seconds"


def still_to_do(spec, directory):
    """(training steps, epochs) the run in `directory` has still to do."""
    steps = len(read_metrics(directory / "iterations.csv"))
    epochs = len(read_metrics(directory / "metrics.csv"))
    return spec.epochs * (spec.limit_train // spec.batch_size) - steps, spec.epochs - epochs


def validation_error(directory, data, design):
    """The finished run's error on the held-out images (the `val_images` after its training
    images), with the run's own normalisation (the mean image of its training images)."""
    from tinyres.data import DataLoader
    from tinyres.train import Evaluation, evaluate, load_cifar

    run = Evaluation.of_checkpoint(directory / "checkpoint.npz")
    full = load_cifar(data, True)
    first, last = design.train_images, design.train_images + design.val_images
    held_out = SimpleNamespace(images=full.images[first:last], labels=full.labels[first:last])
    loader = DataLoader(held_out, 500, transform=run.test_transform)
    return 1 - evaluate(run.model, loader, run.device)["test_accuracy"]


def run(options, out):
    design = design_for(options)
    data = find_data(options)
    wanted = specs(design, data)
    if not options.report_only:
        todo = [(spec, *still_to_do(spec, out / spec.name)) for spec in wanted]
        estimate(design, data, [row for row in todo if row[2] > 0], options.jobs,
                 options.threads)
    results = degradation.gather(wanted, out, options)
    validation = {key: validation_error(out / f"{key[0]}-seed{key[1]}", data, design)
                  for key in results}
    degradation.write_curves(results, out / "curves.csv")
    name = degradation.data_name(results[next(iter(results))]["config"])
    panels = [("plain nets (the paper's Fig. 6, left)",
               [("plain", d, degradation.DEPTH_COLOURS.get(d, "tab:brown")) for d in design.plain
                if degradation.seeds_of(results, f"plain{d}", design.seeds)]),
              ("ResNets (the paper's Fig. 6, middle)",
               [("resnet", d, degradation.DEPTH_COLOURS.get(d, "tab:brown")) for d in design.resnet
                if degradation.seeds_of(results, f"resnet{d}", design.seeds)])]
    degradation.draw(results, [panel for panel in panels if panel[1]], design.seeds,
                     out / "degradation.png", f"The paper's recipe: "
                     f"{design.epochs * design.steps_per_epoch:,} iterations on {name}", columns=2)
    text = report(results, validation, design, name)
    (out / "report.txt").write_text(text)
    print(text)
    print(f"figure {out / 'degradation.png'}, every curve in {out / 'curves.csv'}, runs in "
          f"{out}/<model>-seed<N>/")
    return 0


def report(results, validation, design, name):
    """Each net's training, validation and test error (means over the seeds it has), beside
    the paper's Table 6; a net not finished says after which epoch it was read."""
    lines = [f"The paper's recipe (section 4.2): {design.epochs} epochs of "
             f"{design.steps_per_epoch} iterations, lr 0.1 / 10 at 50 % and 75 %, a warm-up "
             f"at lr 0.01 for " + ", ".join(f"{degradation.model_title(model)} ({steps} "
                                           f"iterations)" for model, steps in design.warmup)
             + f", per-pixel mean subtraction; seeds {', '.join(map(str, design.seeds))}.",
             f"Data: {name}; validation: the {design.val_images:,} training images after the "
             f"first {design.train_images:,}.", "",
             f"{'net':<11}{'train err':>11}{'val err':>10}{'test err':>10}{'paper test err':>16}"
             f"   epochs"]
    for model in sorted(design.models, key=degradation.split_model):
        seeds = degradation.seeds_of(results, model, design.seeds)
        paper = PAPER_TEST_ERROR.get(model)
        paper = f"{paper:.2f} %" if paper else "-"
        if not seeds:
            lines.append(f"{degradation.model_title(model):<11}{'not begun':>11}{'':>36}"
                         f"{paper:>16}")
            continue
        train = numpy.mean([degradation.final(results, model, s) for s in seeds])
        test = numpy.mean([degradation.final(results, model, s, "test_error") for s in seeds])
        val = numpy.mean([validation[(model, s)] for s in seeds])
        epochs = "/".join(str(len(results[(model, s)]["epochs"])) for s in seeds)
        lines.append(f"{degradation.model_title(model):<11}{100 * train:>10.2f}%"
                     f"{100 * val:>9.2f}%{100 * test:>9.2f}%{paper:>16}   {epochs} of "
                     f"{design.epochs}")
    return "\n".join(lines) + "\n"
