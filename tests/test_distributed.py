"""Data-parallel training on MPI (tinyres.distributed).

Two kinds of tests:
- in this process, without MPI: sharding, the one-process communicator, synchronised batch norm
  over one rank (it must be batch norm), the errors that need no second rank;
- with MPI for real: this file is also the program each rank runs (`python test_distributed.py
  MODE ...`, at the bottom), started by `mpiexec -n 2` from the tests. Where mpiexec or mpi4py is
  missing, or cannot start two ranks, those tests skip and say why (pip install 'tinyres[mpi]').
"""
import csv
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy
import pytest

import tinyres
import tinyres.functional as F
from tinyres.data import DataLoader, Normalize, bundled_sample, to_float32
from tinyres.distributed import (DataParallel, DistributedError, ShardedLoader, SingleProcess,
                                 convert_sync_batchnorm, get_communicator, per_rank_batch_size,
                                 shard_dataset, sync_batch_norm)
from tinyres.distributed.sync_batchnorm import SyncBatchNorm2d
from tinyres.gradcheck import gradcheck
from tinyres.models import cifar_resnet
from tinyres.optim import SGD
from tinyres.train.loop import train_step

from cifar_folder import write_tiny_cifar

HERE = Path(__file__).resolve()
# the mpiexec installed beside this Python (the mpich wheel's), else the one on PATH
MPIEXEC = shutil.which("mpiexec", path=sysconfig.get_path("scripts")) or shutil.which("mpiexec")
RANKS = 2
MPI_TIMEOUT = 60              # seconds: a hung job fails the test instead of hanging the suite


# -- what both sides compute: one SGD step of ResNet-8 on real images ---------------------------
def real_batch(count=16):
    """The first `count` training images of the bundled (real) CIFAR-10 sample, normalised."""
    sample = bundled_sample(train=True)
    images = Normalize()(to_float32(sample.images[:count]))
    return images, sample.labels[:count].astype(numpy.int64)


def resnet8(comm=None, sync_bn=False):
    tinyres.manual_seed(0)
    model = cifar_resnet(8)
    if sync_bn:
        convert_sync_batchnorm(model, comm)
    return model


def one_step(model, images, labels, parallel=None):
    """One step of the paper's SGD (lr 0.1, momentum 0.9, weight decay 1e-4) through the
    training loop's own train_step."""
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    return train_step(model, tinyres.tensor(images), tinyres.tensor(labels), optimizer, parallel)


def parameters(model):
    return {name: p.numpy().copy() for name, p in model.named_parameters()}


# ===============================================================================================
# Without MPI
# ===============================================================================================
def test_single_process_communicator_is_the_identity(monkeypatch):
    for variable in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr("tinyres.distributed.comm._communicator", None)
    if "mpi4py.MPI" in sys.modules:
        pytest.skip("mpi4py is already imported in this process")
    comm = get_communicator()
    assert isinstance(comm, SingleProcess) and (comm.rank, comm.size) == (0, 1)
    a = numpy.arange(5.0)
    assert comm.allreduce_sum(a) is a and comm.broadcast(a) is a and comm.allgather(3) == [3]
    assert "mpi4py.MPI" not in sys.modules


def test_per_rank_batch_size_and_its_error():
    assert per_rank_batch_size(128, 2) == 64
    assert per_rank_batch_size(16, 4) == 4
    with pytest.raises(DistributedError, match=r"batch size 15 does not divide among 2 ranks.*"
                                               r"14 or 16"):
        per_rank_batch_size(15, 2)


def test_shards_are_disjoint_slices_of_the_one_process_batches():
    sample = bundled_sample(train=True)
    whole = DataLoader(sample, 16, shuffle=True, drop_last=True, seed=3)
    shards = [ShardedLoader(sample, 16, rank, 2, shuffle=True, drop_last=True, seed=3)
              for rank in range(2)]
    assert len(shards[0]) == len(whole)
    for (images, labels), part0, part1 in zip(whole, *shards):
        assert part0[0].shape == (8, 3, 32, 32) and part1[0].shape == (8, 3, 32, 32)
        numpy.testing.assert_array_equal(numpy.concatenate([part0[0], part1[0]]), images)
        numpy.testing.assert_array_equal(numpy.concatenate([part0[1], part1[1]]), labels)
    assert shards[0].state_dict() == whole.state_dict()      # the position is the global one


