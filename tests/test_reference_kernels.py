"""The code a learner steps through is the code that runs (issue 26): inside
``tinyres.reference_kernels()`` (and in the examples' --step mode) the readable backward of
functional/conv.py and functional/batchnorm.py is called, where a breakpoint or a trace sees it;
outside, with the fast kernels, it is not."""
import subprocess
import sys
from pathlib import Path

import numpy
import pytest

import tinyres
import tinyres.functional as F
from tinyres import dispatch
from tinyres.functional import batchnorm, conv

READABLE = {conv.conv2d_backward.reference.__code__: "conv2d_backward",
            batchnorm.batch_norm_train_backward.reference.__code__: "batch_norm_train_backward"}
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def traced_calls(run):
    """The readable functions entered while `run()` runs, as a debugger's trace hook sees them."""
    seen = []

    def hook(frame, event, arg):
        if event == "call" and frame.f_code in READABLE:
            seen.append(READABLE[frame.f_code])
        return None

    sys.settrace(hook)
    try:
        run()
    finally:
        sys.settrace(None)
    return seen


def conv_bn_backward():
    rng = numpy.random.default_rng(0)
    x = tinyres.tensor(rng.standard_normal((2, 3, 6, 6)).astype(numpy.float32), requires_grad=True)
    w = tinyres.tensor(rng.standard_normal((4, 3, 3, 3)).astype(numpy.float32), requires_grad=True)
    y = F.batch_norm(F.conv2d(x, w, padding=1), None, None, training=True)
    (y * y).sum().backward()


def test_inside_reference_kernels_the_readable_backward_runs():
    before = tinyres.get_kernels()
    with tinyres.reference_kernels():
        assert tinyres.get_kernels() == "reference"
        seen = traced_calls(conv_bn_backward)
    assert tinyres.get_kernels() == before                   # restored, as no_grad restores
    assert seen == ["batch_norm_train_backward", "conv2d_backward"]


def test_outside_with_fast_kernels_the_breakpoint_never_fires():
    if dispatch.kernel_for("conv2d_backward", numpy.zeros(1, numpy.float32)) is None:
        pytest.skip("no fast CPU kernels here (Numba missing or kernels set to reference)")
    assert traced_calls(conv_bn_backward) == []


def test_reference_kernels_restores_the_setting_after_an_error():
    tinyres.set_kernels("fast")
    with pytest.raises(ZeroDivisionError), tinyres.reference_kernels():
        1 / 0
    assert tinyres.get_kernels() == "fast"


@pytest.mark.slow
def test_an_examples_step_mode_runs_the_readable_code():
    """--step says so when it starts and runs the reference (pauses skip on a closed stdin)."""
    result = subprocess.run([sys.executable, "02_im2col_convolution.py", "--smoke", "--step"],
                            cwd=EXAMPLES, capture_output=True, text=True, input="", timeout=300)
    assert result.returncode == 0, result.stderr
    assert "--step: the readable reference kernels run" in result.stdout.splitlines()[1]
    assert "conv2d ran the readable reference tinyres.functional.conv.conv2d_forward" in \
        result.stdout
