"""Floor 7 (beside train): data-parallel SGD — N copies of one model, kept in step.

Every rank holds a full copy of the model and computes, on its own B/N images of the global batch
(sharding.py), the gradient of its own mean loss. The gradient of the global batch's mean loss is
the mean of those N gradients (each rank's loss is a mean over the same number of images):

    L = (1/B) sum over all B images of loss_i = (1/N) sum over ranks r of L_r
    dL/dθ = (1/N) sum over ranks r of dL_r/dθ

So a data-parallel step is the one-process step with one line added between backward and the
optimizer, an all-reduce that replaces every rank's gradients by their mean:

    loss.backward()                  # dL_r/dθ, from this rank's images only
    parallel.average_gradients()     # dL/dθ on every rank: sum over ranks (MPI_Allreduce), / N
    optimizer.step()                 # the same update on every rank

Starting from the same parameters, with the same gradients and the same optimizer state, every
rank makes the same update, so the copies stay equal without ever being sent again. They start
equal because rank 0's parameters are broadcast to all at construction, and that is checked, not
assumed: at the first step every rank compares a checksum of its parameters with the others'.

One flat buffer per step. All gradients are copied into one contiguous array (the "bucket") and
reduced with one MPI_Allreduce, not one call per parameter: each call costs a fixed latency (a
few microseconds on one machine, tens across a network) on top of the bytes, and ResNet-20 has
59 parameter arrays, many of them tiny (a batch norm's 16 weights).

Batch norm is the one place where the ranks' computations differ from one process's: without
--sync-bn each rank normalises with the statistics of its own B/N images (sync_batchnorm.py).
"""
import hashlib
import math

import numpy

from tinyres import backend
from tinyres.distributed.comm import DistributedError


def _host(array):
    """A C-contiguous host NumPy copy-or-view of a backend array (what MPI can send)."""
    return numpy.ascontiguousarray(backend.to_device(array, "cpu"))


def check_ranks_agree(comm, facts, what):
    """Raise DistributedError on every rank unless all ranks hold the same `facts` (a dict of small
    values, e.g. the model's parameter names and shapes, or the data set's size).

    Every rank gets every rank's facts (allgather), so every rank reaches the same verdict and
    raises together: none is left waiting in a collective.
    """
    everyone = comm.allgather(facts)
    differing = [rank for rank, theirs in enumerate(everyone) if theirs != everyone[0]]
    if differing:
        details = []
        for rank in differing:
            keys = [k for k in everyone[0] if everyone[rank].get(k) != everyone[0][k]]
            details.append(f"rank {rank} differs from rank 0 in: {', '.join(map(str, keys))}")
        raise DistributedError(f"the {comm.size} ranks disagree on {what}: " + "; ".join(details))


def model_layout(model):
    """What every rank's model must share for the flat buffers to line up: each parameter's name,
    shape and dtype, in order."""
    return {name: (tuple(p.shape), str(p.dtype)) for name, p in model.named_parameters()}


def parameter_checksums(model):
    """{name: SHA-256 of the parameter's bytes (first 16 hex digits)}: equal only if bit-equal."""
    return {name: hashlib.sha256(_host(p.data).tobytes()).hexdigest()[:16]
            for name, p in model.named_parameters()}


