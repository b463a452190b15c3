"""Lab: the degradation problem — the paper's Fig. 6 (left and middle) at a scale a laptop runs.

The paper (section 4.2, Fig. 6) trains plain nets and ResNets of 20, 32, 44 and 56 layers on
CIFAR-10 for 64k iterations: the deeper *plain* net has the HIGHER training error (an optimisation
failure, not overfitting), while the deeper *ResNet* has the lower one. This lab trains the same
two families at two depths on the project's 5,482-image subset, several seeds each, and draws one
panel per family: training error at every iteration (thin), test error after every epoch (bold).

Its design, and where it departs from the paper (each measured; docs/labs.md has the numbers):
  * depths 8 and 20, not 20 and 56: on 5,482 images and 840 iterations plain-56 either stays at
    chance (no warm-up) or trains so slowly that ResNet-56 is still behind ResNet-20 at the end
    (PyTorch, 30 epochs, with warm-up: ResNet-56 0.471 training error against ResNet-20's 0.237).
    Between 8 and 20 layers both findings show: plain-20 above plain-8, ResNet-20 below ResNet-8.
  * 20 epochs of 42 iterations (840), lr / 10 at 50 % and 75 % as in the paper.
  * a warm-up of 100 iterations at lr 0.01 for every net (the paper's remedy for ResNet-110),
    so that all nets share one schedule and the start at lr 0.1 does not decide the race.
  * 3 seeds: on 1,017 test images one run's numbers vary by several points.
"""
import csv
import dataclasses

import numpy

from tinyres.labs.runs import RunSpec, load_run, train_runs
from tinyres.train.curves import draw_curves, finish_axis, mark_lr_changes


@dataclasses.dataclass
class Design:
    depths: tuple = (8, 20)
    seeds: tuple = (0, 1, 2)
    epochs: int = 20
    warmup: int = 100
    limit_train: int | None = None
    batch_size: int = 128


FULL = Design()
SMOKE = Design(depths=(8, 14), seeds=(0,), epochs=2, warmup=2, limit_train=128, batch_size=32)
FAMILIES = (("plain", "plain"), ("resnet", "ResNet"))
COLOURS = ("tab:orange", "tab:blue", "tab:green", "tab:red")
CHANCE = 0.9                            # training error of a 10-class guess


def design_for(options):
    design = dataclasses.replace(SMOKE if options.smoke else FULL)
    if options.epochs:
        design.epochs = options.epochs
    if options.seeds:
        design.seeds = tuple(range(options.seeds))
    return design


def specs(design, data):
    """The runs, deepest first: the long runs start early, the short ones fill in at the end."""
    return [RunSpec(f"{family}{depth}", seed, design.epochs, design.warmup, data,
                    design.limit_train, design.batch_size)
            for depth in sorted(design.depths, reverse=True) for seed in design.seeds
            for family, _ in FAMILIES]


def run(options, out):
    """Train (or resume) every run, then write curves.csv, degradation.png and report.txt."""
    design = design_for(options)
    runs = train_runs(specs(design, options.data), out, options.jobs, options.threads,
                      show_progress=not options.quiet)
    results = {(spec.model, spec.seed): load_run(directory) for spec, directory in runs.items()}
    write_curves(results, out / "curves.csv")
    plot(results, design, out / "degradation.png")
    text = report(results, design)
    (out / "report.txt").write_text(text)
    print(text)
    print(f"figure {out / 'degradation.png'}, every curve in {out / 'curves.csv'}, "
          f"runs in {out}/<model>-seed<N>/")
    return 0


def write_curves(results, path):
    """One CSV of every curve: a row per training step and a row per epoch of every run."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "seed", "kind", "epoch", "iteration", "lr", "train_loss",
                         "train_error", "test_loss", "test_error"])
        for (model, seed), run in results.items():
            for s in run["steps"]:
                writer.writerow([model, seed, "step", "", int(s["iteration"]), s["lr"],
                                 s["train_loss"], s["train_error"], "", ""])
            for e in run["epochs"]:
                writer.writerow([model, seed, "epoch", int(e["epoch"]), int(e["iteration"]),
                                 e["lr"], e["train_loss"], e["train_error"], e["test_loss"],
                                 e["test_error"]])


def mean_over_seeds(results, model, seeds):
    """The seeds' runs of one model averaged step by step and epoch by epoch."""
    runs = [results[(model, seed)] for seed in seeds]
    steps = [{"iteration": s["iteration"], "lr": s["lr"],
              "train_error": numpy.mean([r["steps"][i]["train_error"] for r in runs])}
             for i, s in enumerate(runs[0]["steps"])]
    epochs = [{"iteration": e["iteration"], "epoch": e["epoch"],
               **{k: numpy.mean([r["epochs"][i][k] for r in runs])
                  for k in ("train_error", "test_error")}}
              for i, e in enumerate(runs[0]["epochs"])]
    return steps, epochs


