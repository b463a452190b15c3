"""Lab: the bottleneck block — why 1x1 reduce, 3x3, 1x1 restore (the paper's Fig. 5).

For ResNet-50/101/152 the paper replaces the basic block (two 3x3 convs on 64 channels) by a
bottleneck (1x1 conv 256 -> 64, 3x3 conv 64 -> 64, 1x1 conv 64 -> 256): "both designs have similar
time complexity", but the bottleneck's ends are four times wider, so a stack of them carries a
256-channel signal for the price of a 64-channel one. Its shortcut joins the two 256-channel
ends; the paper: "if the identity shortcut is replaced with projection, one can show that the time
complexity and model size are doubled, as the shortcut is connected to the two high-dimensional
ends" — a 1x1 projection 256 -> 256 costs as much as the whole bottleneck's three convs.

This lab builds the three blocks of the paper's Fig. 5 on a 56x56 map (the paper's conv2_x) and
measures for each: parameters, multiply-adds per image (exact), the time of a training step of
the block alone (forward and backward on a batch, fast kernels), and where the gradient goes: the
part of dL/dx that arrives through the shortcut and the part through the residual branch F, and
how much of the gradient survives a stack of 8 such blocks.
"""
import csv
import time

import numpy

import tinyres
from tinyres.models.blocks import BasicBlock, Bottleneck
from tinyres.models.summary import summary
from tinyres.nn import Sequential

BLOCKS = {   # name -> (constructor of one block, input channels)
    "basic 64-d, identity": (lambda: BasicBlock(64, 64, shortcut="A"), 64),
    "bottleneck 256-d, identity": (lambda: Bottleneck(256, 64, shortcut="A"), 256),
    "bottleneck 256-d, projection": (lambda: Bottleneck(256, 64, shortcut="C"), 256),
}
STACK = 8


def run(options, out):
    size, batch, repeats = (8, 2, 1) if options.smoke else (56, 8, 5)
    rng = numpy.random.default_rng(0)
    rows = []
    for name, (make, channels) in BLOCKS.items():
        tinyres.manual_seed(0)
        block = make()
        counted = summary(block, (channels, size, size), show=False)
        x = rng.standard_normal((batch, channels, size, size)).astype(numpy.float32)
        rows.append({"block": name, "params": counted.total_params,
                     "macs": counted.total_macs, "map": size, "batch": batch,
                     "step_ms": 1000 * step_seconds(block, x, repeats),
                     **gradient_split(block, x, rng),
                     "stack_gradient_ratio": stack_gradient_ratio(make, x, rng)})
    write_csv(rows, out / "bottleneck.csv")
    plot(rows, out / "bottleneck.png")
    text = report(rows, repeats)
    (out / "report.txt").write_text(text)
    print(text)
    print(f"figure {out / 'bottleneck.png'}, the numbers in {out / 'bottleneck.csv'}")
    return 0


def step_seconds(block, x, repeats):
    """Median time of forward + backward of the block on x (after one untimed warm-up step,
    which also compiles the kernels)."""
    times = []
    for index in range(repeats + 1):
        inputs = tinyres.tensor(x, requires_grad=True)
        start = time.perf_counter()
        block(inputs).sum().backward()
        if index:
            times.append(time.perf_counter() - start)
        block.zero_grad()
    return float(numpy.median(times))


def gradient_split(block, x, rng):
    """dL/dx = (dF/dx)^T g + S^T g with g = dL/dy' (the gradient after the final ReLU): the norms
    of the part through the branch F and of the part through the shortcut S, for a random L."""
    inputs = tinyres.tensor(x, requires_grad=True)
    pre_relu = block.residual(inputs) + block.shortcut_path()(inputs)       # y' = F(x) + S(x)
    upstream = rng.standard_normal(pre_relu.shape).astype(numpy.float32)
    g = upstream * (pre_relu.numpy() > 0)                                   # through the ReLU
    through = {}
    for part, function in (("F", block.residual), ("shortcut", block.shortcut_path())):
        leaf = tinyres.tensor(x, requires_grad=True)
        function(leaf).backward(tinyres.tensor(g))
        through[part] = float(numpy.linalg.norm(leaf.grad))
    block.zero_grad()
    return {"grad_through_F": through["F"], "grad_through_shortcut": through["shortcut"],
            "grad_upstream": float(numpy.linalg.norm(g))}


