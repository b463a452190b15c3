"""Lab: layer responses — the paper's Fig. 7, on the nets the degradation lab trained.

The paper (section 4.2, "Analysis of Layer Responses") measures, for every 3x3 conv layer, the
standard deviation of its response: the output of the layer's batch norm, before the ReLU or the
addition of the shortcut. Its two observations:
  1. "ResNets have generally smaller responses than their plain counterparts", supporting the
     idea that residual functions are generally closer to zero than non-residual ones;
  2. "the deeper ResNet has smaller magnitudes of responses" (ResNet-20, 56 and 110): with more
     layers, each layer of a ResNet modifies the signal less.

Here: the degradation lab's checkpoints (plain and ResNet, 20 and 56 layers, or its --depths;
trained by it first if they are missing), the first 500 test images, batch norm in evaluation
mode (its running statistics). A layer's std is that of each output channel over the images and
positions, averaged over the channels (the spread of a channel's values, not the offsets between
channels). Every batch norm of these nets follows a 3x3 conv, so every batch norm's output is
one point. Each observation is checked seed by seed.
"""
import csv

import numpy

from tinyres import load
from tinyres.data import DataLoader, Normalize
from tinyres.labs import degradation
from tinyres.labs.runs import LabError
from tinyres.models import get_model
from tinyres.models.views import block_outputs
from tinyres.nn import BatchNorm2d
from tinyres.train import load_cifar

IMAGES = 500


def run(options, out):
    design = degradation.design_for(options)
    trained = degradation.lab_runs(degradation.specs(design, options.data),
                                   out.parent / out.name.replace("responses", "degradation"),
                                   options)
    if not trained:
        raise LabError(f"--report-only: the degradation lab has no checkpoint yet under "
                       f"{out.parent / out.name.replace('responses', 'degradation')}; train its "
                       f"nets with `tinyres lab degradation`")
    test_set = load_cifar(options.data, train=False)
    images = next(iter(DataLoader(test_set, min(IMAGES, len(test_set.labels)),
                                  transform=Normalize())))[0]
    stds = {}                    # (model, seed) -> [std of each 3x3 layer's response, in order]
    epochs = {}                  # (model, seed) -> epochs its checkpoint has trained
    branch_ends = {}             # depth -> which of those layers end a block's branch F (its bn2)
    for spec, directory in trained.items():
        model = get_model(spec.model)
        state = load(directory / "checkpoint.npz")
        model.load_state_dict(state["model"])
        epochs[(spec.model, spec.seed)] = int(state["progress"]["epochs_done"])
        responses = block_outputs(model, images, kinds=(BatchNorm2d,), training=False)
        stds[(spec.model, spec.seed)] = [float(r.std(axis=(0, 2, 3)).mean())
                                         for r in responses.values()]
        if spec.model.startswith("resnet"):
            branch_ends[int(spec.model[len("resnet"):])] = [path.endswith(".bn2")
                                                           for path in responses]
    write_csv(stds, out / "responses.csv")
    plot(stds, design, out / "responses.png", len(images))
    text = report(stds, design, len(images), branch_ends, epochs)
    (out / "report.txt").write_text(text)
    print(text)
    print(f"figure {out / 'responses.png'}, every layer's std in {out / 'responses.csv'}")
    return 0


def write_csv(stds, path):
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "seed", "layer_index", "std", "rank_by_size"])
        for (model, seed), values in stds.items():
            ranks = numpy.argsort(numpy.argsort(values)[::-1]) + 1
            for index, (value, rank) in enumerate(zip(values, ranks), start=1):
                writer.writerow([model, seed, index, f"{value:.6g}", int(rank)])


def mean_over_seeds(stds, model, seeds):
    """Per layer (by index) and sorted (largest first), each averaged over the seeds that have
    the net (all of them, once the degradation lab has finished)."""
    runs = numpy.array([stds[(model, seed)] for seed in seeds if (model, seed) in stds])
    return runs.mean(axis=0), numpy.sort(runs, axis=1)[:, ::-1].mean(axis=0)