def test_each_rank_augments_with_its_own_stream():
    sample = bundled_sample(train=True)

    def first_draw(images, rng):                # a "transform" showing the generator it got
        return numpy.full_like(images, rng.random())

    def draws(loader):
        return [float(images.flat[0]) for images, _ in loader]

    ranks = [draws(ShardedLoader(sample, 16, r, 2, seed=0, transform=first_draw))
             for r in range(2)]
    assert ranks[0] == draws(ShardedLoader(sample, 16, 0, 2, seed=0, transform=first_draw))
    one_process = draws(DataLoader(sample, 16, seed=0, transform=first_draw))
    assert len({tuple(ranks[0]), tuple(ranks[1]), tuple(one_process)}) == 3
    assert not set(ranks[0]) & set(ranks[1])


def test_shard_dataset_covers_the_set_once():
    test_set = bundled_sample(train=False)
    parts = [shard_dataset(test_set, r, 3) for r in range(3)]
    numpy.testing.assert_array_equal(numpy.concatenate([p.labels for p in parts]),
                                     test_set.labels)
    assert max(len(p.labels) for p in parts) - min(len(p.labels) for p in parts) <= 1


def test_sync_batch_norm_on_one_rank_is_batch_norm(backend, rng):
    x = rng.normal(2.0, 3.0, size=(4, 3, 5, 5)).astype(numpy.float32)
    w, b = rng.normal(size=3).astype(numpy.float32), rng.normal(size=3).astype(numpy.float32)
    projection = tinyres.tensor(backend.asarray(rng.normal(size=x.shape).astype(numpy.float32)))
    outs = []
    for fn in (lambda *a: sync_batch_norm(*a, comm=SingleProcess()),
               lambda x, w, b, m, v: F.batch_norm(x, m, v, w, b, training=True)):
        xt, wt, bt = (tinyres.tensor(backend.asarray(v), requires_grad=True) for v in (x, w, b))
        mean, var = backend.zeros(3, dtype=numpy.float32), backend.ones(3, dtype=numpy.float32)
        y = fn(xt, wt, bt, mean, var)
        (y * projection).sum().backward()
        outs.append([y.data, xt.grad, wt.grad, bt.grad, mean, var])
    for got, want in zip(*outs):
        numpy.testing.assert_allclose(tinyres.backend.to_device(got, "cpu"),
                                      tinyres.backend.to_device(want, "cpu"),
                                      rtol=1e-4, atol=1e-5)


def test_sync_batch_norm_gradcheck(rng):
    x = tinyres.tensor(rng.normal(size=(3, 2, 4, 3)), requires_grad=True)
    w = tinyres.tensor(rng.normal(size=2), requires_grad=True)
    b = tinyres.tensor(rng.normal(size=2), requires_grad=True)
    gradcheck(lambda x, w, b: sync_batch_norm(x, w, b, None, None, SingleProcess()), [x, w, b])
    gradcheck(lambda x: sync_batch_norm(x, None, None, None, None, SingleProcess()), [x])


def test_convert_sync_batchnorm_keeps_names_order_and_parameters():
    model = resnet8()
    before = list(model.named_parameters())
    buffers = [name for name, _ in model.named_buffers()]
    convert_sync_batchnorm(model, SingleProcess())
    after = list(model.named_parameters())
    assert [n for n, _ in after] == [n for n, _ in before]
    assert all(p is q for (_, p), (_, q) in zip(before, after))
    assert [name for name, _ in model.named_buffers()] == buffers
    assert isinstance(model.layer1[0].bn1, SyncBatchNorm2d)
    assert model.layer1[0].bn1.path == "layer1.0.bn1"


def test_data_parallel_on_one_process_changes_nothing():
    images, labels = real_batch(8)
    reference = resnet8()
    one_step(reference, images, labels)
    model = resnet8()
    parallel = DataParallel(model, SingleProcess())
    one_step(model, images, labels, parallel)
    assert parallel.verified and parallel.bytes_per_step == 4 * model.num_parameters()
    for name, value in parameters(reference).items():
        numpy.testing.assert_array_equal(parameters(model)[name], value)


