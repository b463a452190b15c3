"""Lab: depth — the trend of the paper's Table 6 (ResNet-20/32/44/56 on CIFAR-10) on the subset.

The paper trains each ResNet for 64k iterations on 50,000 images: test error falls from 8.75 %
(ResNet-20) to 6.97 % (ResNet-56) and 6.43 % (ResNet-110), then rises to 7.93 % for ResNet-1202,
which the paper puts down to overfitting (its training error is as low as ResNet-110's). This lab
trains the same nets with the degradation lab's recipe (840 iterations on 5,482 images, warm-up,
lr drops at 50 % and 75 %; its ResNet-20 runs are reused) and sets beside the paper's figures what
a few minutes per net can show: parameters and multiply-adds (exact, whatever the data), seconds
per epoch (measured here), and the training and test error after the short schedule.

What a 5k-image subset cannot show is Table 6's ordering of test errors: 840 iterations are 1.3 %
of the paper's schedule, the deeper nets are further from converged, and 1,017 test images give a
few points of noise. With ten times fewer images than CIFAR-10, a deeper net also overfits sooner
(the paper's ResNet-1202 lesson, at a smaller scale).
"""
import csv
import dataclasses

import numpy

from tinyres.labs import degradation
from tinyres.labs.runs import RunSpec, load_run, train_runs
from tinyres.models import get_model
from tinyres.models.summary import summary

# The paper's Table 6 (CIFAR-10, option A): parameters and test error (%), 64k iterations.
PAPER = {20: ("0.27M", 8.75), 32: ("0.46M", 7.51), 44: ("0.66M", 7.17), 56: ("0.85M", 6.97),
         110: ("1.7M", 6.43), 1202: ("19.4M", 7.93)}


@dataclasses.dataclass
class Design:
    depths: tuple = (20, 32, 44, 56)
    seeds: tuple = (0,)


def design_for(options):
    design = Design(depths=(8, 14)) if options.smoke else Design()
    if options.seeds:
        design.seeds = tuple(range(options.seeds))
    return design


def run(options, out):
    recipe = degradation.design_for(options)      # the same schedule: its runs are reused
    design = design_for(options)
    specs = [RunSpec(f"resnet{depth}", seed, recipe.epochs, recipe.warmup, options.data,
                     recipe.limit_train, recipe.batch_size)
             for depth in sorted(design.depths, reverse=True) for seed in design.seeds]
    reuse = out.parent / out.name.replace("depth", "degradation")
    runs = train_runs(specs, out, options.jobs, options.threads,
                      show_progress=not options.quiet, reuse=reuse)
    rows = [measure(depth, [load_run(runs[s]) for s in specs if s.model == f"resnet{depth}"])
            for depth in design.depths]
    write_csv(rows, out / "depth.csv")
    plot(rows, out / "depth.png", recipe)
    text = report(rows, design, recipe)
    (out / "report.txt").write_text(text)
    print(text)
    print(f"figure {out / 'depth.png'}, the table in {out / 'depth.csv'}")
    return 0


def measure(depth, runs):
    """One row of the table: size and cost of ResNet-`depth`, and its runs' results."""
    counted = summary(get_model(f"resnet{depth}"), (3, 32, 32), show=False)
    # the first epoch also compiles the fast kernels: the time per epoch is the median of the rest
    seconds = [numpy.median([e["epoch_seconds"] for e in run["epochs"][1:]]) for run in runs]
    return {"depth": depth, "params": counted.total_params, "macs": counted.total_macs,
            "seconds_per_epoch": float(numpy.mean(seconds)),
            "train_error": float(numpy.mean([degradation.epoch_train_error(run, -1)
                                             for run in runs])),
            "test_error": float(numpy.mean([run["epochs"][-1]["test_error"] for run in runs])),
            "test_errors": [run["epochs"][-1]["test_error"] for run in runs],
            "paper_params": PAPER.get(depth, ("-", None))[0],
            "paper_test_error": PAPER.get(depth, ("-", None))[1]}


def write_csv(rows, path):
    columns = ["depth", "params", "macs", "seconds_per_epoch", "train_error", "test_error",
               "paper_params", "paper_test_error"]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def plot(rows, path, recipe):
    from tinyres.plotting import off_screen_figure

    depths = [r["depth"] for r in rows]
    fig = off_screen_figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2)
    left.plot(depths, [100 * r["test_error"] for r in rows], "o-", linewidth=2,
              label=f"tinyres, subset, {recipe.epochs} epochs: test error")
    left.plot(depths, [100 * r["train_error"] for r in rows], "o--",
              label="tinyres, subset: training error (last epoch)")
    paper = [(r["depth"], r["paper_test_error"]) for r in rows if r["paper_test_error"]]
    if paper:
        left.plot(*zip(*paper), "s-", color="black", label="paper, CIFAR-10, 64k its: test error")
    left.set_xlabel("depth (layers)")
    left.set_ylabel("error (%)")
    left.set_xticks(depths)
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    left.set_title("Error against depth (the paper's Table 6)", fontsize=10)
    right.bar([str(d) for d in depths], [r["seconds_per_epoch"] for r in rows], color="tab:blue")
    for index, r in enumerate(rows):
        right.text(index, r["seconds_per_epoch"], f"{r['macs'] / 1e6:.0f}M MACs\n"
                   f"{r['params'] / 1e6:.2f}M params", ha="center", va="bottom", fontsize=8)
    right.set_xlabel("ResNet depth")
    right.set_ylabel("seconds per epoch (42 steps of 128)")
    right.set_title("Cost: multiply-adds grow linearly with depth; time as measured", fontsize=10)
    right.margins(y=0.25)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def report(rows, design, recipe):
    lines = [f"Depth lab: ResNets trained {recipe.epochs} epochs (warm-up {recipe.warmup} "
             f"iterations), seeds {', '.join(map(str, design.seeds))}; the paper's Table 6 "
             f"beside (CIFAR-10, 64k iterations).", "",
             f"{'net':<11}{'params':>10}{'mult-adds':>11}{'s/epoch':>9}{'train err':>11}"
             f"{'test err':>10}{'paper params':>14}{'paper test err':>16}"]
    for r in rows:
        paper_error = f"{r['paper_test_error']:.2f} %" if r["paper_test_error"] else "-"
        lines.append(f"{'ResNet-' + str(r['depth']):<11}{r['params']:>10,}"
                     f"{r['macs'] / 1e6:>10.1f}M{r['seconds_per_epoch']:>9.1f}"
                     f"{100 * r['train_error']:>10.1f}%{100 * r['test_error']:>9.1f}%"
                     f"{r['paper_params']:>14}{paper_error:>16}")
    best = min(rows, key=lambda r: r["test_error"])
    lines += ["", f"Lowest test error here: ResNet-{best['depth']} "
              f"({100 * best['test_error']:.1f} %); in the paper it falls with every step of "
              f"depth up to 110 layers.",
              "Seconds per epoch were measured on the machine that ran the lab (the median of "
              "the epochs after the first, which compiles the kernels), two runs side by side: "
              "a busy machine makes them larger, and uneven."]
    return "\n".join(lines) + "\n"
