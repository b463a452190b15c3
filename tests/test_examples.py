"""Every example in examples/ runs in its smoke mode (--smoke: tiny sizes, seconds) and says what
it should, so none of them rots.

The examples start together, as subprocesses, when the first test asks for them; each test then
waits for its own and checks its exit status, some lines of its output, and the figures it wrote.
Where an example prints a check (autograd against finite differences, im2col + GEMM against
loops...) the test also reads the number and holds it small. The example runs are the slow tier
(`pytest -m slow`); the fast tier checks only that every example has its expectations here.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TIMEOUT = 600        # seconds per example, generous for a loaded machine; normally a few each

# script -> (lines its output must contain, files it must write in its output folder)
EXPECTED = {
    "01_autograd.py": (["== Step 7:", "made by MatMul(x (2, 3), W (3, 2))", "digraph tinyres {",
                        "backward() calls the Functions in this order: Mean -> Mul -> Add -> "
                        "MatMul", "BrokenSquare: caught"], ["graph.dot", "graph.png"]),
    "02_im2col_convolution.py": (["cols = im2col(x) (N*OH*OW, C*KH*KW)  shape (4, 9)",
                                  "max |difference| = 0.0e+00", "col2im(ones)"],
                                 ["im2col.png", "col2im_counts.png"]),
    "03_batch_norm.py": (["== Step 6:", "buggy caught?"], ["running_averages.png"]),
    "04_residual_block.py": (["(shortcut): Identity()", "option B: shortcut = Sequential("],
                             []),
    "05_plain_vs_residual.py": (["== Step 4:", "resnet8",
                                 "plain-14's training error above plain-8's"],
                                ["gradient_norms_at_init.png",
                                 "lab-degradation-smoke/degradation.png"]),
    "06_train_resnet20.py": (["epoch 1/1:", "== Step 4:"],
                             ["learning_curves.png", "run/metrics.csv", "run/curves.png"]),
    "07_backend_switch.py": (["numpy, reference", "leakproof", "are the results the same?"],
                             ["step_times.png"]),
    "vgg_vs_resnet.py": (["== Step"], []),
}

# checks an example prints, as (pattern, largest value allowed)
NUMBERS = {
    "01_autograd.py": [(r"worst relative error ([\d.e+-]+)", 1e-6),
                       (r"our graph: max relative error ([\d.e+-]+)", 1e-6)],
    "02_im2col_convolution.py": [(r"max relative difference ([\d.e+-]+)", 1e-10),
                                 (r"autograd's conv2d backward agrees: dL/dx ([\d.e+-]+)", 1e-12),
                                 (r"finite differences: max relative error ([\d.e+-]+)", 1e-5)],
    "03_batch_norm.py": [(r"against the formulas: max relative difference ([\d.e+-]+)", 1e-10),
                         (r"\*\* ops: +([\d.e+-]+)", 1e-10),
                         (r"dbeta\): max relative error ([\d.e+-]+)", 1e-5)],
    "04_residual_block.py": [(r"max relative difference from autograd ([\d.e+-]+)", 1e-10),
                             (r"option A: max relative error ([\d.e+-]+)", 1e-5),
                             (r"option B: max relative error ([\d.e+-]+)", 1e-5)],
    "07_backend_switch.py": [(r"^logits +([\d.e+-]+)", 1e-4)],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Start every example at once; returns {script: (Popen, output folder)}."""
    present = sorted(p.name for p in EXAMPLES.glob("*.py") if p.name != "lesson.py")
    missing = sorted(set(EXPECTED) - set(present))
    assert not missing, f"examples missing: {missing}"
    env = dict(os.environ, TINYRES_SMOKE="1", MPLBACKEND="Agg", TINYRES_KERNELS="reference",
               PYTHONDONTWRITEBYTECODE="1")
    env.pop("TINYRES_BACKEND", None)
    started = {}
    for script in present:
        out = tmp_path_factory.mktemp(script.removesuffix(".py"))
        command = [sys.executable, str(EXAMPLES / script), "--smoke", "--out", str(out)]
        started[script] = (subprocess.Popen(command, cwd=EXAMPLES.parent, env=env,
                                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                            text=True), out)
    yield started
    for process, _ in started.values():
        if process.poll() is None:
            process.kill()


def finished(runs, script):
    process, out = runs[script]
    try:
        output, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"examples/{script} --smoke did not finish in {TIMEOUT} s")
    assert process.returncode == 0, f"examples/{script} --smoke failed:\n{output[-4000:]}"
    return output, out


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_runs_in_smoke_mode(runs, script):
    output, out = finished(runs, script)
    lines, files = EXPECTED[script]
    for line in lines:
        assert line in output, f"examples/{script}: expected {line!r} in its output"
    for name in files:
        assert (out / name).is_file(), f"examples/{script} did not write {name}"
        assert str(out) in output, f"examples/{script} does not say where its files went"
    for pattern, largest in NUMBERS.get(script, []):
        values = [float(v) for v in re.findall(pattern, output, re.M)]
        assert values, f"examples/{script}: no {pattern!r} in its output"
        assert max(values) <= largest, f"examples/{script}: {pattern} = {max(values)}"


def test_every_example_is_tested():
    scripts = {p.name for p in EXAMPLES.glob("*.py")} - {"lesson.py"}
    assert scripts <= set(EXPECTED), f"add {sorted(scripts - set(EXPECTED))} to EXPECTED"


@pytest.mark.slow
def test_step_mode_waits_for_enter_between_steps(tmp_path):
    """--step pauses before every step after the first; Enter goes on (and EOF stops asking)."""
    done = subprocess.run([sys.executable, str(EXAMPLES / "01_autograd.py"), "--step",
                           "--out", str(tmp_path)], input="\n\n\n", capture_output=True,
                          text=True, timeout=TIMEOUT, env=dict(os.environ, MPLBACKEND="Agg"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("press Enter for the next step") == 4      # 3 Enters, then EOF
    assert "== Step 7:" in done.stdout