class DataParallel:
    """Keep `model`'s copies on all ranks of `comm` in step: broadcast at the start, a checksum
    at the first step, averaged gradients at every step."""

    def __init__(self, model, comm):
        self.model, self.comm = model, comm
        self.params = list(model.parameters())
        check_ranks_agree(comm, model_layout(model), "the model's parameters (names, shapes, "
                                                     "dtypes)")
        dtypes = {p.dtype for p in self.params}
        if len(dtypes) != 1:
            raise TypeError(f"DataParallel: all parameters must have one dtype to share one flat "
                            f"gradient buffer, got {sorted(map(str, dtypes))}")
        # The bucket: one flat host array, and a view of it shaped as each parameter.
        self.flat = numpy.zeros(sum(p.numel() for p in self.params), dtype=dtypes.pop())  # (P,)
        self.views, offset = [], 0
        for p in self.params:
            self.views.append(self.flat[offset:offset + p.numel()].reshape(p.shape))
            offset += p.numel()
        self.broadcast_from_rank0()
        self.verified = False

    @property
    def bytes_per_step(self):
        """The size of the gradient buffer every rank all-reduces each step (4 x parameters in
        float32)."""
        return self.flat.nbytes

    def broadcast_from_rank0(self):
        """Give every rank rank 0's parameters and buffers (in place: the optimizer keeps its
        references). Once, at the start, so one call per array is fine."""
        for tensor in list(self.params) + [b for b in self.model.buffers()]:
            host = numpy.array(_host(tensor.data))             # a copy MPI may overwrite
            self.comm.broadcast(host, root=0)
            tensor.data[...] = backend.to_device(host, tensor.device)

    def verify_parameters(self):
        """Every rank checks that its parameters are bit-equal to every other rank's (a checksum
        per parameter, gathered from all ranks); a DistributedError names the ranks and the
        parameters that differ."""
        mine = parameter_checksums(self.model)
        everyone = self.comm.allgather(mine)
        problems = []
        for rank, theirs in enumerate(everyone):
            differing = [name for name in mine if theirs[name] != everyone[0][name]]
            if differing:
                shown = ", ".join(differing[:5]) + (", ..." if len(differing) > 5 else "")
                problems.append(f"rank {rank} differs from rank 0 in {len(differing)} of "
                                f"{len(mine)} parameters ({shown})")
        if problems:
            raise DistributedError(
                "parameter checksum mismatch at the first step: " + "; ".join(problems) + ". "
                "Every rank must start from the same parameters (broadcast from rank 0); did a "
                "rank load another checkpoint or change its parameters?")
        self.verified = True

    def average_gradients(self):
        """After backward on every rank: replace each parameter's gradient by its mean over the
        ranks, with one all-reduce of one flat buffer. Verifies the parameters first, once."""
        if not self.verified:
            self.verify_parameters()
        for p, view in zip(self.params, self.views):          # pack: gradients -> bucket
            view[...] = 0 if p.grad is None else _host(p.grad)
        self.comm.allreduce_sum(self.flat)                     # the step's one collective
        self.flat /= self.comm.size                            # sum -> mean
        for p, view in zip(self.params, self.views):          # unpack: bucket -> gradients
            if p.grad is not None:                             # (None: no gradient anywhere)
                p.grad = backend.to_device(view.copy(), p.device)

    def global_batch_stats(self, loss, correct, count):
        """Combine each rank's (mean loss, correct, images) of its slice into the global batch's
        (mean loss, correct, images, ranks whose loss is not finite). One small allgather."""
        parts = self.comm.allgather((float(loss), int(correct), int(count)))
        total = sum(n for _, _, n in parts)
        mean_loss = sum(mean * n for mean, _, n in parts) / total
        failed = [rank for rank, (mean, _, _) in enumerate(parts) if not math.isfinite(mean)]
        return mean_loss, sum(c for _, c, _ in parts), total, failed

    def average_buffers(self):
        """Make every rank's floating-point buffers (batch norm's running mean and variance) their
        mean over the ranks. Without --sync-bn each rank's running statistics come from its own
        images; averaging them before evaluating and saving gives every rank, and the checkpoint,
        the same model (with --sync-bn they are already equal)."""
        buffers = [b for b in self.model.buffers() if b.dtype.kind == "f"]
        if not buffers:
            return
        flat = numpy.concatenate([_host(b.data).ravel().astype(numpy.float64) for b in buffers])
        self.comm.allreduce_sum(flat)
        flat /= self.comm.size
        offset = 0
        for b in buffers:
            part = flat[offset:offset + b.numel()].reshape(b.shape).astype(b.dtype)
            b.data[...] = backend.to_device(part, b.device)
            offset += b.numel()

    def sum_evaluation(self, result):
        """Each rank evaluated its part of the test set (`evaluate`'s dict); return the whole set's:
        confusion matrices summed, and the loss and accuracy computed from the sums."""
        confusion = numpy.array(result["confusion"], dtype=numpy.int64)       # (K, K)
        loss_sum = numpy.array([result["test_loss"] * confusion.sum()], dtype=numpy.float64)
        self.comm.allreduce_sum(confusion)
        self.comm.allreduce_sum(loss_sum)
        seen = max(int(confusion.sum()), 1)
        return {"test_loss": float(loss_sum[0]) / seen,
                "test_accuracy": numpy.trace(confusion) / seen, "confusion": confusion}

    def any_rank(self, flag):
        """True on every rank if `flag` is true on any rank (e.g. a Ctrl-C seen by one rank), so
        all ranks stop at the same step."""
        return any(self.comm.allgather(bool(flag)))
