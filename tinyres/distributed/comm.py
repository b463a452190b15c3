"""Floor 7 (beside train): the communicator — who am I, how many of us are there, and the few
collective operations data-parallel training needs.

`mpiexec -n N tinyres train ...` starts N copies of the same program, the *ranks* 0..N-1. They
share no memory: everything one rank must know about another goes through MPI, the message
library of HPC clusters (here through mpi4py). Data-parallel SGD needs only a handful of calls:

    rank, size                 which copy am I, how many copies are there
    allreduce_sum(array)       in place: every rank ends with the element-wise sum over all ranks
    broadcast(array)           in place: every rank ends with rank 0's values
    allgather(value)           a list of one small Python value from each rank, on every rank
    barrier()                  wait until every rank has got here
    abort()                    end every rank of the job at once

A *collective* (all but rank, size and abort) is a meeting: every rank must call it, in the same
order, or the ranks that did call it wait forever. So a rank must never skip one on its own, for
instance by raising an exception the others do not raise; that is what `abort()` is for.

The watchdog. A rank can also stop without an exception: a SIGSTOP, a hung node, a dead network.
So every collective is started non-blocking and waited for with a deadline (`timeout` seconds,
600 by default, `--collective-timeout` or TINYRES_COLLECTIVE_TIMEOUT). A rank whose wait runs out
calls the roll: it tells every other rank "I am waiting in collective k", and every rank that is
itself waiting in a collective answers the same way. Whoever has not answered within a few
seconds did not arrive; the lowest waiting rank names it, and the whole job is aborted.

Without mpiexec, `get_communicator()` returns `SingleProcess`, which has the same interface and
does nothing (the sum over one rank is the array itself), so one process needs no mpi4py and
behaves exactly as a program that never heard of MPI.
"""
import os
import pickle
import sys
import time
import traceback

import numpy

from tinyres.errors import UserError

# Variables that MPI launchers set in every process they start (MPICH, Intel MPI and Slurm's
# PMI: PMI_SIZE; Open MPI: OMPI_COMM_WORLD_SIZE; PMIx launchers: PMIX_RANK). Looking at them
# tells us whether we were started by mpiexec without importing mpi4py.
_LAUNCHER_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE")
DEFAULT_COLLECTIVE_TIMEOUT = 600.0     # seconds a collective may wait before the job is aborted
ROLL_CALL_TAG = 7301                   # the watchdog's point-to-point messages


class DistributedError(UserError, RuntimeError):
    """Something every rank agrees is wrong, raised on all ranks at once (so none is left waiting
    for the others): ranks whose parameters differ, a batch size that does not divide among the
    ranks, --sync-bn without MPI, a checkpoint made with another number of ranks."""


class SingleProcess:
    """The communicator of a program run without mpiexec: one rank, and every collective is the
    identity (the sum over one rank of an array is that array)."""

    rank, size, uses_mpi, timeout = 0, 1, False, None        # (nobody to wait for)

    def allreduce_sum(self, array):
        return array

    def broadcast(self, array, root=0):
        return array

    def allgather(self, value):
        return [value]

    def barrier(self):
        pass

    def abort(self, code=1):
        raise SystemExit(code)

    def __repr__(self):
        return "SingleProcess()"


