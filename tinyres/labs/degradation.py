"""Lab: the degradation problem — the paper's Fig. 6 (left and middle) at its depths, 20 and 56.

The paper (section 4.2, Fig. 6) trains plain nets and ResNets of 20, 32, 44 and 56 layers on
CIFAR-10 for 64k iterations: the deeper *plain* net has the HIGHER training error (an optimisation
failure, not overfitting), while the deeper *ResNet* has the lower one. This lab trains both
families at 20 and 56 layers (or the depths of `--depths`) on the project's 5,482-image subset,
seed after seed, and draws them in the paper's layout: training error at every iteration (thin),
test error after every epoch (bold), one colour per depth; and plain against ResNet at the
deeper depth.

Its design, and where it departs from the paper (each measured; docs/labs.md has the numbers):
  * 20 and 56 layers, as the paper's Fig. 6: plain-56 against plain-20 (degradation) and
    plain-56 against ResNet-56 (the shortcut at the same depth).
  * the deeper ResNet training better is checked too, whichever way it comes out: on 5,482
    images ResNet-20 fits the training set before ResNet-56 catches up (PyTorch, the same
    recipe: ResNet-56 behind ResNet-20 for all of 100 epochs), so that half shows at 8 and 20
    layers (`--depths 8 20 --epochs 20`, the lab of 2026-12-05).
  * 12 epochs of 42 iterations (504), lr / 10 at 50 % and 75 % as in the paper: what two shared
    cores train in a session at 56 layers.
  * a warm-up of 100 iterations at lr 0.01 for every net (the paper's remedy for ResNet-110):
    without it plain-56 stays at chance on the subset, and all nets share one schedule.
  * 3 seeds, trained seed by seed (all nets of seed 0 first), so that `--seeds N` reports on
    the first N as soon as they have finished.
"""
import csv
import dataclasses

import numpy

from tinyres.labs.runs import LabError, RunSpec, load_run, started_runs, train_runs
from tinyres.models.cifar_resnet import MODELS
from tinyres.train.curves import draw_curves, finish_axis, mark_lr_changes


@dataclasses.dataclass
class Design:
    depths: tuple = (20, 56)
    seeds: tuple = (0, 1, 2)
    epochs: int = 12
    warmup: int = 100
    limit_train: int | None = None
    batch_size: int = 128

    @property
    def pairs(self):
        """The (shallower, deeper) depths compared: neighbours, the deepest pair first."""
        depths = sorted(self.depths)
        return list(zip(depths, depths[1:]))[::-1]


FULL = Design()
SMOKE = Design(depths=(8, 14), seeds=(0,), epochs=2, warmup=2, limit_train=128, batch_size=32)
FAMILIES = (("plain", "plain"), ("resnet", "ResNet"))
DEPTH_COLOURS = {8: "tab:green", 14: "tab:blue", 20: "tab:orange", 32: "tab:blue",
                 44: "tab:purple", 56: "tab:red", 110: "black"}
FAMILY_COLOURS = {"plain": "tab:gray", "resnet": "tab:blue"}
CHANCE = 0.9                            # training error of a 10-class guess
WINDOW = 20                             # the thin curve: mean training error of the last batches


def design_for(options):
    design = dataclasses.replace(SMOKE if options.smoke else FULL)
    if options.epochs:
        design.epochs = options.epochs
    if options.seeds:
        design.seeds = tuple(range(options.seeds))
    if options.depths:
        design.depths = checked_depths(options.depths)
    return design


def checked_depths(depths):
    """--depths: two or more of the depths that have a plain net and a ResNet for CIFAR."""
    known = sorted(int(name[len("plain"):]) for name in MODELS if name.startswith("plain"))
    depths = tuple(sorted(set(depths)))
    if len(depths) < 2 or not set(depths) <= set(known):
        raise LabError(f"--depths {' '.join(map(str, depths))}: give two depths or more (they "
                       f"are compared), each one of {', '.join(map(str, known))}")
    return depths


def specs(design, data):
    """The runs, seed after seed (so the first seeds finish first), deepest first within a seed
    (the long runs start early, the short ones fill in at the end)."""
    return [RunSpec(f"{family}{depth}", seed, design.epochs, design.warmup, data,
                    design.limit_train, design.batch_size)
            for seed in design.seeds for depth in sorted(design.depths, reverse=True)
            for family, _ in FAMILIES]


