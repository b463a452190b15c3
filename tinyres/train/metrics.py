"""Floor 7: what a run records, as CSV files a spreadsheet opens:

    metrics.csv      one row per epoch (train and test loss and error, lr, speed)
    iterations.csv   one row per training step (the batch's loss and error, the lr it used):
                     the thin curves of the paper's Fig. 6

curves.py draws them. Each metrics row also states `planned_epochs`, the length of run its
learning-rate schedule was planned for: it changes where a finished run was extended
(`--resume --epochs 60`), and the schedule was re-planned for the new total from then on."""
import csv
import os
from pathlib import Path

from tinyres.errors import UserError

COLUMNS = ["epoch", "iteration", "lr", "train_loss", "train_error", "test_loss", "test_error",
           "test_accuracy", "epoch_seconds", "images_per_second", "planned_epochs"]
TIMING_COLUMNS = ["epoch_seconds", "images_per_second"]   # all that differs when a run is resumed
ITERATION_COLUMNS = ["iteration", "lr", "train_loss", "train_error"]
WHOLE_NUMBERS = ("epoch", "iteration", "planned_epochs")


def append_rows(path, rows, columns):
    """Append rows (dicts) to a CSV file, writing the header for a new file."""
    path = Path(path)
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        if new:
            writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{row[k]:.6g}" if isinstance(row.get(k), float) else row.get(k))
                             for k in columns})


def append_metrics(path, row):
    """Append one epoch's row to metrics.csv."""
    append_rows(path, [row], COLUMNS)


def append_iterations(path, rows):
    """Append training steps' rows to iterations.csv."""
    append_rows(path, rows, ITERATION_COLUMNS)


class MetricsError(UserError):
    """A metrics.csv or iterations.csv that is not as tinyres writes it (a damaged file)."""


def read_metrics(path):
    """The rows of a metrics.csv or iterations.csv, as dicts of floats ([] if there is none).
    (A metrics.csv from an older tinyres has no planned_epochs column.) A damaged file raises
    MetricsError, naming its line."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    with path.open(newline="", errors="replace") as f:
        reader = csv.DictReader(f)
        for row in reader:
            try:
                rows.append({k: float(v) for k, v in row.items() if v not in (None, "")})
                problem = (f"no {reader.fieldnames[0]}" if reader.fieldnames[0] not in rows[-1]
                           else "more cells than columns" if None in row else None)
            except (TypeError, ValueError) as err:     # a cut line, bytes that are no number
                problem = str(err)
            if problem:
                raise MetricsError(f"{path} is damaged at line {reader.line_num} ({problem}); "
                                   f"tinyres never writes it so: move it aside (or mend that "
                                   f"line) and run again")
    return rows


def truncate_rows(path, column, last, columns):
    """Keep the rows whose `column` is at most `last` (a resumed run rewrites what follows). The
    shortened file replaces the old one atomically: a crash leaves one or the other."""
    path = Path(path)
    if not path.exists():
        return
    rows = [row for row in read_metrics(path) if row[column] <= last]
    for row in rows:
        for whole in WHOLE_NUMBERS:
            if whole in row:
                row[whole] = int(row[whole])
    if not rows:
        path.unlink()
        return
    shortened = path.with_name(f".{path.name}.truncating")
    shortened.unlink(missing_ok=True)
    append_rows(shortened, rows, columns)
    os.replace(shortened, path)


def truncate_metrics(path, epochs_done):
    """Keep metrics.csv's rows of the first `epochs_done` epochs."""
    truncate_rows(path, "epoch", epochs_done, COLUMNS)


def truncate_iterations(path, iteration):
    """Keep iterations.csv's rows of the first `iteration` steps."""
    truncate_rows(path, "iteration", iteration, ITERATION_COLUMNS)
