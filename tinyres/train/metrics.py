"""Floor 7: what a run records — metrics.csv, one row per epoch, and curves.png, the train and
test error against iterations, drawn like the paper's Fig. 6.

Each row also states `planned_epochs`, the length of run its learning-rate schedule was planned
for: it changes where a finished run was extended (`--resume --epochs 60`), and the schedule was
re-planned for the new total from then on."""
import csv
import os
from pathlib import Path

COLUMNS = ["epoch", "iteration", "lr", "train_loss", "train_error", "test_loss", "test_error",
           "test_accuracy", "epoch_seconds", "images_per_second", "planned_epochs"]
TIMING_COLUMNS = ["epoch_seconds", "images_per_second"]   # all that differs when a run is resumed


def append_metrics(path, row):
    """Append one epoch's row to metrics.csv (writing the header for a new file)."""
    path = Path(path)
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow({k: (f"{row[k]:.6g}" if isinstance(row.get(k), float) else row.get(k))
                         for k in COLUMNS})


def read_metrics(path):
    with Path(path).open() as f:
        # (a file from an older tinyres has no planned_epochs column)
        return [{k: float(v) for k, v in row.items() if v not in (None, "")}
                for row in csv.DictReader(f)]


def truncate_metrics(path, epochs_done):
    """Keep the rows of the first `epochs_done` epochs (a resumed run rewrites what follows).
    The shortened file replaces the old one atomically: a crash leaves one or the other."""
    path = Path(path)
    if not path.exists():
        return
    rows = [row for row in read_metrics(path) if row["epoch"] <= epochs_done]
    shortened = path.with_name(f".{path.name}.truncating")
    shortened.unlink(missing_ok=True)
    for row in rows:
        for whole in ("epoch", "iteration", "planned_epochs"):
            if whole in row:
                row[whole] = int(row[whole])
        append_metrics(shortened, row)
    if rows:
        os.replace(shortened, path)
    else:
        path.unlink()


def plot_curves(metrics_path, image_path, title):
    """Train error (dashed) and test error (bold) against iterations, as in the paper's Fig. 6."""
    import matplotlib
    matplotlib.use("Agg")                     # files only: no screen needed
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    iterations = [r["iteration"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(iterations, [100 * r["train_error"] for r in rows], "--", label="train error")
    ax.plot(iterations, [100 * r["test_error"] for r in rows], "-", linewidth=2,
            label="test error")
    ax.set_xlabel("iterations")
    ax.set_ylabel("error (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(image_path, dpi=100)
    plt.close(fig)
