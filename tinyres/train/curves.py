"""Floor 7: a run's curves drawn like the paper's Fig. 6 — training error at every iteration
(thin), test error after every epoch (bold), and dotted lines where the learning rate changed.

Each batch's training error is noisy (one batch of 128 images), so the thin curve is the mean over
the last few batches; the legend says how many. The training error is that of the augmented
batches the net trained on, as in the paper's figure.

    plot_run(run_dir, "curves.png", title)      # one run: its iterations.csv and metrics.csv
    draw_curves(ax, steps, epochs, ...)         # any number of runs on one matplotlib axis
"""
from pathlib import Path

import numpy

from tinyres.train.metrics import read_metrics


def smoothed(values, window):
    """The running mean of the last `window` values (fewer at the start)."""
    values = numpy.asarray(values, dtype=numpy.float64)
    sums = numpy.cumsum(numpy.concatenate([[0.0], values]))
    ends = numpy.arange(1, len(values) + 1)
    starts = numpy.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def lr_changes(steps):
    """[(iteration, new lr)] wherever the lr differs from the previous step's (warm-up end and the
    schedule's drops); each step's row holds the lr it used."""
    return [(int(now["iteration"]), now["lr"]) for before, now in zip(steps, steps[1:])
            if not numpy.isclose(now["lr"], before["lr"])]


def draw_curves(ax, steps, epochs, color, label, window):
    """One net on `ax`: smoothed per-step training error (thin), per-epoch test error (bold)."""
    if steps:
        ax.plot([s["iteration"] for s in steps],
                100 * smoothed([s["train_error"] for s in steps], window),
                color=color, linewidth=0.8, alpha=0.9)
    ax.plot([e["iteration"] for e in epochs], [100 * e["test_error"] for e in epochs],
            color=color, linewidth=2.2, marker="o" if len(epochs) == 1 else None,
            label=label)                   # (a lone epoch's point would draw no line)


def mark_lr_changes(ax, steps):
    """Dotted vertical lines at the lr changes, labelled with the new lr."""
    for iteration, lr in lr_changes(steps):
        ax.axvline(iteration, color="grey", linestyle=":", linewidth=1)
        ax.text(iteration, 0.98, f" lr {lr:g}", transform=ax.get_xaxis_transform(),
                fontsize=7, color="grey", va="top")


def finish_axis(ax, title, window):
    """Labels, limits and the legend note that tells thin from bold."""
    ax.plot([], [], color="black", linewidth=0.8, label=f"train error (mean of {window} batches)")
    ax.plot([], [], color="black", linewidth=2.2, label="test error (after each epoch)")
    ax.set_xlabel("iterations")
    ax.set_ylabel("error (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")


def plot_run(run_dir, image_path, title, window=20):
    """curves.png of one run directory (iterations.csv + metrics.csv)."""
    from tinyres.plotting import off_screen_figure

    run_dir = Path(run_dir)
    steps = read_metrics(run_dir / "iterations.csv")
    epochs = read_metrics(run_dir / "metrics.csv")
    window = max(1, min(window, len(steps) // max(len(epochs), 1)))   # at most one epoch
    fig = off_screen_figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    draw_curves(ax, steps, epochs, "tab:blue", None, window)
    mark_lr_changes(ax, steps)
    finish_axis(ax, title, window)
    fig.tight_layout()
    fig.savefig(image_path, dpi=110)
