"""Floor 7: watching a run — a loss that explodes while still finite, and Ctrl-C between steps.

    ExplosionWatch   flags, once, a loss that stays EXPLODING_FACTOR x above the run's first loss
                     for EXPLODING_STEPS steps in a row (a NaN or inf loss stops the run at once,
                     in loop.py; a NaN or inf weight, at the end of the epoch, in the Trainer)
    StopRequest      while training, SIGINT (Ctrl-C) only asks to stop; the loop stops between
                     two steps, so a checkpoint never holds a half-applied update
"""
import contextlib
import signal
import sys
import threading


EXPLODING_FACTOR, EXPLODING_STEPS = 10, 5     # flag a loss 10x its first value, 5 steps running


class ExplosionWatch:
    """The run's first loss (kept in the checkpoint) and the steps in a row far above it."""

    def __init__(self, lr, speaks=True, first_loss=None):
        self.lr, self.speaks, self.first_loss = lr, speaks, first_loss
        self.high_steps, self.flagged = 0, False

    def step(self, iteration, loss):
        """Flag, once, a loss that stays far above the run's first loss: it is diverging even
        while it is still finite."""
        if self.first_loss is None:
            self.first_loss = loss
        self.high_steps = self.high_steps + 1 if loss > EXPLODING_FACTOR * self.first_loss else 0
        if self.high_steps == EXPLODING_STEPS and not self.flagged and self.speaks:
            self.flagged = True
            from tqdm import tqdm  # here: the CLI's parser imports this file
            tqdm.write(f"warning: the loss is exploding: {loss:.4g} at step {iteration}, above "
                       f"{EXPLODING_FACTOR}x its first value ({self.first_loss:.4g}) for "
                       f"{EXPLODING_STEPS} steps in a row; the learning rate ({self.lr:g}) is "
                       f"likely too high: stop with Ctrl-C and try a lower --lr", file=sys.stderr)

    def exploded(self, loss):
        """Whether `loss` is already far above the first loss (a checkpoint not worth resuming)."""
        return self.first_loss is not None and loss is not None and \
            loss > EXPLODING_FACTOR * self.first_loss


class StopRequest:
    """`requested` turns True on Ctrl-C while `between_steps()` is active."""

    def __init__(self):
        self.requested = False

    @contextlib.contextmanager
    def between_steps(self):
        """While training, Ctrl-C only asks to stop (the loop checks `requested` after a step)."""
        self.requested = False
        if threading.current_thread() is not threading.main_thread():
            yield                                  # signals reach the main thread only
            return
        previous = signal.signal(signal.SIGINT,
                                 lambda signum, frame: setattr(self, "requested", True))
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