def run(options, out):
    """Train (or resume) every run, then write curves.csv, degradation.png and report.txt;
    with --paper, the paper's own recipe on the full CIFAR-10 (tinyres.labs.paper)."""
    if options.paper:
        from tinyres.labs import paper
        return paper.run(options, out)
    design = design_for(options)
    results = gather(specs(design, options.data), out, options)
    write_curves(results, out / "curves.csv")
    data = data_name(results[next(iter(results))]["config"])
    plot(results, design, out / "degradation.png", data)
    text = report(results, design, data)
    (out / "report.txt").write_text(text)
    print(text)
    print(f"figure {out / 'degradation.png'}, every curve in {out / 'curves.csv'}, "
          f"runs in {out}/<model>-seed<N>/")
    return 0


def gather(wanted, out, options):
    """{(model, seed): run} of the lab's runs: trained (or resumed) to the end; with
    --report-only, as far as each has got (whole epochs; the runs not begun are left out)."""
    results = {(spec.model, spec.seed): whole_epochs(load_run(directory))
               for spec, directory in lab_runs(wanted, out, options).items()}
    results = {key: run for key, run in results.items() if run["epochs"]}
    if not results:
        raise LabError(f"--report-only: no run under {out} has finished an epoch yet; train "
                       f"them with the same command without --report-only")
    return results


def lab_runs(wanted, out, options):
    """{spec: run directory}: every run trained (or resumed) to its end; with --report-only,
    those that have begun, as they are."""
    if options.report_only:
        return started_runs(wanted, out)
    return train_runs(wanted, out, options.jobs, options.threads, show_progress=not options.quiet)


def whole_epochs(run):
    """The run cut to its epochs whose every step is in iterations.csv (a run read while it
    trains may have written an epoch's row before that epoch's steps)."""
    last = run["steps"][-1]["iteration"] if run["steps"] else 0
    epochs = [e for e in run["epochs"] if e["iteration"] <= last]
    end = epochs[-1]["iteration"] if epochs else 0
    return {**run, "epochs": epochs, "steps": [s for s in run["steps"] if s["iteration"] <= end]}


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


def seeds_of(results, model, seeds):
    """The seeds of `seeds` that `model` has a run of."""
    return [seed for seed in seeds if (model, seed) in results]


def mean_over_seeds(results, model, seeds):
    """The seeds' runs of one model averaged step by step and epoch by epoch (over the epochs
    all of them have)."""
    runs = [results[(model, seed)] for seed in seeds_of(results, model, seeds)]
    epochs = min(len(r["epochs"]) for r in runs)
    steps = min(len(r["steps"]) for r in runs)
    return ([{"iteration": s["iteration"], "lr": s["lr"],
              "train_error": numpy.mean([r["steps"][i]["train_error"] for r in runs])}
             for i, s in enumerate(runs[0]["steps"][:steps])],
            [{"iteration": e["iteration"], "epoch": e["epoch"],
              **{k: numpy.mean([r["epochs"][i][k] for r in runs])
                 for k in ("train_error", "test_error")}}
             for i, e in enumerate(runs[0]["epochs"][:epochs])])


def panels(design):
    """The figure's panels, a row of three per depth pair (the deepest pair first):
    [(title, [(family, depth, colour)])]: the plain nets, the ResNets, and plain against ResNet
    at the deeper depth."""
    rows = []
    for low, high in design.pairs:
        rows += [(f"plain-{low} and plain-{high}",
                  [("plain", d, DEPTH_COLOURS.get(d, "tab:brown")) for d in (low, high)]),
                 (f"ResNet-{low} and ResNet-{high}",
                  [("resnet", d, DEPTH_COLOURS.get(d, "tab:brown")) for d in (low, high)]),
                 (f"plain-{high} against ResNet-{high}: the shortcut",
                  [(family, high, FAMILY_COLOURS[family]) for family, _ in FAMILIES])]
    return rows


def plot(results, design, path, data):
    seeds = sorted({seed for _, seed in results})
    title = (f"Degradation (the paper's Fig. 6, left and middle) on {data}; {design.epochs} "
             f"epochs; mean of {len(seeds)} seed{'s' if len(seeds) > 1 else ''} "
             f"({', '.join(map(str, seeds))})")
    unfinished = progress(results, design)
    if unfinished:
        title += f"\nNOT FINISHED: {unfinished}"
    shown = [(panel_title, [net for net in nets if seeds_of(results, f"{net[0]}{net[1]}",
                                                            design.seeds)])
             for panel_title, nets in panels(design)]
    draw(results, [panel for panel in shown if panel[1]], design.seeds, path, title, columns=3)


