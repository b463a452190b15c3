"""Floor 7: one training step, one epoch, one evaluation.

A training step is the whole of deep learning in five lines:

    logits = model(images)                   # forward: (B, 3, 32, 32) -> (B, 10)
    loss = F.cross_entropy(logits, labels)   # a scalar
    optimizer.zero_grad()
    loss.backward()                          # dL/dθ for every parameter θ
    optimizer.step()                         # θ <- θ - lr * (momentum-smoothed) dL/dθ

An epoch adds up each step's loss and correct predictions in a small dict of running sums,
``epoch_sums()``, that the caller owns: when a run is interrupted mid-epoch the sums so far go
into the checkpoint, and the resumed epoch carries on adding to them, so its train loss and error
cover every batch of the epoch, as an uninterrupted run's do.
"""
import math
import re
import time

import numpy

import tinyres
import tinyres.functional as F
from tinyres.errors import UserError
from tinyres.nn import Module


class TrainingDiverged(RuntimeError):
    """The loss, or the model's weights or buffers, became NaN or infinite."""


class OutOfMemory(UserError):
    """A batch did not fit in memory: names the layer, the array it tried to allocate, and
    suggests a smaller --batch-size."""


def epoch_sums():
    """The running sums of an epoch's training steps (plain numbers, saved in checkpoints)."""
    return {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}


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
                last_finite_loss=None, show_progress=True, on_step=None, parallel=None,
                sums=None):
    """Train over the loader's remaining batches of this epoch.

    Returns a dict of the epoch's statistics. `sums` (from ``epoch_sums()``, updated in place
    after each step) holds the sums of the batches of this epoch trained before, when resuming
    mid-epoch. Raises TrainingDiverged naming the step and the last finite loss as soon as a loss
    is NaN or infinite, and OutOfMemory naming the layer when a batch does not fit.
    `on_step(step)` is called after each complete step with {"iteration", "lr" (the lr the step
    used), "train_loss", "train_error"} of that batch (the trainer records them, watches for an
    exploding loss, and uses the call to stop cleanly on Ctrl-C, between two steps). With
    `parallel` (data-parallel on MPI) the loader gives this rank's slice of each batch, and the
    loss and accuracy reported are those of the whole global batch, on every rank.
    """
    model.train()
    sums = epoch_sums() if sums is None else sums
    start = time.perf_counter() - sums["seconds"]
    from tqdm import tqdm  # here: the CLI's parser imports this file
    bar = tqdm(loader, total=len(loader) - loader.batches_done, desc=f"epoch {epoch + 1}",
               unit="batch", disable=not show_progress, leave=False, dynamic_ncols=True)
    for images, labels in bar:
        x = tinyres.tensor(images, device=device)
        y = tinyres.tensor(labels, device=device)
        try:
            loss, batch_correct = train_step(model, x, y, optimizer, parallel)
        except MemoryError as err:
            raise OutOfMemory(describe_out_of_memory(err, model, loader.batch_size)) from err
        batch_size, where = len(labels), ""
        if parallel is not None:            # the global batch's numbers, from every rank's slice
            loss, batch_correct, batch_size, failed = parallel.global_batch_stats(
                loss, batch_correct, batch_size)
            where = f" on rank {', '.join(map(str, failed))}" if failed else ""
        iteration += 1
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"the loss became {loss}{where} at step {iteration} (epoch {epoch + 1}); the last "
                f"finite loss was {last_finite_loss}. Try a lower --lr")
        last_finite_loss = loss
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        sums["loss_sum"] += loss * batch_size
        sums["correct"] += batch_correct
        sums["seen"] += batch_size
        sums["seconds"] = time.perf_counter() - start
        seen = sums["seen"]
        bar.set_postfix(loss=f"{sums['loss_sum'] / seen:.3f}", acc=f"{sums['correct'] / seen:.3f}",
                        img_s=f"{seen / sums['seconds']:.0f}",
                        lr=f"{scheduler.get_last_lr()[0]:.3g}")
        if on_step is not None:
            on_step({"iteration": iteration, "lr": lr, "train_loss": loss,
                     "train_error": 1 - batch_correct / batch_size})
    sums["seconds"] = time.perf_counter() - start
    return epoch_statistics(sums, iteration)


def epoch_statistics(sums, iteration):
    """The statistics of an epoch whose steps are all done, from its running sums."""
    seen = max(sums["seen"], 1)
    return {"iteration": iteration, "train_loss": sums["loss_sum"] / seen,
            "train_error": 1 - sums["correct"] / seen, "images": sums["seen"],
            "seconds": sums["seconds"]}


def describe_out_of_memory(error, model, batch_size):
    """One line for a MemoryError raised inside `model`: the innermost layer it was raised in
    (found on the traceback), the array it tried to allocate, and a smaller batch size to try."""
    names = {id(module): name for name, module in model.named_modules()}
    layer, tb = None, error.__traceback__
    while tb is not None:                   # outermost frame first: keep the innermost layer
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, Module) and id(owner) in names:
            layer = f"{names[id(owner)] or 'the model'} ({type(owner).__name__})"
        tb = tb.tb_next
    shape, dtype = getattr(error, "shape", None), getattr(error, "dtype", None)
    if shape is None:                       # CuPy and others: the shape only in the message
        found = re.search(r"shape \(([0-9, ]*)\)", str(error))
        shape = tuple(int(n) for n in found.group(1).replace(" ", "").split(",") if n) if found \
            else None
    array = (f"an array of shape {tuple(shape)}" + (f" {dtype}" if dtype is not None else "")
             if shape is not None else f"memory ({str(error).strip() or 'no details'})")
    smaller = max(batch_size // 2, 1)
    return (f"out of memory in {layer or 'a step outside any layer (the loss or the update)'}: "
            f"it tried to allocate {array} for a batch of {batch_size}; try a smaller "
            f"--batch-size, such as {smaller}")


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
