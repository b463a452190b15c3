"""Floor 7: what a run records — metrics.csv, one row per epoch, and curves.png, the train and
test error against iterations, drawn like the paper's Fig. 6."""
import csv
from pathlib import Path

COLUMNS = ["epoch", "iteration", "lr", "train_loss", "train_error", "test_loss", "test_error",
           "test_accuracy", "epoch_seconds", "images_per_second"]


def append_metrics(path, row):
    """Append one epoch's row to metrics.csv (writing the header for a new file)."""
    path = Path(path)
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow({k: (f"{row[k]:.6g}" if isinstance(row[k], float) else row[k])
                         for k in COLUMNS})


def read_metrics(path):
    with Path(path).open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def truncate_metrics(path, epochs_done):
    """Keep the rows of the first `epochs_done` epochs (a resumed run rewrites what follows)."""
    path = Path(path)
    if not path.exists():
        return
    rows = [row for row in read_metrics(path) if row["epoch"] <= epochs_done]
    path.unlink()
    for row in rows:
        row["epoch"], row["iteration"] = int(row["epoch"]), int(row["iteration"])
        append_metrics(path, row)


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
