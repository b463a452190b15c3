"""The thread count (tinyres.set_num_threads: BLAS's and the fast kernels') and
tinyres.kernels.blas (BLAS's thread count, reached through ctypes)."""
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
