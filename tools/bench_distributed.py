"""Throughput of data-parallel training: 1 rank x 2 threads against 2 ranks x 1 thread.

    python tools/bench_distributed.py                    # runs every configuration, prints a table
    python tools/bench_distributed.py --model resnet20 --batch-size 128 --steps 10

Each configuration is a fresh process (or `mpiexec -n N` job) with the thread count of the BLAS
and Numba pinned through OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS and
NUMBA_NUM_THREADS. Each rank trains on its B/N real images (the bundled CIFAR-10 sample) with
the training loop's own train_step; the clock runs over `--steps` steps after `--warmup` steps.
The table gives images per second of the global batch, the time per step spent in
average_gradients (packing, the all-reduce, and waiting for the slower rank), and a bare
MPI_Allreduce of the gradient buffer (4 x parameters bytes) timed on its own. From those it
projects what N ranks on N machines would ask of the network (docs/distributed.md explains it).
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MPIEXEC = shutil.which("mpiexec", path=sysconfig.get_path("scripts")) or shutil.which("mpiexec")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


def worker(args):
    """The program of every rank: time `steps` training steps; rank 0 prints one JSON line."""
    import numpy
    import tinyres
    from tinyres.data import Normalize, bundled_sample, to_float32
    from tinyres.distributed import DataParallel, get_communicator, per_rank_batch_size
    from tinyres.models import get_model
    from tinyres.optim import SGD
    from tinyres.train.loop import train_step

    comm = get_communicator()
    per_rank = per_rank_batch_size(args.batch_size, comm.size)
    sample = bundled_sample(train=True)
    mine = slice(comm.rank * per_rank, (comm.rank + 1) * per_rank)
    images = tinyres.tensor(Normalize()(to_float32(sample.images[mine])))
    labels = tinyres.tensor(sample.labels[mine].astype(numpy.int64))
    tinyres.manual_seed(0)
    model = get_model(args.model)
    parallel = DataParallel(model, comm) if comm.size > 1 else None
    optimizer = SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)

    sync_seconds = [0.0]
    if parallel is not None:                      # time the gradient averaging separately
        average = parallel.average_gradients

        def timed_average():
            start = time.perf_counter()
            average()
            sync_seconds[0] += time.perf_counter() - start
        parallel.average_gradients = timed_average

    for _ in range(args.warmup):
        train_step(model, images, labels, optimizer, parallel)
    sync_seconds[0] = 0.0
    comm.barrier()
    start = time.perf_counter()
    for _ in range(args.steps):
        train_step(model, images, labels, optimizer, parallel)
    comm.barrier()
    elapsed = time.perf_counter() - start

    # A bare all-reduce of the gradient buffer: what the network alone costs per step.
    buffer = numpy.zeros(model.num_parameters(), dtype=numpy.float32)
    repeats = 20
    comm.barrier()
    t0 = time.perf_counter()
    for _ in range(repeats):
        comm.allreduce_sum(buffer)
    allreduce = (time.perf_counter() - t0) / repeats
    allreduce = max(comm.allgather(allreduce))
    if comm.rank == 0:
        print(json.dumps({"ranks": comm.size, "images_per_second": args.batch_size * args.steps
                          / elapsed, "seconds_per_step": elapsed / args.steps,
                          "sync_seconds_per_step": sync_seconds[0] / args.steps,
                          "allreduce_seconds": allreduce if comm.size > 1 else 0.0,
                          "parameters": model.num_parameters()}))


def run(ranks, threads, args):
    """One configuration in a fresh process (or mpiexec job); returns the worker's JSON dict and
    the command line."""
    env = dict(os.environ, **{name: str(threads) for name in THREAD_VARIABLES})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    launcher = [MPIEXEC, "-n", str(ranks)] if ranks > 1 else []
    options = ["--worker", "--model", args.model, "--batch-size", str(args.batch_size),
               "--steps", str(args.steps), "--warmup", str(args.warmup)]
    command = launcher + [sys.executable, str(Path(__file__).resolve())] + options
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    shown = " ".join([f"{name}={threads}" for name in THREAD_VARIABLES]
                     + (["mpiexec", "-n", str(ranks)] if ranks > 1 else [])
                     + ["python", "tools/bench_distributed.py"] + options)
    return json.loads(done.stdout.strip().splitlines()[-1]), shown


def projection(per_image_seconds, parameters, batch_size, ranks_list=(2, 4, 8, 16, 64)):
    """What N ranks (one per machine) need from the network so that the ring all-reduce takes no
    more than 10% of a step: rows of (N, images per rank, compute seconds, bytes sent per rank,
    bandwidth needed in Gbit/s)."""
    rows = []
    for n in ranks_list:
        per_rank = batch_size // n
        compute = per_rank * per_image_seconds
        sent = 2 * (n - 1) / n * 4 * parameters
        rows.append((n, per_rank, compute, sent, sent * 8 / (0.1 * compute) / 1e9))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--configs", default="1x1,1x2,2x1", metavar="RxT,...",
                        help="ranks x threads to run (default 1x1,1x2,2x1)")
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if MPIEXEC is None:
        raise SystemExit("no mpiexec on PATH: pip install 'tinyres[mpi]' (mpi4py + mpich)")

    print(f"# {args.model}, global batch {args.batch_size}, {args.steps} timed steps after "
          f"{args.warmup}; {datetime.date.today()}, {os.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}, load average "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print("| configuration | images/s | s/step | gradient sync s/step | bare all-reduce s |")
    print("|---|---|---|---|---|")
    results = {}
    configs = [tuple(map(int, c.split("x"))) for c in args.configs.split(",")]
    for ranks, threads in configs:
        result, command = run(ranks, threads, args)
        results[ranks, threads] = result
        print(f"| {ranks} rank{'s' if ranks > 1 else ''} x {threads} thread"
              f"{'s' if threads > 1 else ''} | {result['images_per_second']:.1f} | "
              f"{result['seconds_per_step']:.3f} | {result['sync_seconds_per_step']:.4f} | "
              f"{result['allreduce_seconds']:.5f} |", flush=True)
        print(f"|   `{command}` | | | | |")

    if (1, 1) not in results or (2, 1) not in results:
        return
    single = results[1, 1]
    parameters = single["parameters"]
    per_image = 1 / single["images_per_second"]      # one core's compute time per image
    two = results[2, 1]
    print(f"\nparameters {parameters:,}; gradient buffer {4 * parameters / 1e6:.2f} MB per step; "
          f"bare all-reduce of it on this machine {two['allreduce_seconds'] * 1e3:.2f} ms "
          f"(ring: each rank sends {2 * (2 - 1) / 2 * 4 * parameters / 1e6:.2f} MB, "
          f"{2 * 4 * parameters / two['allreduce_seconds'] / 2 / 1e9:.2f} GB/s per rank)")
    print("\nprojection, one rank per machine at this machine's per-core speed "
          f"({per_image * 1e3:.1f} ms per image), all-reduce at most 10% of a step:")
    print("| ranks N | images per rank | compute s/step | sent per rank per step | network "
          "needed |")
    print("|---|---|---|---|---|")
    for n, per_rank, compute, sent, gbits in projection(per_image, parameters, args.batch_size):
        print(f"| {n} | {per_rank} | {compute:.3f} | {sent / 1e6:.2f} MB | {gbits:.2f} Gbit/s |")


if __name__ == "__main__":
    sys.exit(main())
