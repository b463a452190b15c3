"""Floor 7: one training step, one epoch, one evaluation.

A training step is the whole of deep learning in five lines:

    logits = model(images)                   # forward: (B, 3, 32, 32) -> (B, 10)
    loss = F.cross_entropy(logits, labels)   # a scalar
    optimizer.zero_grad()
    loss.backward()                          # dL/dθ for every parameter θ
    optimizer.step()                         # θ <- θ - lr * (momentum-smoothed) dL/dθ
"""
import math
import time

import numpy
from tqdm import tqdm

import tinyres
import tinyres.functional as F


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def count_correct(logits, labels):
    """Correct top-1 predictions of a batch, as a Python int."""
    return int((logits.data.argmax(axis=1) == labels.data).sum().item())


def train_step(model, images, labels, optimizer, parallel=None):
    """One SGD step on one batch; returns (loss as float, number correct). With `parallel` (a
    tinyres.distributed.DataParallel) the gradients are averaged over the MPI ranks between
    backward and the update, so every rank takes the step of the whole global batch."""
    logits = model(images)
    loss = F.cross_entropy(logits, labels)
    optimizer.zero_grad()
    loss.backward()
    if parallel is not None:
        parallel.average_gradients()
    optimizer.step()
    return loss.item(), count_correct(logits, labels)


def train_epoch(model, loader, optimizer, scheduler, device, epoch, iteration,
                last_finite_loss=None, show_progress=True, on_step=None, parallel=None):
    """Train over the loader's remaining batches of this epoch.

    Returns a dict of the epoch's statistics. Raises TrainingDiverged naming the step and the last
    finite loss as soon as a loss is NaN or infinite. `on_step(step)` is called after each
    complete step with {"iteration", "lr" (the lr the step used), "train_loss", "train_error"} of
    that batch (the trainer records them, and uses the call to stop cleanly on Ctrl-C).
    With `parallel` (data-parallel on MPI) the loader gives this rank's slice of each batch, and
    the loss and accuracy reported are those of the whole global batch, on every rank.
    """
    model.train()
    total_loss = correct = seen = 0
    start = time.perf_counter()
    bar = tqdm(loader, total=len(loader) - loader.batches_done, desc=f"epoch {epoch + 1}",
               unit="batch", disable=not show_progress, leave=False, dynamic_ncols=True)
    for images, labels in bar:
        x = tinyres.tensor(images, device=device)
        y = tinyres.tensor(labels, device=device)
        loss, batch_correct = train_step(model, x, y, optimizer, parallel)
        batch_size, where = len(labels), ""
        if parallel is not None:            # the global batch's numbers, from every rank's slice
            loss, batch_correct, batch_size, failed = parallel.global_batch_stats(
                loss, batch_correct, batch_size)
            where = f" on rank {', '.join(map(str, failed))}" if failed else ""
        iteration += 1
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"the loss became {loss}{where} at step {iteration} (epoch {epoch + 1}); the last "
                f"finite loss was {last_finite_loss}. Try a lower --lr; the last good checkpoint "
                f"is kept")
        last_finite_loss = loss
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        total_loss += loss * batch_size
        correct += batch_correct
        seen += batch_size
        elapsed = time.perf_counter() - start
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}",
                        img_s=f"{seen / elapsed:.0f}", lr=f"{scheduler.get_last_lr()[0]:.3g}")
        if on_step is not None:
            on_step({"iteration": iteration, "lr": lr, "train_loss": loss,
                     "train_error": 1 - batch_correct / batch_size})
    elapsed = time.perf_counter() - start
    return {"iteration": iteration, "train_loss": total_loss / max(seen, 1),
            "train_error": 1 - correct / max(seen, 1), "images": seen, "seconds": elapsed,
            "last_finite_loss": last_finite_loss}


def evaluate(model, loader, device, num_classes=10):
    """Loss, accuracy and confusion matrix (true class x predicted class) over a loader."""
    model.eval()
    confusion = numpy.zeros((num_classes, num_classes), dtype=numpy.int64)
    total_loss = 0.0
    with tinyres.no_grad():
        for images, labels in loader:
            logits = model(tinyres.tensor(images, device=device))
            total_loss += F.cross_entropy(logits, tinyres.tensor(labels, device=device)).item() \
                * len(labels)
            predicted = tinyres.tensor(logits.data.argmax(axis=1)).numpy()
            numpy.add.at(confusion, (labels, predicted), 1)
    seen = confusion.sum()
    return {"test_loss": total_loss / max(seen, 1),
            "test_accuracy": numpy.trace(confusion) / max(seen, 1), "confusion": confusion}
