"""The gradient checker itself: it must catch wrong backwards, and say where."""
import subprocess
import sys

import numpy
import pytest

import tinyres
from tinyres import Function
from tinyres.gradcheck import GradcheckError, gradcheck


class WrongSquare(Function):
    """y = x^2 with a wrong backward (x instead of 2x) at one element only."""
    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, gy):
        g = 2 * self.x * gy
        g[1, 2] = self.x[1, 2] * gy[1, 2]
        return g


def test_a_wrong_backward_is_caught_and_located():
    x = tinyres.tensor(numpy.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    with pytest.raises(GradcheckError, match=r"input 0 \(shape \(3, 4\)\) at index \(1, 2\): "
                                             r"analytic .* numeric .* relative error"):
        gradcheck(lambda x: WrongSquare()(x), [x])


def test_the_projection_is_random_so_normalisation_cannot_hide():
    """With an all-ones upstream gradient, y = x - mean(x) has zero gradient whatever backward
    says. A backward that forgets the mean's term passes the all-ones check but not ours."""
    class ForgetsTheMean(Function):
        def forward(self, x):
            return x - x.mean()

        def backward(self, gy):
            return gy - gy.mean() * 0.0          # wrong: drops the -mean(gy) term

    x = tinyres.tensor(numpy.random.default_rng(1).standard_normal(5), requires_grad=True)
    y = ForgetsTheMean()(x)
    y.backward(numpy.ones(5))                      # all-ones: analytic = 1, true gradient = 0...
    assert numpy.allclose(x.grad, 1.0)
    with pytest.raises(GradcheckError):
        gradcheck(lambda x: ForgetsTheMean()(x), [x])


def test_float32_inputs_are_refused():
    x = tinyres.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match="float32; finite differences need float64"):
        gradcheck(lambda x: x * x, [x])


def test_large_inputs_are_sampled_and_say_so():
    x = tinyres.tensor(numpy.random.default_rng(2).standard_normal(3000), requires_grad=True)
    report = gradcheck(lambda x: x * x, [x], max_elements=100)
    assert report.sampled and report.checked == 100 and report.total == 3000
    assert "random subset of 100 of 3000" in str(report)


def test_inputs_without_requires_grad_are_held_constant():
    x = tinyres.tensor(numpy.ones(3), requires_grad=True)
    c = tinyres.tensor(numpy.full(3, 2.0))
    assert gradcheck(lambda x, c: x * c, [x, c]).checked == 3


@pytest.mark.slow
def test_cli_gradcheck_prints_a_table_and_exit_status():
    out = subprocess.run([sys.executable, "-m", "tinyres", "gradcheck"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "max rel err" in out.stdout and "all passed" in out.stdout
    assert "FAIL" not in out.stdout


def test_cli_info():
    out = subprocess.run([sys.executable, "-m", "tinyres", "info"], capture_output=True,
                         text=True, check=True)
    for field in ("tinyres", "backend", "numpy", "cupy", "GPU visible"):
        assert field in out.stdout


def test_cli_gradcheck_runs_the_courses_table_in_process(capsys):
    """`tinyres gradcheck` takes its cases from the course room's table (course/checks)."""
    from tinyres.cli import main
    assert main(["gradcheck", "--only", "global_avg_pool2d"]) == 0
    out = capsys.readouterr().out
    assert "global_avg_pool2d" in out and "all passed" in out and "FAIL" not in out
