"""Floor 7, beside train: data-parallel training on MPI (`mpiexec -n N tinyres train ...`).

Read in this order:
    comm.py             ranks, the collectives, and the one-process stand-in (no mpi4py needed)
    sharding.py         each rank's slice of every global batch, and of the test set
    data_parallel.py    broadcast, checksum, one all-reduce of all gradients per step
    sync_batchnorm.py   batch norm with the statistics of the global batch (--sync-bn)

docs/distributed.md has the whole story, the measurements and the cost model.
"""
from tinyres.distributed.comm import (DistributedError, MPICommunicator, SingleProcess,
                                      abort_job, get_communicator, launched_by_mpi)
from tinyres.distributed.data_parallel import (DataParallel, check_ranks_agree, model_layout,
                                               parameter_checksums)
from tinyres.distributed.sharding import ShardedLoader, per_rank_batch_size, shard_dataset
from tinyres.distributed.sync_batchnorm import (SyncBatchNorm2d, SyncBatchNormTrain,
                                                convert_sync_batchnorm, sync_batch_norm)

__all__ = [
    "DistributedError", "MPICommunicator", "SingleProcess", "abort_job", "get_communicator",
    "launched_by_mpi", "DataParallel", "check_ranks_agree", "model_layout",
    "parameter_checksums", "ShardedLoader", "per_rank_batch_size", "shard_dataset",
    "SyncBatchNorm2d", "SyncBatchNormTrain", "convert_sync_batchnorm", "sync_batch_norm",
]