def progress(results, design):
    """"" when every run has finished, else how far each net has got (--report-only)."""
    nets = []
    for family, _ in FAMILIES:
        for depth in design.depths:
            model = f"{family}{depth}"
            done = [len(results[(model, s)]["epochs"]) if (model, s) in results else 0
                    for s in design.seeds]
            if min(done) < design.epochs:
                nets.append(f"{model_title(model)} " + "/".join(map(str, done)))
    return (f"epochs done (of {design.epochs}) by seed: " + ", ".join(nets)) if nets else ""


def draw(results, panel_list, seeds, path, title, columns):
    """The panels [(title, [(family, depth, colour)])], `columns` to a row, each net's curves
    averaged over the seeds: thin training error, bold test error, dotted lr changes."""
    from tinyres.plotting import off_screen_figure

    rows = -(-len(panel_list) // columns)
    fig = off_screen_figure(figsize=(5 * columns, 4.2 * rows))
    axes = fig.subplots(rows, columns, sharey=True, squeeze=False)
    titles = dict(FAMILIES)
    for ax, (panel_title, nets) in zip(axes.flat, panel_list):
        for family, depth, colour in nets:
            model = f"{family}{depth}"
            steps, epochs = mean_over_seeds(results, model, seeds)
            draw_curves(ax, steps, epochs, colour, f"{titles[family]}-{depth}", WINDOW)
            mark_lr_changes(ax, steps)
        finish_axis(ax, panel_title, WINDOW)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def data_name(config):
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


def epoch_train_errors(run):
    """The training error of every epoch (mean over its augmented batches)."""
    return numpy.array([epoch_train_error(run, i) for i in range(len(run["epochs"]))])


def final(results, model, seed, key="train_error"):
    """The last epoch's training error (mean over its batches) or test error."""
    run = results[(model, seed)]
    return epoch_train_error(run, -1) if key == "train_error" else run["epochs"][-1][key]


def compare(results, higher, lower, seeds):
    """Is `higher`'s training error above `lower`'s, seed by seed (the seeds with both runs,
    over the epochs both have)? Per seed: the last common epoch's errors, the share of epochs
    where it is above, whether it holds: above in that epoch and in more than half of them."""
    verdicts = []
    for seed in seeds:
        if (higher, seed) not in results or (lower, seed) not in results:
            continue
        a = epoch_train_errors(results[(higher, seed)])
        b = epoch_train_errors(results[(lower, seed)])
        a, b = a[:min(len(a), len(b))], b[:min(len(a), len(b))]
        share = float(numpy.mean(a > b))
        verdicts.append({"seed": seed, "higher": a[-1], "lower": b[-1], "share": share,
                         "epochs": len(a), "holds": bool(a[-1] > b[-1] and share > 0.5)})
    return verdicts


def split_model(model):
    """("plain", 56) for "plain56"."""
    family = model.rstrip("0123456789")
    return family, int(model[len(family):])


def model_title(model):
    """"plain-56" for "plain56", "ResNet-110" for "resnet110"."""
    family, depth = split_model(model)
    return f"{dict(FAMILIES)[family]}-{depth}"


def verdict(held, total):
    """"holds in 3 of 3 seeds", or "does NOT hold in 2 of 3 seeds"."""
    return f"{'holds' if held == total else 'does NOT hold'} in {held} of {total} seeds"


def check_lines(claim, higher, lower, verdicts, epochs):
    """The report's lines for one check: the claim, one line per seed, the verdict."""
    held = sum(v["holds"] for v in verdicts)
    lines = [f"{claim}: {model_title(higher)}'s training error above {model_title(lower)}'s "
             f"(in the last epoch and in more than half of the epochs)"]
    for v in verdicts:
        when = "the last epoch" if v["epochs"] == epochs else \
            f"epoch {v['epochs']} (of {epochs}: not finished)"
        lines.append(f"  seed {v['seed']}: {v['higher']:.3f} against {v['lower']:.3f} in {when}; "
                     f"above in {round(v['share'] * v['epochs'])} of {v['epochs']} epochs "
                     f"({v['share']:.0%}): {'holds' if v['holds'] else 'does NOT hold'}")
    lines.append(f"  -> {verdict(held, len(verdicts))}" if verdicts else
                 "  -> not checked yet: no seed has both runs")
    return lines, bool(verdicts) and held == len(verdicts)


def _cell(results, model, seed, design):
    """A table cell: the last epoch's training / test error, and that epoch if not the last."""
    if (model, seed) not in results:
        return f"{'-':>18}"
    epochs = len(results[(model, seed)]["epochs"])
    cell = (f"{final(results, model, seed):.3f} / {final(results, model, seed, 'test_error'):.3f}"
            + (f" @{epochs}" if epochs < design.epochs else ""))
    return f"{cell:>18}"


def checks(design):
    """The report's checks, (claim, the net that should have the higher training error, the
    other): per depth pair the deeper plain net trains worse and the deeper ResNet better; at
    every depth but the shallowest, the ResNet better than the plain net of its depth."""
    found = []
    for low, high in design.pairs:
        found += [("the deeper plain net trains worse", f"plain{high}", f"plain{low}"),
                  ("the shortcut at the same depth", f"plain{high}", f"resnet{high}"),
                  ("the deeper ResNet trains better", f"resnet{low}", f"resnet{high}")]
    return found


def report(results, design, data):
    seeds = design.seeds
    models = [f"{family}{depth}" for family, _ in FAMILIES for depth in design.depths]
    complete = not progress(results, design)
    lines = [f"Degradation lab: depths {', '.join(map(str, design.depths))}, seeds "
             f"{', '.join(map(str, seeds))}, {design.epochs} epochs, warm-up "
             f"{design.warmup} iterations at lr 0.01, then lr 0.1 / 10 at 50 % and 75 %.",
             f"Data: {data}."]
    if not complete:
        lines.append(f"NOT FINISHED (--report-only): the runs as far as they have got; @N: "
                     f"after epoch N of {design.epochs}, -: not begun; "
                     f"{progress(results, design)}.")
    lines += ["", "training error of the last epoch (mean over its augmented batches) / test "
              "error", f"{'net':<12}" + "".join(f"{'seed ' + str(s):>18}" for s in seeds)
              + f"{'mean':>18}"]
    for model in models:
        present = seeds_of(results, model, seeds)
        finished = [s for s in present if len(results[(model, s)]["epochs"]) == design.epochs]
        mean = (f"{numpy.mean([final(results, model, s) for s in finished]):>9.3f} / "
                f"{numpy.mean([final(results, model, s, 'test_error') for s in finished]):.3f}"
                if finished else f"{'-':>17}")
        lines.append(f"{model_title(model):<12}"
                     + "".join(_cell(results, model, s, design) for s in seeds) + f" {mean}")
    marks = sorted({max(1, round(design.epochs * q)) for q in (0.25, 0.5, 0.75, 1)})
    lines += ["", f"training error by epoch ({' / '.join(map(str, marks))}), mean of the seeds "
              f"that reached it"]
    for model in models:
        curves = [epoch_train_errors(results[(model, s)]) for s in seeds_of(results, model, seeds)]
        lines.append(f"{model_title(model):<12}" + " / ".join(
            f"{numpy.mean([c[e - 1] for c in curves if len(c) >= e]):.3f}"
            if any(len(c) >= e for c in curves) else "-" for e in marks))

    outcomes = {"checks that hold in every seed": [], "that do not": [], "not checked yet": []}
    for number, (claim, higher, lower) in enumerate(checks(design), start=1):
        verdicts = compare(results, higher, lower, seeds)
        block, holds = check_lines(f"{number}. {claim}", higher, lower, verdicts, design.epochs)
        outcomes["checks that hold in every seed" if holds else "that do not" if verdicts
                 else "not checked yet"].append(str(number))
        if claim.startswith("the deeper ResNet") and verdicts and not holds:
            block.append("  (on 5,482 images the shallower ResNet fits the training set first: "
                         "PyTorch on the same images has ResNet-56 behind ResNet-20 for all of "
                         "100 epochs; `--depths 8 20 --epochs 20` shows this half)")
        lines += [""] + block
    deepest = f"plain{max(design.depths)}"
    trained = seeds_of(results, deepest, seeds)
    if trained:
        first = [epoch_train_error(results[(deepest, s)], 0) for s in trained]
        last = [final(results, deepest, s) for s in trained]
        training = sum(b < CHANCE - 0.1 and b < a - 0.1 for a, b in zip(first, last))
        lines += ["", f"{model_title(deepest)} is still training, not stuck at chance "
                  f"({CHANCE}), in {training} of {len(first)} seeds (first epoch "
                  f"{numpy.mean(first):.3f}, last {numpy.mean(last):.3f}): a higher training "
                  f"error, not overfitting."]
    summary = "; ".join(f"{kind}: {', '.join(numbers)}" for kind, numbers in outcomes.items()
                        if numbers)
    lines += ["", summary[0].upper() + summary[1:]
              + ("." if complete else " (so far: the runs are not finished).")]
    return "\n".join(lines) + "\n"