def test_sync_bn_without_mpi_is_a_clear_error(tmp_path, capsys):
    from tinyres.cli import main
    data = write_tiny_cifar(tmp_path / "data")
    code = main(["train", "--sync-bn", "--data", data, "--batch-size", "16", "--epochs", "1",
                 "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 2
    assert "--sync-bn synchronises batch norm across MPI ranks" in capsys.readouterr().err


# ===============================================================================================
# With MPI: `mpiexec -n 2` runs this file as the program of every rank
# ===============================================================================================
def _mpi_problem():
    """Why two MPI ranks cannot be started here, or None when they can."""
    if MPIEXEC is None:
        return "no mpiexec on PATH (pip install 'tinyres[mpi]' brings the mpich wheel)"
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install 'tinyres[mpi]')"
    try:
        probe = subprocess.run([MPIEXEC, "-n", str(RANKS), sys.executable, "-c",
                                "from mpi4py import MPI; c = MPI.COMM_WORLD; "
                                "c.Get_rank() or print(c.Get_size())"],
                               capture_output=True, text=True, timeout=30, env=_env())
    except subprocess.TimeoutExpired:
        return "mpiexec -n 2 did not start two ranks within 30 s"
    if probe.returncode != 0 or probe.stdout.split() != [str(RANKS)]:
        return f"mpiexec -n 2 failed: {probe.stderr.strip()[-300:] or probe.stdout[-300:]}"
    return None


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               NUMBA_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parents[1])] +
                                        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


@pytest.fixture(scope="module")
def mpi():
    problem = _mpi_problem()
    if problem:
        pytest.skip(f"MPI tests skipped: {problem}")


def mpirun(*args, expect_fail=False):
    """Run `mpiexec -n 2 python ARGS`; returns the CompletedProcess (fails the test on a hang)."""
    command = [MPIEXEC, "-n", str(RANKS), sys.executable, *map(str, args)]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=MPI_TIMEOUT,
                              env=_env(), cwd=HERE.parents[1])
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(command)} hung for {MPI_TIMEOUT} s")
    done.seconds = time.perf_counter() - start
    if not expect_fail and done.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n"
                    f"{done.stderr}")
    return done


# float32 after one SGD step, summed in another order (one thread per rank against this
# process's threads): up to 2.1e-5 apart on Zen 4's AVX-512 kernels, 2026-12-07; the per-rank
# statistics move the step by more than 1e-4, so this still tells the two apart
STEP_ATOL = 4e-5


@pytest.mark.slow
def test_one_step_on_two_ranks_is_one_step_on_one(mpi, tmp_path):
    """2 ranks x 8 images with --sync-bn == 1 process x 16 images; per-rank BN differs only
    through the statistics; eval-mode BN is equal; a perturbed rank is caught by the checksum."""
    mpirun(HERE, "step", tmp_path)
    got = numpy.load(tmp_path / "step.npz")
    images, labels = real_batch(16)

    # synchronised BN: the very step of one process on all 16 images, buffers included
    reference = resnet8()
    one_step(reference, images, labels)
    for name, value in reference.state_dict().items():
        numpy.testing.assert_allclose(got[f"sync_bn/{name}"], value, rtol=1e-4, atol=STEP_ATOL,
                                      err_msg=name)

    # per-rank BN: the mean of the gradients of two 8-image batches, each normalised by its own
    # statistics, which differs from the 16-image step
    grads = []
    for part in (slice(0, 8), slice(8, 16)):
        copy = resnet8()
        logits = copy(tinyres.tensor(images[part]))
        F.cross_entropy(logits, tinyres.tensor(labels[part])).backward()
        grads.append([p.grad for p in copy.parameters()])
    emulated = resnet8()
    optimizer = SGD(emulated.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    for p, g0, g1 in zip(emulated.parameters(), *grads):
        p.grad = (g0 + g1) / 2
    optimizer.step()
    largest_bn_effect = 0.0
    for name, value in parameters(emulated).items():
        numpy.testing.assert_allclose(got[f"per_rank_bn/{name}"], value, rtol=1e-4, atol=STEP_ATOL,
                                      err_msg=name)
        largest_bn_effect = max(largest_bn_effect, float(numpy.abs(
            got[f"per_rank_bn/{name}"] - parameters(reference)[name]).max()))
    assert largest_bn_effect > 1e-4          # the statistics of 8 images are not those of 16

    # batch norm in eval mode (fixed statistics): the gradients are equal without sync
    reference = resnet8().eval()
    one_step(reference, images, labels)
    for name, value in parameters(reference).items():
        numpy.testing.assert_allclose(got[f"eval_bn/{name}"], value, rtol=1e-4, atol=STEP_ATOL,
                                      err_msg=name)

    message = str(got["checksum_error"])
    assert "parameter checksum mismatch at the first step" in message
    assert "rank 1 differs from rank 0 in 1 of" in message and "fc.weight" in message


@pytest.mark.slow
def test_two_rank_training_run_and_resume_rules(mpi, tmp_path, capsys):
    from tinyres.cli import main
    data = write_tiny_cifar(tmp_path / "data")
    run = tmp_path / "run"
    done = mpirun("-m", "tinyres", "train", "--model", "resnet20", "--data", data,
                  "--batch-size", "16", "--epochs", "1", "--sync-bn", "--out", run, "--quiet")
    assert done.stdout.count("done: test accuracy") == 1, done.stdout      # rank 0 alone
    assert "2 MPI ranks x 8 images per batch, batch norm synchronised" in done.stdout
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0]["iteration"] == "5"
    assert int(tinyres.load(run / "checkpoint.npz")["progress"]["ranks"]) == 2

    assert main(["train", "--resume", "--out", str(run), "--epochs", "2"]) == 2   # 1 process
    err = capsys.readouterr().err
    assert "was made by 2 MPI ranks (mpiexec -n 2), this job runs on one process" in err
    assert "resume it on 2 MPI ranks" in err and err.count("\n") == 1