def plot(stds, design, path, image_count):
    from tinyres.plotting import off_screen_figure

    fig = off_screen_figure(figsize=(8, 7))
    axes = fig.subplots(2, 1)
    styles = {"plain": "--", "resnet": "-"}
    for family, title in degradation.FAMILIES:
        for depth in design.depths:
            if not any((f"{family}{depth}", s) in stds for s in design.seeds):
                continue                # (--report-only: not begun yet)
            by_layer, by_size = mean_over_seeds(stds, f"{family}{depth}", design.seeds)
            colour = degradation.DEPTH_COLOURS.get(depth, "tab:brown")
            for ax, values in zip(axes, (by_layer, by_size)):
                ax.plot(range(1, len(values) + 1), values, styles[family], color=colour,
                        marker="o", markersize=2.5, linewidth=1.2, label=f"{title}-{depth}")
    axes[0].set_xlabel("layer index (3x3 conv layers, input to output)")
    axes[1].set_xlabel("layer index, sorted by magnitude")
    seeds = sorted({seed for _, seed in stds})          # (--report-only: those begun)
    for ax in axes:
        ax.set_ylabel("std of the response")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, ncol=2)
    fig.suptitle(f"Layer responses (the paper's Fig. 7): std after BN, before ReLU/addition\n"
                 f"{image_count} test images, mean of {len(seeds)} "
                 f"seed{'s' if len(seeds) > 1 else ''} ({', '.join(map(str, seeds))}); dashed: "
                 f"plain, solid: ResNet", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def smaller_than_plain(stds, depth, seed):
    """Observation 1 at one depth and seed: at how many layers the ResNet's response is below
    the plain net's at the same layer, and the ratio of their mean stds."""
    residual = numpy.array(stds[(f"resnet{depth}", seed)])
    plain = numpy.array(stds[(f"plain{depth}", seed)])
    smaller = int((residual < plain).sum())
    return {"seed": seed, "smaller": smaller, "layers": len(plain),
            "ratio": residual.mean() / plain.mean(),
            "holds": bool(smaller > len(plain) / 2 and residual.mean() < plain.mean())}


def _seeds_with(stds, seeds, *models):
    """The seeds that have a net of every one of `models`."""
    return [s for s in seeds if all((model, s) in stds for model in models)]


def _outcome(held, checked):
    return f"-> {degradation.verdict(held, checked)}" if checked else "-> not checked yet"


def report(stds, design, image_count, branch_ends, epochs):
    seeds = design.seeds
    lines = [f"Layer responses of the degradation lab's nets ({image_count} test images, batch "
             f"norm in evaluation mode; a layer's std: per channel, averaged over channels), "
             f"seeds {', '.join(map(str, seeds))}."]
    unfinished = {key: done for key, done in epochs.items() if done < design.epochs}
    if unfinished or len(stds) < 2 * len(design.depths) * len(seeds):
        lines.append(f"NOT FINISHED (--report-only): nets as far as they have got (of "
                     f"{design.epochs} epochs): " + ", ".join(
                         f"{degradation.model_title(m)} seed {s} after epoch {n}"
                         for (m, s), n in sorted(unfinished.items())) + "; the others not "
                     "begun or finished.")
    lines += ["", f"{'net':<12}{'layers':>8}{'mean std':>10}{'median':>9}{'max':>8}   per seed"]
    for family, title in degradation.FAMILIES:
        for depth in design.depths:
            model = f"{family}{depth}"
            if not any((model, s) in stds for s in seeds):
                lines.append(f"{title + '-' + str(depth):<12}{'-':>8}")
                continue
            by_layer, _ = mean_over_seeds(stds, model, seeds)
            per_seed = " ".join(f"{numpy.mean(stds[(model, s)]):.3f}" if (model, s) in stds
                                else "-" for s in seeds)
            lines.append(f"{title + '-' + str(depth):<12}{len(by_layer):>8}"
                         f"{by_layer.mean():>10.3f}{numpy.median(by_layer):>9.3f}"
                         f"{by_layer.max():>8.3f}   {per_seed}")

    lines += ["", "Observation 1, \"ResNets have generally smaller responses than their plain "
              "counterparts\" (holds in a seed where the ResNet's response is smaller at more "
              "than half of the layers and its mean std is smaller):"]
    for depth in design.depths:
        checks = [smaller_than_plain(stds, depth, s)
                  for s in _seeds_with(stds, seeds, f"resnet{depth}", f"plain{depth}")]
        cells = "; ".join(f"seed {c['seed']}: {c['smaller']} of {c['layers']} layers, ratio "
                          f"{c['ratio']:.2f}" for c in checks)
        lines.append(f"  depth {depth}: {cells + ' ' if cells else ''}"
                     f"{_outcome(sum(c['holds'] for c in checks), len(checks))}")
    lines.append("  the layers that end a block's branch (its second BN: F(x), before the "
                 "addition), mean std over the seeds:")
    for depth in design.depths:
        paired = _seeds_with(stds, seeds, f"resnet{depth}", f"plain{depth}")
        if not paired:
            continue
        ends = numpy.array(branch_ends[depth])
        residual = [numpy.array(stds[(f"resnet{depth}", s)]) for s in paired]
        plain = [numpy.array(stds[(f"plain{depth}", s)]) for s in paired]
        lines.append(f"  depth {depth}: {int(ends.sum())} layers, "
                     f"{numpy.mean([r[ends] for r in residual]):.3f} in the ResNet against "
                     f"{numpy.mean([p[ends] for p in plain]):.3f} at the same layers of the "
                     f"plain net, and {numpy.mean([r[~ends] for r in residual]):.3f} at the "
                     f"ResNet's other layers")

    lines += ["", "Observation 2, \"the deeper ResNet has smaller magnitudes of responses\" "
              "(holds in a seed where the deeper ResNet's mean std is the smaller):"]
    for shallow, deep in design.pairs:
        paired = _seeds_with(stds, seeds, f"resnet{deep}", f"resnet{shallow}")
        means = [(s, numpy.mean(stds[(f"resnet{deep}", s)]),
                  numpy.mean(stds[(f"resnet{shallow}", s)])) for s in paired]
        cells = "; ".join(f"seed {s}: {d:.3f} against {h:.3f}" for s, d, h in means)
        lines.append(f"  ResNet-{deep} against ResNet-{shallow}: {cells + ' ' if cells else ''}"
                     f"{_outcome(sum(d < h for _, d, h in means), len(means))}")
    return "\n".join(lines) + "\n"
