"""Floor 7 (beside train): which images each rank works on.

Training. The global batch of B images is the one a single process would take: every rank shuffles
with the same seed, so all ranks agree on the order of the epoch and on which B images make up
global batch b. Rank r then takes its own disjoint slice of B / N of them:

    order of the epoch (same on every rank)   i0 i1 i2 i3 i4 i5 i6 i7 | i8 ...
    global batch 0 (B = 8), N = 2 ranks       rank 0: i0 i1 i2 i3   rank 1: i4 i5 i6 i7

so one step on N ranks sees exactly the images of one step of one process, and averaging the N
gradients gives the gradient of the whole batch (see data_parallel.py). B must divide by N.

The random augmentation (crop offsets, flips) of rank r's slice is drawn from a generator keyed by
(seed, epoch, batch, rank): different on each rank, reproducible, and rebuilt for any batch
without replaying the ones before it, so resuming (with the same N) gives the very same batches.

Evaluation. The test set is cut into N contiguous parts; each rank evaluates its part, and the
correct counts (the confusion matrix) are summed over the ranks: the accuracy of the whole set.
"""
import numpy

from tinyres.data import DataLoader
from tinyres.data.loader import AUGMENT_STREAM
from tinyres.data.transforms import to_float32
from tinyres.distributed.comm import DistributedError


def per_rank_batch_size(global_batch_size, size):
    """B / N, or a DistributedError when the global batch does not divide among the ranks."""
    if global_batch_size % size:
        nearest = sorted({m for m in ((global_batch_size // size) * size,
                                      -(-global_batch_size // size) * size) if m > 0})
        raise DistributedError(
            f"batch size {global_batch_size} does not divide among {size} ranks: each rank takes "
            f"batch size / ranks images of every batch; use a multiple of {size}, such as "
            f"{' or '.join(map(str, nearest))}")
    return global_batch_size // size


class ShardedLoader(DataLoader):
    """A DataLoader whose batches are this rank's slice of each global batch.

    Everything about positions is global and the same on every rank: ``batch_size`` is the global
    B, ``len()`` the global batches per epoch, ``state_dict()`` the global position. Only what
    ``_gather`` returns differs: B / N images, (B/N, C, H, W), and (B/N,) labels.
    """

    def __init__(self, dataset, batch_size, rank, size, shuffle=False, drop_last=False, seed=0,
                 transform=None):
        super().__init__(dataset, batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed,
                         transform=transform)
        self.rank, self.size = rank, size
        self.shard_size = per_rank_batch_size(batch_size, size)

    def _gather(self, order, epoch, batch_index):
        """Rank r's part of global batch `batch_index`: images float32 (B/N, C, H, W), labels
        int64 (B/N,)."""
        start = batch_index * self.batch_size + self.rank * self.shard_size
        indices = order[start:start + self.shard_size]
        images = to_float32(self.dataset.images[indices])
        if self.transform is not None:                 # this rank's own augmentation stream
            rng = self._generator(epoch, AUGMENT_STREAM, batch_index, self.rank)
            images = self.transform(images, rng)
        return images, numpy.asarray(self.dataset.labels[indices], dtype=numpy.int64)


def shard_dataset(dataset, rank, size):
    """Rank `rank`'s contiguous part of a data set, one of `size` parts whose lengths differ by at
    most one (a view: the images are not copied)."""
    count = len(dataset.labels)
    start, stop = rank * count // size, (rank + 1) * count // size
    part = type(dataset).__new__(type(dataset))
    vars(part).update(vars(dataset))
    part.images, part.labels = dataset.images[start:stop], dataset.labels[start:stop]
    part.source = f"{dataset.source}, images {start}..{stop - 1} (rank {rank} of {size})"
    return part