@pytest.mark.slow
def test_resuming_on_another_number_of_ranks_is_explained_as_such(mpi, tmp_path, capsys):
    """A one-process run with a batch of 15 resumed on 2 ranks: the message is about the ranks,
    not advice to change the batch size (which a resume cannot act on)."""
    from tinyres.cli import main
    data = write_tiny_cifar(tmp_path / "data")
    run = tmp_path / "run"
    assert main(["train", "--data", data, "--batch-size", "15", "--epochs", "1", "--out",
                 str(run), "--quiet"]) == 0
    done = mpirun("-m", "tinyres", "train", "--resume", "--out", run, "--epochs", "2",
                  expect_fail=True)
    assert done.returncode == 2
    assert done.stderr.count("was made by one process (no mpiexec), this job runs on 2 MPI "
                             "ranks") == 1, done.stderr
    assert "does not divide" not in done.stderr


@pytest.mark.slow
def test_a_stopped_rank_is_named_and_the_job_ends(mpi, tmp_path):
    """Rank 1 stops itself (SIGSTOP) in its second step: rank 0 waits in the gradient all-reduce,
    the watchdog names rank 1 after --collective-timeout, and the whole job ends."""
    data = write_tiny_cifar(tmp_path / "data")
    done = mpirun(HERE, "stop", data, tmp_path / "run", expect_fail=True)
    assert done.returncode != 0 and done.seconds < MPI_TIMEOUT
    assert "watchdog: rank 1 did not arrive at allreduce_sum" in done.stderr, done.stderr
    assert "within 3 s" in done.stderr and "Aborting all 2 ranks" in done.stderr


@pytest.mark.slow
def test_exact_resume_and_agreed_ctrl_c_on_two_ranks(mpi, tmp_path):
    """Ctrl-C seen by rank 1 alone stops both ranks at the same step; resuming with 2 ranks
    ends where the uninterrupted run ends."""
    data = write_tiny_cifar(tmp_path / "data")
    mpirun(HERE, "resume", data, tmp_path)
    uninterrupted = tinyres.load(tmp_path / "a" / "checkpoint.npz")
    resumed = tinyres.load(tmp_path / "b" / "checkpoint.npz")
    assert (tmp_path / "b" / "interrupted_at").read_text() == "2"
    for name, value in uninterrupted["model"].items():
        numpy.testing.assert_allclose(resumed["model"][name], value, rtol=1e-5, atol=1e-6,
                                      err_msg=name)


@pytest.mark.slow
def test_batch_size_not_divisible_by_ranks_is_a_clear_error(mpi, tmp_path):
    data = write_tiny_cifar(tmp_path / "data")
    done = mpirun("-m", "tinyres", "train", "--data", data, "--batch-size", "15",
                  "--epochs", "1", "--out", tmp_path / "run", "--quiet", expect_fail=True)
    assert done.returncode != 0
    assert done.stderr.count("batch size 15 does not divide among 2 ranks") == 1, done.stderr


@pytest.mark.slow
def test_a_failing_rank_aborts_the_whole_job(mpi, tmp_path):
    data = write_tiny_cifar(tmp_path / "data")
    done = mpirun(HERE, "fail", data, tmp_path / "run", expect_fail=True)
    assert done.returncode != 0 and done.seconds < MPI_TIMEOUT
    assert "rank 1 of 2 failed with RuntimeError: injected failure" in done.stderr
    assert "aborting all 2 ranks" in done.stderr


