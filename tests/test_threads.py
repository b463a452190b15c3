"""The thread count (tinyres.set_num_threads: BLAS's and the fast kernels') and
tinyres.kernels.blas (BLAS's thread count, reached through ctypes)."""
import os
import threading
import time

import numpy
import pytest

import tinyres
from tinyres import dispatch
from tinyres.kernels import blas


@pytest.fixture
def threads():
    """Set the thread count for one test; the previous count is restored after it."""
    before = tinyres.get_num_threads()
    yield tinyres.set_num_threads
    tinyres.set_num_threads(before)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_num_threads_refuses_what_is_not_a_positive_int(bad):
    with pytest.raises(ValueError, match="positive int"):
        tinyres.set_num_threads(bad)


def test_the_environment_sets_the_count_unless_set_num_threads_came_first(threads, monkeypatch):
    monkeypatch.setattr(dispatch, "_threads_from_environment", True)
    monkeypatch.setenv("TINYRES_NUM_THREADS", "1")
    assert tinyres.get_num_threads() == 1
    if blas.blas_controllable():
        assert blas.blas_threads() == 1
    monkeypatch.setattr(dispatch, "_threads_from_environment", True)
    monkeypatch.setenv("TINYRES_NUM_THREADS", "two")
    with pytest.raises(ValueError, match="TINYRES_NUM_THREADS.*'two'"):
        tinyres.get_num_threads()
    monkeypatch.setattr(dispatch, "_threads_from_environment", True)
    threads(2)                                    # an explicit call wins over the environment
    assert not dispatch._threads_from_environment


@pytest.mark.skipif(not blas.blas_controllable(), reason="no OpenBLAS whose threads can be set")
def test_single_threaded_blas_restores_the_count():
    before = blas.blas_threads()
    blas.set_blas_threads(2)
    try:
        with blas.single_threaded_blas():
            assert blas.blas_threads() == 1
            a = numpy.ones((64, 64), numpy.float32)
            assert (a @ a == 64).all()
        assert blas.blas_threads() == 2
    finally:
        blas.set_blas_threads(before)


def test_set_num_threads_is_the_one_knob(threads):
    """tinyres.set_num_threads sets BLAS's and Numba's thread counts."""
    threads(1)
    assert tinyres.get_num_threads() == 1
    if blas.blas_controllable():
        assert blas.blas_threads() == 1
    numba = pytest.importorskip("numba")
    assert numba.get_num_threads() == 1


def test_train_refuses_a_thread_count_below_one(capsys):
    from tinyres.cli import main
    with pytest.raises(SystemExit):
        main(["train", "--threads", "0"])
    assert "expected a whole number >= 1, got '0'" in capsys.readouterr().err


def test_train_names_a_bad_thread_variable_in_one_line(monkeypatch, tmp_path, capsys):
    from tinyres.cli import main
    monkeypatch.setattr(dispatch, "_threads_from_environment", True)
    monkeypatch.setenv("TINYRES_NUM_THREADS", "two")
    assert main(["train", "--epochs", "1", "--data", "sample", "--out",
                 str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == (
        "tinyres train: environment variable TINYRES_NUM_THREADS='two': expected a whole number "
        ">= 1, got 'two' (or unset it)\n")
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not blas.blas_controllable(), reason="no OpenBLAS found")
def test_blas_description_names_the_kernel_and_whether_the_environment_forced_it(monkeypatch):
    """The bench's header line: OpenBLAS's version and chosen kernel, and a warning when
    OPENBLAS_CORETYPE (which overrides OpenBLAS's own choice) is set."""
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    line = blas.blas_description()
    assert line.startswith("OpenBLAS 0.") and ", kernel " in line and "forced" not in line
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Prescott")
    assert "forced by OPENBLAS_CORETYPE=Prescott" in blas.blas_description()


needs_affinity = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="pinning needs sched_setaffinity and at least 2 CPUs")


@needs_affinity
def test_a_job_on_every_cpu_runs_each_thread_on_its_own_cpu(threads):
    """kernels/cpu/threads.py pins a job's threads one to a CPU when the job may use every CPU
    of the process (else Linux may run two of them on one CPU after a pause), and gives the
    calling thread its CPUs back afterwards."""
    share = pytest.importorskip("tinyres.kernels.cpu.threads", reason="needs Numba").share
    allowed = os.sched_getaffinity(0)
    threads(len(allowed))
    seen = {}

    def make_worker():
        def work(i):
            time.sleep(0.005)                       # long enough for every thread to take parts
            seen.setdefault(threading.get_ident(), set()).add(frozenset(os.sched_getaffinity(0)))
        return work
    share(4 * len(allowed), make_worker)
    assert len(seen) == len(allowed) and all(len(sets) == 1 for sets in seen.values())
    cpu_of_each_thread = [next(iter(sets)) for sets in seen.values()]
    assert all(len(cpus) == 1 for cpus in cpu_of_each_thread)
    assert set().union(*cpu_of_each_thread) == allowed                 # one CPU each, all used
    assert os.sched_getaffinity(0) == allowed


@needs_affinity
def test_a_job_on_fewer_threads_than_cpus_is_left_to_the_os(threads, monkeypatch):
    """Pinning 2 threads of a machine with more CPUs would put every tinyres process on the
    same two: the calling thread stays where it is, a helper may run on any CPU."""
    cpu_threads = pytest.importorskip("tinyres.kernels.cpu.threads", reason="needs Numba")
    threads(2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    assert cpu_threads._placement(2) == [None, set(range(8))]


def test_a_larger_pool_shuts_the_old_one_down(monkeypatch):
    """A job on more threads than the pool has replaces it; the old pool's threads end instead
    of waiting, idle, for the life of the process."""
    cpu_threads = pytest.importorskip("tinyres.kernels.cpu.threads", reason="needs Numba")
    monkeypatch.setattr(cpu_threads, "_pool", None)     # this test's pools, not the session's
    monkeypatch.setattr(cpu_threads, "_pool_size", 0)
    small = cpu_threads._helpers(1)
    old_thread = small.submit(threading.current_thread).result()
    large = cpu_threads._helpers(2)
    try:
        assert large is not small and cpu_threads._helpers(1) is large
        old_thread.join(timeout=10)
        assert not old_thread.is_alive()
    finally:
        large.shutdown()