def plot(results, design, path):
    from tinyres.plotting import off_screen_figure

    fig = off_screen_figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2, sharey=True)
    window = 20
    for ax, (family, title) in zip(axes, FAMILIES):
        for depth, colour in zip(design.depths, COLOURS):
            steps, epochs = mean_over_seeds(results, f"{family}{depth}", design.seeds)
            draw_curves(ax, steps, epochs, colour, f"{title}-{depth}", window)
        mark_lr_changes(ax, steps)
        seeds = len(design.seeds)
        finish_axis(ax, f"{title} nets, mean of {seeds} seed{'s' if seeds > 1 else ''}", window)
    data = results[next(iter(results))]["config"]
    fig.suptitle(f"Degradation (the paper's Fig. 6, left and middle) on {_data_name(data)}",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _data_name(config):
    """What the runs trained and tested on, for the figure's title and the report."""
    from tinyres.train import load_cifar
    train_set, test_set = load_cifar(config["data"], True), load_cifar(config["data"], False)
    trained_on = min(len(train_set.labels), config["limit_train"] or len(train_set.labels))
    return (f"{train_set.name}, {trained_on:,} train / {len(test_set.labels):,} test images")


def epoch_train_error(run, index):
    """The mean training error over the augmented batches of epoch `index` (0-based, or -1),
    from iterations.csv: an epoch that was interrupted and resumed half-way counts whole."""
    per_epoch = len(run["steps"]) // len(run["epochs"])
    index %= len(run["epochs"])
    steps = run["steps"][index * per_epoch:(index + 1) * per_epoch]
    return float(numpy.mean([s["train_error"] for s in steps]))


def final(results, model, seed, key="train_error"):
    """The last epoch's training error (mean over its batches) or test error."""
    run = results[(model, seed)]
    return epoch_train_error(run, -1) if key == "train_error" else run["epochs"][-1][key]


def report(results, design):
    shallow, deep = design.depths[0], design.depths[-1]
    lines = [f"Degradation lab: depths {', '.join(map(str, design.depths))}, seeds "
             f"{', '.join(map(str, design.seeds))}, {design.epochs} epochs, warm-up "
             f"{design.warmup} iterations at lr 0.01, then lr 0.1 / 10 at 50 % and 75 %.",
             f"Data: {_data_name(results[next(iter(results))]['config'])}.", "",
             "training error of the last epoch (mean over its augmented batches) / test error",
             f"{'net':<12}" + "".join(f"{'seed ' + str(s):>16}" for s in design.seeds)
             + f"{'mean':>16}"]
    for family, title in FAMILIES:
        for depth in design.depths:
            model = f"{family}{depth}"
            cells = [(final(results, model, s), final(results, model, s, "test_error"))
                     for s in design.seeds]
            means = numpy.mean(cells, axis=0)
            lines.append(f"{title + '-' + str(depth):<12}"
                         + "".join(f"{a:>9.3f} / {b:.3f}" for a, b in cells)
                         + f"{means[0]:>9.3f} / {means[1]:.3f}")
    lines.append("")
    plain_deep = [final(results, f"plain{deep}", s) for s in design.seeds]
    plain_shallow = [final(results, f"plain{shallow}", s) for s in design.seeds]
    first_epoch = [epoch_train_error(results[(f"plain{deep}", s)], 0) for s in design.seeds]
    res_deep = [final(results, f"resnet{deep}", s) for s in design.seeds]
    res_shallow = [final(results, f"resnet{shallow}", s) for s in design.seeds]
    n = len(design.seeds)
    higher = sum(d > s for d, s in zip(plain_deep, plain_shallow))
    training = sum(d < CHANCE - 0.1 and d < f - 0.1 for d, f in zip(plain_deep, first_epoch))
    lower = sum(d <= s for d, s in zip(res_deep, res_shallow))
    lines += [
        f"plain-{deep} has the higher training error than plain-{shallow} in {higher} of {n} "
        f"seeds (mean {numpy.mean(plain_deep):.3f} against {numpy.mean(plain_shallow):.3f}).",
        f"plain-{deep} is still training, not stuck at chance ({CHANCE}), in {training} of {n} "
        f"seeds (first epoch {numpy.mean(first_epoch):.3f}, last {numpy.mean(plain_deep):.3f}).",
        f"ResNet-{deep} has training error at or below ResNet-{shallow} in {lower} of {n} seeds "
        f"(mean {numpy.mean(res_deep):.3f} against {numpy.mean(res_shallow):.3f}).",
        "The paper's finding "
        + ("is reproduced in every seed." if higher == training == lower == n else
           "is NOT reproduced in every seed: see the numbers above."),
    ]
    return "\n".join(lines) + "\n"
