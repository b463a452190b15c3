"""The DataLoader: a data set cut into (shuffled, augmented) mini-batches, reproducibly.

One epoch visits every image once, in an order that is a fresh random permutation each epoch
when ``shuffle=True``. Each batch is gathered from the uint8 images, turned into float32 in
[0, 1] (once per batch) and passed through the transform (augmentation + normalisation):

    images  float32 (B, 3, 32, 32)   NumPy, on the host: moving to a GPU is the training loop's job
    labels  int64   (B,)

Reproducibility. All randomness comes from ``seed`` and the epoch number:
    the order of epoch e        from a generator seeded by (seed, e)
    the augmentation of batch b from a generator seeded by (seed, e, b)
so epoch e is the same on every run, different epochs differ, and batch b can be rebuilt
without replaying batches 0..b-1. That makes exact resume cheap: ``state_dict()`` is just
(epoch, batches already handed out), and a loader restored from it continues with exactly the
batches the interrupted run would have produced next.

The loader counts epochs itself: each complete pass advances ``epoch`` by one (``set_epoch``
sets it explicitly). Iterating one loader from two places at once is not supported.
"""
import numpy

from .transforms import to_float32

# The random streams of a loader's seed (its spawn keys): the epoch's order, and each batch's
# augmentation (a ShardedLoader, distributed/sharding.py, draws each rank's from the second).
ORDER_STREAM, AUGMENT_STREAM = 0, 1


class DataLoader:
    """Iterate over ``dataset`` (anything with uint8 ``images`` (N, C, H, W) and integer
    ``labels`` (N,)) in batches of ``batch_size``; ``len(loader)`` is the batches per epoch."""

    def __init__(self, dataset, batch_size, shuffle=False, drop_last=False, seed=0,
                 transform=None):
        if not (isinstance(batch_size, int) and batch_size > 0):
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if not (isinstance(seed, int) and seed >= 0):
            raise ValueError(f"DataLoader: seed must be a non-negative int, got {seed!r}")
        if len(dataset.images) != len(dataset.labels):
            raise ValueError(f"DataLoader: the data set has {len(dataset.images)} images but "
                             f"{len(dataset.labels)} labels")
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.transform = transform
        self.epoch = 0            # the epoch the next batch belongs to
        self.batches_done = 0     # batches of that epoch already handed out

    def __len__(self):
        """Batches per epoch: N // B with drop_last (a last, smaller batch is skipped), else
        ⌈N / B⌉."""
        full, rest = divmod(len(self.dataset.labels), self.batch_size)
        return full + (rest > 0 and not self.drop_last)

    def set_epoch(self, epoch):
        """Start epoch ``epoch`` from its first batch on the next iteration."""
        self.epoch, self.batches_done = int(epoch), 0

    def _generator(self, *key):
        return numpy.random.default_rng(numpy.random.SeedSequence(self.seed, spawn_key=key))

    def epoch_order(self, epoch):
        """The indices of all images in the order epoch ``epoch`` visits them, (N,)."""
        num_images = len(self.dataset.labels)
        if not self.shuffle:
            return numpy.arange(num_images)
        return self._generator(epoch, ORDER_STREAM).permutation(num_images)

    def __iter__(self):
        """The remaining batches of the current epoch; the counters move as batches are handed
        out, and roll over to the next epoch with the last one."""
        epoch = self.epoch
        order = self.epoch_order(epoch)
        for batch_index in range(self.batches_done, len(self)):
            batch = self._gather(order, epoch, batch_index)
            if batch_index + 1 == len(self):
                self.set_epoch(epoch + 1)
            else:
                self.batches_done = batch_index + 1
            yield batch

    def _gather(self, order, epoch, batch_index):
        """Batch ``batch_index`` of an epoch: images float32 (B, C, H, W), labels int64 (B,)."""
        start = batch_index * self.batch_size
        indices = order[start:start + self.batch_size]
        images = to_float32(self.dataset.images[indices])
        if self.transform is not None:
            images = self.transform(images, self._generator(epoch, AUGMENT_STREAM, batch_index))
        return images, numpy.asarray(self.dataset.labels[indices], dtype=numpy.int64)

    def state_dict(self):
        """Where the loader is: enough to continue with the very same batches. Plain ints."""
        return {"epoch": self.epoch, "batches_done": self.batches_done, "seed": self.seed,
                "batch_size": self.batch_size, "num_images": len(self.dataset.labels)}

    def load_state_dict(self, state):
        """Continue from ``state_dict()``; refuses a state made with a different seed, batch size
        or data set size (it would silently produce different batches)."""
        mine = self.state_dict()
        for key in ("seed", "batch_size", "num_images"):
            if int(state[key]) != mine[key]:
                raise ValueError(f"DataLoader.load_state_dict: the state has {key}={state[key]}, "
                                 f"this loader has {key}={mine[key]}")
        if not 0 <= int(state["batches_done"]) < max(len(self), 1):
            raise ValueError(f"DataLoader.load_state_dict: batches_done={state['batches_done']} "
                             f"is outside 0..{len(self) - 1}")
        self.epoch, self.batches_done = int(state["epoch"]), int(state["batches_done"])