class MPICommunicator:
    """The ranks of an MPI job (mpi4py's COMM_WORLD). Arrays are host NumPy arrays, C-contiguous:
    the callers copy device data to the host first (the MPI wheels are not CUDA-aware)."""

    uses_mpi = True

    def __init__(self, comm=None, timeout=None):
        from mpi4py import MPI                          # only ever imported under mpiexec
        self._MPI = MPI
        self._comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self._comm.Get_rank(), self._comm.Get_size()
        self.timeout = float(timeout or os.environ.get("TINYRES_COLLECTIVE_TIMEOUT")
                             or DEFAULT_COLLECTIVE_TIMEOUT)
        self.collectives = 0                            # how many this rank has entered

    def allreduce_sum(self, array):
        """Sum `array` over all ranks, in place (MPI_Allreduce with MPI_IN_PLACE); returns it."""
        self._wait(self._comm.Iallreduce(self._MPI.IN_PLACE, array, op=self._MPI.SUM),
                   "allreduce_sum")
        return array

    def broadcast(self, array, root=0):
        """Overwrite `array` with rank `root`'s, in place (MPI_Bcast); returns it."""
        self._wait(self._comm.Ibcast(array, root=root), "broadcast")
        return array

    def allgather(self, value):
        """[value of rank 0, value of rank 1, ...] on every rank (small, picklable values): each
        rank's pickled bytes, gathered as their lengths, then the bytes themselves."""
        mine = numpy.frombuffer(pickle.dumps(value), dtype=numpy.uint8)
        lengths = numpy.zeros(self.size, dtype=numpy.int64)
        self._wait(self._comm.Iallgather(numpy.array([mine.size], dtype=numpy.int64), lengths),
                   "allgather")
        everyone = numpy.empty(int(lengths.sum()), dtype=numpy.uint8)
        self._wait(self._comm.Iallgatherv(mine, [everyone, lengths]), "allgather")
        starts = numpy.concatenate([[0], numpy.cumsum(lengths)])
        return [pickle.loads(everyone[a:b].tobytes()) for a, b in zip(starts, starts[1:])]

    def barrier(self):
        """Return once every rank has called barrier (MPI_Barrier)."""
        self._wait(self._comm.Ibarrier(), "barrier")

    # -- the watchdog --------------------------------------------------------------------------
    def _wait(self, request, name):
        """Wait for a non-blocking collective; past the deadline, call the roll and abort."""
        self.collectives += 1
        deadline, pause = time.monotonic() + self.timeout, 0.0
        while not request.Test():
            if self._comm.Iprobe(source=self._MPI.ANY_SOURCE, tag=ROLL_CALL_TAG) or (
                    time.monotonic() > deadline):
                self._call_the_roll(name)               # never returns
            time.sleep(pause)
            pause = min(2 * pause or 1e-5, 1e-3)        # waits of 10 us up to 1 ms

    def _call_the_roll(self, name, answer_for=5.0):
        """Tell every rank where this one waits, hear where the others wait, name the ranks that
        did not answer, and end the job."""
        here = (self.rank, self.collectives, name)
        sent = [self._comm.isend(here, dest=rank, tag=ROLL_CALL_TAG)      # (kept until the end)
                for rank in range(self.size) if rank != self.rank]
        waiting, end = {self.rank: here}, time.monotonic() + answer_for
        while time.monotonic() < end and len(waiting) < self.size:
            if self._comm.Iprobe(source=self._MPI.ANY_SOURCE, tag=ROLL_CALL_TAG):
                rank, count, where = self._comm.recv(source=self._MPI.ANY_SOURCE,
                                                     tag=ROLL_CALL_TAG)
                waiting[rank] = (rank, count, where)
            else:
                time.sleep(1e-3)
        if self.rank == min(waiting):                   # one report, from the lowest rank
            missing = [rank for rank in range(self.size) if rank not in waiting]
            elsewhere = [f"rank {rank} waits in {where} (collective {count})"
                         for rank, count, where in waiting.values()
                         if count != self.collectives]
            print(f"tinyres: watchdog: rank{'s' if len(missing) > 1 else ''} "
                  f"{', '.join(map(str, missing)) or 'none'} did not arrive at {name} (collective "
                  f"{self.collectives}) within {self.timeout:g} s"
                  + (f"; {'; '.join(elsewhere)}" if elsewhere else "")
                  + f". Is it stopped, hung or on a lost node? Aborting all {self.size} ranks "
                  f"(--collective-timeout or TINYRES_COLLECTIVE_TIMEOUT sets the wait)",
                  file=sys.stderr)
        else:
            time.sleep(answer_for)                      # the lowest rank reports and aborts
        del sent
        self.abort(3)

    def abort(self, code=1):
        """End every process of the job now (MPI_Abort): nobody is left waiting."""
        sys.stdout.flush()
        sys.stderr.flush()
        self._comm.Abort(code)
        os._exit(code)             # should the library return before the launcher ends us

    def __repr__(self):
        return f"MPICommunicator(rank={self.rank}, size={self.size})"


def launched_by_mpi():
    """True when this process was started by an MPI launcher (mpiexec, srun) or mpi4py is already
    running (`python -m mpi4py -m tinyres ...`)."""
    return "mpi4py.MPI" in sys.modules or any(v in os.environ for v in _LAUNCHER_VARIABLES)


_communicator = None


def get_communicator():
    """The communicator of this process: MPI under mpiexec, else SingleProcess (no mpi4py)."""
    global _communicator
    if _communicator is None:
        if not launched_by_mpi():
            _communicator = SingleProcess()
        else:
            try:
                _communicator = MPICommunicator()
            except ImportError as err:
                raise DistributedError(
                    f"this process was started by an MPI launcher, but mpi4py cannot be "
                    f"imported ({err}); install it with an MPI library: pip install "
                    f"'tinyres[mpi]' (mpi4py and the mpich wheel)") from None
    return _communicator


def abort_job(comm, error):
    """Report that this rank failed, then end the whole job (every rank) with MPI_Abort.

    Used when an exception happens on some ranks but maybe not on all: the others would otherwise
    wait forever in the next collective for a rank that is gone.
    """
    print(f"tinyres: rank {comm.rank} of {comm.size} failed with {type(error).__name__}: "
          f"{error}\n(aborting all {comm.size} ranks; this rank's traceback follows)",
          file=sys.stderr)
    traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    comm.abort(1)
