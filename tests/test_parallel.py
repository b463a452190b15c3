"""tinyres.parallel (the readable path's threads) and tinyres.kernels.blas (BLAS's thread count)."""
import threading

import numpy
import pytest

from tinyres import parallel
from tinyres.kernels import blas


@pytest.fixture
def threads():
    """Set the thread count for one test; the previous count is restored after it."""
    before = parallel.num_threads()
    yield parallel.set_num_threads
    parallel.set_num_threads(before)


@pytest.mark.parametrize("count", [1, 2, 5])
def test_map_parts_returns_the_results_in_order(threads, count):
    threads(count)
    assert parallel.map_parts(lambda n: n * n, range(20)) == [n * n for n in range(20)]


def test_map_parts_runs_on_several_threads_and_blas_on_one(threads):
    threads(2)
    seen, barrier = set(), threading.Barrier(2, timeout=10)

    def part(_):
        barrier.wait()                          # both parts must be running at the same time
        seen.add(threading.current_thread().name)
        return blas.blas_threads() if blas.blas_controllable() else 1
    assert parallel.map_parts(part, range(2)) == [1, 1]
    assert len(seen) == 2


def test_a_failing_part_raises_in_the_caller(threads):
    threads(2)

    def part(n):
        if n == 3:
            raise ZeroDivisionError("part 3")
        return n
    with pytest.raises(ZeroDivisionError, match="part 3"):
        parallel.map_parts(part, range(6))


def test_a_part_that_maps_again_runs_its_parts_itself(threads):
    threads(2)
    nested = parallel.map_parts(lambda n: parallel.map_parts(lambda m: (n, m), range(3)), range(4))
    assert nested == [[(n, m) for m in range(3)] for n in range(4)]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_num_threads_refuses_what_is_not_a_positive_int(bad):
    with pytest.raises(ValueError, match="positive int"):
        parallel.set_num_threads(bad)


def test_the_environment_sets_the_default(monkeypatch):
    monkeypatch.setattr(parallel, "_count", None)
    monkeypatch.setenv("TINYRES_NUM_THREADS", "3")
    assert parallel.num_threads() == 3
    monkeypatch.setenv("TINYRES_NUM_THREADS", "two")
    with pytest.raises(ValueError, match="TINYRES_NUM_THREADS.*'two'"):
        parallel.num_threads()


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
    """tinyres.set_num_threads sets the readable path's, BLAS's and Numba's thread counts."""
    import tinyres
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