def stack_gradient_ratio(make, x, rng):
    """||dL/dx|| / ||dL/dy|| through STACK blocks of one kind at initialisation (training mode)."""
    tinyres.manual_seed(1)
    stack = Sequential(*[make() for _ in range(STACK)])
    inputs = tinyres.tensor(x, requires_grad=True)
    y = stack(inputs)
    upstream = rng.standard_normal(y.shape).astype(numpy.float32)
    y.backward(tinyres.tensor(upstream))
    return float(numpy.linalg.norm(inputs.grad) / numpy.linalg.norm(upstream))


def write_csv(rows, path):
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot(rows, path):
    from tinyres.plotting import off_screen_figure

    names = [r["block"].replace(", ", "\n") for r in rows]
    panels = [("parameters (thousands)", [r["params"] / 1e3 for r in rows]),
              ("multiply-adds per image (millions)", [r["macs"] / 1e6 for r in rows]),
              ("training step of the block (ms)", [r["step_ms"] for r in rows])]
    fig = off_screen_figure(figsize=(15, 3.8))
    axes = fig.subplots(1, 4)
    colours = ["tab:blue", "tab:green", "tab:red"]
    for ax, (title, values) in zip(axes, panels):
        ax.bar(names, values, color=colours)
        for index, value in enumerate(values):
            ax.text(index, value, f"{value:.1f}", ha="center", va="bottom", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", labelsize=7)
        ax.margins(y=0.15)
    ax = axes[3]
    positions = numpy.arange(len(rows))
    ax.bar(positions - 0.2, [r["grad_through_shortcut"] / r["grad_upstream"] for r in rows], 0.4,
           label="through the shortcut")
    ax.bar(positions + 0.2, [r["grad_through_F"] / r["grad_upstream"] for r in rows], 0.4,
           label="through F")
    ax.set_xticks(positions, names, fontsize=7)
    ax.set_title("||part of dL/dx|| / ||dL/dy'||, one block", fontsize=10)
    ax.legend(fontsize=8)
    fig.suptitle(f"Basic vs bottleneck block (the paper's Fig. 5) on a {rows[0]['map']}x"
                 f"{rows[0]['map']} map, batch {rows[0]['batch']}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def report(rows, repeats):
    lines = [f"Blocks of the paper's Fig. 5 on a {rows[0]['map']}x{rows[0]['map']} map; step "
             f"time: median of {repeats} forward+backward passes on a batch of {rows[0]['batch']}.",
             "", f"{'block':<30}{'params':>9}{'MACs/image':>12}{'step ms':>9}"
                 f"{'|grad| shortcut':>17}{'|grad| F':>10}{f'stack of {STACK}':>12}"]
    for r in rows:
        lines.append(f"{r['block']:<30}{r['params']:>9,}{r['macs'] / 1e6:>11.1f}M"
                     f"{r['step_ms']:>9.1f}{r['grad_through_shortcut'] / r['grad_upstream']:>17.2f}"
                     f"{r['grad_through_F'] / r['grad_upstream']:>10.2f}"
                     f"{r['stack_gradient_ratio']:>12.2f}")
    basic, identity, projection = rows
    lines += ["",
              f"Similar cost: the bottleneck has {identity['params'] / basic['params']:.2f}x the "
              f"basic block's parameters and {identity['macs'] / basic['macs']:.2f}x its "
              f"multiply-adds, for 4x the channels at its ends. Its step took "
              f"{identity['step_ms'] / basic['step_ms']:.2f}x as long here: multiply-adds are "
              f"not time on a CPU, and its 1x1 convs, batch norms and ReLUs work on 256-channel "
              f"maps, four times the values of the basic block's 64-channel ones.",
              f"A projection shortcut on its 256-d ends: "
              f"{projection['params'] / identity['params']:.2f}x "
              f"the parameters, {projection['macs'] / identity['macs']:.2f}x the multiply-adds, "
              f"{projection['step_ms'] / identity['step_ms']:.2f}x the step time (the paper: "
              f"'doubled').",
              "The identity shortcut passes dL/dy' to x unchanged (ratio 1 in the table's "
              "'shortcut' column); a projection multiplies it by W_s^T.",
              "Gradient ratios: the norm of each part of dL/dx over the norm of dL/dy' (the "
              "gradient after the block's ReLU), for a random upstream gradient, at "
              "initialisation; 'stack' is ||dL/dx|| / ||dL/dy|| through the whole stack: above 1, "
              "because every block hands on the gradient it receives through its shortcut and "
              "adds the part through F; nothing vanishes."]
    return "\n".join(lines) + "\n"
