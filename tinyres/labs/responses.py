"""Lab: layer responses — the paper's Fig. 7, on the nets the degradation lab trained.

The paper (section 4.2, "Analysis of Layer Responses") measures, for every 3x3 conv layer, the
standard deviation of its response: the output of the layer's batch norm, before the ReLU or the
addition of the shortcut. Its observation: "ResNets have generally smaller responses than their
plain counterparts", supporting the idea that residual functions are closer to zero than
non-residual ones; and "the deeper ResNet has smaller magnitudes of responses": with more layers,
each layer modifies the signal less.

Here: the degradation lab's checkpoints (trained by it first if they are missing), the first 500
test images, batch norm in evaluation mode (its running statistics). A layer's std is that of
each output channel over the images and positions, averaged over the channels (the spread of a
channel's values, not the offsets between channels). Every batch norm of these nets follows a
3x3 conv, so every batch norm's output is one point.
"""
import csv

import numpy

from tinyres import load
from tinyres.data import DataLoader, Normalize
from tinyres.labs import degradation
from tinyres.labs.runs import train_runs
from tinyres.models import get_model
from tinyres.models.views import block_outputs
from tinyres.nn import BatchNorm2d
from tinyres.train import load_cifar

IMAGES = 500


def run(options, out):
    design = degradation.design_for(options)
    trained = train_runs(degradation.specs(design, options.data),
                         out.parent / out.name.replace("responses", "degradation"),
                         options.jobs, options.threads, show_progress=not options.quiet)
    test_set = load_cifar(options.data, train=False)
    images = next(iter(DataLoader(test_set, min(IMAGES, len(test_set.labels)),
                                  transform=Normalize())))[0]
    stds = {}                    # (model, seed) -> [std of each 3x3 layer's response, in order]
    branch_ends = None           # which of those layers end a block's branch F (its last BN)
    for spec, directory in trained.items():
        model = get_model(spec.model)
        model.load_state_dict(load(directory / "checkpoint.npz")["model"])
        responses = block_outputs(model, images, kinds=(BatchNorm2d,), training=False)
        stds[(spec.model, spec.seed)] = [float(r.std(axis=(0, 2, 3)).mean())
                                         for r in responses.values()]
        if spec.model == f"resnet{design.depths[-1]}":
            branch_ends = [path.endswith(".bn2") for path in responses]
    write_csv(stds, out / "responses.csv")
    plot(stds, design, out / "responses.png", len(images))
    text = report(stds, design, len(images), branch_ends)
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
    """Per layer (by index) and sorted (largest first), each averaged over the seeds."""
    runs = numpy.array([stds[(model, seed)] for seed in seeds])
    return runs.mean(axis=0), numpy.sort(runs, axis=1)[:, ::-1].mean(axis=0)


def plot(stds, design, path, image_count):
    from tinyres.plotting import off_screen_figure

    fig = off_screen_figure(figsize=(7, 6.4))
    axes = fig.subplots(2, 1)
    styles = {"plain": "--", "resnet": "-"}
    for family, title in degradation.FAMILIES:
        for depth, colour in zip(design.depths, degradation.COLOURS):
            by_layer, by_size = mean_over_seeds(stds, f"{family}{depth}", design.seeds)
            for ax, values in zip(axes, (by_layer, by_size)):
                ax.plot(range(1, len(values) + 1), values, styles[family], color=colour,
                        marker="o", markersize=3, label=f"{title}-{depth}")
    axes[0].set_xlabel("layer index (3x3 conv layers, input to output)")
    axes[1].set_xlabel("layer index, sorted by magnitude")
    seeds = len(design.seeds)
    for ax in axes:
        ax.set_ylabel("std of the response")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Layer responses (the paper's Fig. 7): std after BN, before ReLU/addition\n"
                 f"{image_count} test images, mean of {seeds} seed{'s' if seeds > 1 else ''}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def report(stds, design, image_count, branch_ends):
    shallow, deep = design.depths[0], design.depths[-1]
    lines = [f"Layer responses of the degradation lab's nets ({image_count} test images, batch "
             f"norm in evaluation mode; a layer's std: per channel, averaged over channels).",
             "", f"{'net':<12}{'layers':>8}{'mean std':>10}{'median':>9}{'max':>8}   per seed"]
    for family, title in degradation.FAMILIES:
        for depth in design.depths:
            model = f"{family}{depth}"
            by_layer, _ = mean_over_seeds(stds, model, design.seeds)
            per_seed = " ".join(f"{numpy.mean(stds[(model, s)]):.3f}" for s in design.seeds)
            lines.append(f"{title + '-' + str(depth):<12}{len(by_layer):>8}"
                         f"{by_layer.mean():>10.3f}{numpy.median(by_layer):>9.3f}"
                         f"{by_layer.max():>8.3f}   {per_seed}")
    lines.append("")
    for depth in design.depths:
        pairs = [(numpy.array(stds[(f"resnet{depth}", s)]), numpy.array(stds[(f"plain{depth}", s)]))
                 for s in design.seeds]
        smaller = sum(int((residual < plain).sum()) for residual, plain in pairs)
        total = sum(len(plain) for _, plain in pairs)
        ratio = numpy.mean([residual.mean() / plain.mean() for residual, plain in pairs])
        lines.append(f"depth {depth}: the ResNet's response is smaller than the plain net's at "
                     f"the same layer in {smaller} of {total} layers (all seeds); mean std "
                     f"ratio ResNet / plain {ratio:.2f}.")
    ends = numpy.array(branch_ends)
    residual_ends = numpy.mean([numpy.array(stds[(f"resnet{deep}", s)])[ends] for s in design.seeds])
    plain_ends = numpy.mean([numpy.array(stds[(f"plain{deep}", s)])[ends] for s in design.seeds])
    residual_rest = numpy.mean([numpy.array(stds[(f"resnet{deep}", s)])[~ends]
                                for s in design.seeds])
    lines.append(f"depth {deep}, the {int(ends.sum())} layers that end a block's branch (its "
                 f"second BN: F(x), before the addition): mean std {residual_ends:.3f} in the "
                 f"ResNet against {plain_ends:.3f} at the same layers of the plain net, and "
                 f"{residual_rest:.3f} at the ResNet's other layers.")
    deep_mean = [numpy.mean(stds[(f"resnet{deep}", s)]) for s in design.seeds]
    shallow_mean = [numpy.mean(stds[(f"resnet{shallow}", s)]) for s in design.seeds]
    deeper_smaller = sum(d < s for d, s in zip(deep_mean, shallow_mean))
    lines.append(f"ResNet-{deep}'s mean response std below ResNet-{shallow}'s in {deeper_smaller} "
                 f"of {len(design.seeds)} seeds ({numpy.mean(deep_mean):.3f} against "
                 f"{numpy.mean(shallow_mean):.3f}): the paper's second observation (the deeper "
                 f"ResNet, the smaller its responses) "
                 + ("holds here." if deeper_smaller == len(design.seeds) else
                    "does NOT hold in every seed here."))
    return "\n".join(lines) + "\n"