@pytest.mark.slow
def test_a_nan_on_one_rank_stops_every_rank_naming_it(mpi, tmp_path):
    data = write_tiny_cifar(tmp_path / "data")
    done = mpirun(HERE, "nan", data, tmp_path / "run", expect_fail=True)
    assert done.returncode == 1
    assert done.stderr.count("the loss became nan on rank 1 at step 1") == 1, done.stderr


# ===============================================================================================
# The program of each rank (run by the tests above through mpiexec)
# ===============================================================================================
def _worker_step(out):
    comm = get_communicator()
    images, labels = real_batch(16)
    mine = slice(8 * comm.rank, 8 * comm.rank + 8)
    results = {}
    for variant in ("sync_bn", "per_rank_bn", "eval_bn"):
        model = resnet8(comm, sync_bn=variant == "sync_bn")
        parallel = DataParallel(model, comm)
        if variant == "eval_bn":
            model.eval()
        one_step(model, images[mine], labels[mine], parallel)
        results.update({f"{variant}/{k}": v for k, v in model.state_dict().items()})
    model = resnet8()
    parallel = DataParallel(model, comm)
    if comm.rank == 1:                           # this rank's model drifts after the broadcast
        model.fc.weight.data[0, 0] += 1e-3
    try:
        one_step(model, images[mine], labels[mine], parallel)
        message = "no error"
    except DistributedError as err:              # raised on every rank alike
        message = str(err)
    if comm.rank == 0:
        numpy.savez(Path(out) / "step.npz", checksum_error=numpy.array(message), **results)


def _worker_resume(data, out):
    from tinyres.train import TrainConfig, Trainer
    import tinyres.train.loop as loop
    comm = get_communicator()
    settings = dict(model="resnet20", epochs=2, batch_size=16, data=data, limit_train=48, seed=0)
    Trainer(TrainConfig(out=str(Path(out) / "a"), **settings), show_progress=False).fit()

    interrupted = Trainer(TrainConfig(out=str(Path(out) / "b"), **settings), show_progress=False)
    original, steps = loop.train_step, []

    def train_step_then_ctrl_c(*args, **kwargs):
        result = original(*args, **kwargs)
        steps.append(1)
        if comm.rank == 1 and len(steps) == 2:   # as if Ctrl-C reached rank 1 alone
            interrupted.stop.requested = True
        return result

    loop.train_step = train_step_then_ctrl_c
    try:
        interrupted.fit()
        raise AssertionError("the run was not interrupted")
    except KeyboardInterrupt:
        pass
    finally:
        loop.train_step = original
    if comm.rank == 0:
        (Path(out) / "b" / "interrupted_at").write_text(str(interrupted.iteration))
    Trainer.resume(Path(out) / "b", show_progress=False).fit()


def _worker_fail(mode, data, out):
    """`tinyres train` where rank 1 raises (mode 'fail'), gets a NaN loss (mode 'nan'), or stops
    itself with SIGSTOP at its second step (mode 'stop')."""
    import signal
    import tinyres.train.loop as loop
    from tinyres.cli import main
    original, steps = loop.train_step, []

    def broken_on_rank_1(*args, **kwargs):
        steps.append(1)
        if get_communicator().rank == 1:
            if mode == "fail":
                raise RuntimeError("injected failure")
            if mode == "stop" and len(steps) == 2:
                os.kill(os.getpid(), signal.SIGSTOP)       # hangs before the all-reduce
            if mode == "nan":
                original(*args, **kwargs)
                return float("nan"), 0
        return original(*args, **kwargs)

    loop.train_step = broken_on_rank_1
    sys.exit(main(["train", "--data", data, "--batch-size", "16", "--epochs", "1", "--out", out,
                   "--quiet", "--collective-timeout", "3"]))


if __name__ == "__main__":
    mode = sys.argv[1]
    try:
        if mode == "step":
            _worker_step(sys.argv[2])
        elif mode == "resume":
            _worker_resume(sys.argv[2], sys.argv[3])
        else:
            _worker_fail(mode, sys.argv[2], sys.argv[3])
    except Exception as error:                   # never leave the other rank waiting
        from tinyres.distributed import abort_job
        abort_job(get_communicator(), error)
