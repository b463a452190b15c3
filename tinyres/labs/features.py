"""Lab: what a trained ResNet-20 looks at — its first-layer filters, and one image's feature maps
through the three stages.

The first layer's 16 filters are 3x3x3: each is drawn as a 3x3 colour patch (scaled so that
its largest weight is full intensity; grey is 0). Then one test image goes through the net and
tinyres.models.views.block_outputs collects what every residual block produced: the last block of
each stage is shown, eight channels each (32x32 with 16 channels, 16x16 with 32, 8x8 with 64):
the maps shrink and grow more abstract with depth.

The net is the degradation lab's ResNet-20 (seed 0), trained by it first if it is missing.
"""
import numpy

from tinyres import load
from tinyres.data import Normalize
from tinyres.data.transforms import to_float32
from tinyres.labs import degradation
from tinyres.labs.runs import train_runs
from tinyres.models import get_model
from tinyres.models.blocks import ResidualBlock
from tinyres.models.views import block_outputs
from tinyres.train import load_cifar

CHANNELS_SHOWN = 8


def run(options, out):
    design = degradation.design_for(options)
    model_name = f"resnet{min(design.depths)}"         # ResNet-20 (smoke: ResNet-8)
    spec = next(s for s in degradation.specs(design, options.data)
                if s.model == model_name and s.seed == design.seeds[0])
    trained = train_runs([spec], out.parent / out.name.replace("features", "degradation"),
                         options.jobs, options.threads, show_progress=not options.quiet)
    model = get_model(model_name)
    model.load_state_dict(load(trained[spec] / "checkpoint.npz")["model"])

    test_set = load_cifar(options.data, train=False)
    image, label = test_set.images[0], int(test_set.labels[0])
    outputs = block_outputs(model, Normalize()(to_float32(image[None])),
                            kinds=(ResidualBlock,), training=False)
    stage_ends = {path.split(".")[0]: output for path, output in outputs.items()}  # last wins
    filters = model.conv1.weight.numpy()                              # (16, 3, 3, 3)
    plot_filters(filters, out / "filters.png", model_name)
    plot_feature_maps(image, test_set.classes[label], stage_ends, out / "feature_maps.png",
                      model_name)
    lines = [f"{model_name} from {trained[spec]}: first-layer filters {filters.shape}, weight "
             f"range {filters.min():+.3f} .. {filters.max():+.3f}",
             f"test image 0 ({test_set.classes[label]}) through the stages:"]
    for stage, output in stage_ends.items():
        active = float((output > 0).mean())
        lines.append(f"  {stage}: {output.shape[1]} channels of {output.shape[2]}x"
                     f"{output.shape[3]}, {100 * active:.0f} % of the values positive")
    text = "\n".join(lines) + "\n"
    (out / "report.txt").write_text(text)
    print(text)
    print(f"figures {out / 'filters.png'} and {out / 'feature_maps.png'}")
    return 0


def plot_filters(filters, path, model_name):
    from tinyres.plotting import off_screen_figure

    scale = numpy.abs(filters).max()
    fig = off_screen_figure(figsize=(8, 2.4))
    axes = fig.subplots(2, len(filters) // 2)
    for ax, weights in zip(axes.flat, filters):
        ax.imshow(0.5 + 0.5 * weights.transpose(1, 2, 0) / scale, interpolation="nearest")
        ax.axis("off")
    fig.suptitle(f"{model_name}'s first-layer filters (3x3, RGB; grey = 0)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_feature_maps(image, class_name, stage_ends, path, model_name):
    from tinyres.plotting import off_screen_figure

    rows = len(stage_ends)
    fig = off_screen_figure(figsize=(12, 1.6 * rows))
    axes = fig.subplots(rows, CHANNELS_SHOWN + 1)
    for row, (stage, output) in zip(axes, stage_ends.items()):
        row[0].imshow(image.transpose(1, 2, 0))
        row[0].set_title(class_name if stage == next(iter(stage_ends)) else "", fontsize=8)
        row[0].axis("off")
        for channel, ax in enumerate(row[1:]):
            ax.imshow(output[0, channel], cmap="viridis")
            ax.axis("off")
        row[1].set_title(f"{stage}: {output.shape[1]} ch, {output.shape[2]}x{output.shape[3]} "
                         f"(first {CHANNELS_SHOWN})", fontsize=8, loc="left")
    fig.suptitle(f"One test image through {model_name} (output of each stage's last block)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
