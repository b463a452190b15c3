"""The labs (tinyres lab NAME): their pieces, and each lab end to end in smoke mode only."""
import csv
import subprocess
import sys
from types import SimpleNamespace

import numpy
import pytest

from tinyres.labs import LABS, get_lab
from tinyres.labs.runs import LabError, RunSpec, _check_same_settings
from tinyres.train.curves import lr_changes, smoothed


def test_smoothed_is_the_running_mean_of_the_last_values():
    values = [1.0, 3.0, 5.0, 7.0]
    numpy.testing.assert_allclose(smoothed(values, 2), [1.0, 2.0, 4.0, 6.0])
    numpy.testing.assert_allclose(smoothed(values, 1), values)
    numpy.testing.assert_allclose(smoothed(values, 10), [1.0, 2.0, 3.0, 4.0])


def test_lr_changes_are_where_the_lr_differs_from_the_step_before():
    steps = [{"iteration": i, "lr": lr} for i, lr in
             enumerate([0.01, 0.01, 0.1, 0.1, 0.01, 0.001], start=1)]
    assert lr_changes(steps) == [(3, 0.1), (5, 0.01), (6, 0.001)]
    assert lr_changes(steps[:2]) == []


def test_a_run_directory_with_other_settings_is_refused(tmp_path):
    spec = RunSpec("plain8", seed=0, epochs=20, warmup=100)
    other = RunSpec("plain8", seed=0, epochs=10, warmup=100)
    _check_same_settings(spec.config(tmp_path), spec.config(tmp_path / "elsewhere"), tmp_path)
    with pytest.raises(LabError, match=r"epochs 10 \(asked 20\).*Delete that directory"):
        _check_same_settings(other.config(tmp_path), spec.config(tmp_path), tmp_path)


def test_unknown_lab_names_the_labs():
    with pytest.raises(ValueError, match="degradation"):
        get_lab("degradaton")


def test_bottleneck_lab_smoke(tmp_path):
    get_lab("bottleneck").run(SimpleNamespace(smoke=True, quiet=True), tmp_path)
    report = (tmp_path / "report.txt").read_text()
    assert "bottleneck 256-d, projection" in report
    with (tmp_path / "bottleneck.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and (tmp_path / "bottleneck.png").stat().st_size > 0
    for row in rows[:2]:    # an identity shortcut hands dL/dy' to x unchanged: the same norm
        assert float(row["grad_through_shortcut"]) == pytest.approx(
            float(row["grad_upstream"]), rel=1e-6), row["block"]
    identity, projection = rows[1:]
    assert int(projection["params"]) > 1.9 * int(identity["params"])


@pytest.mark.slow
def test_every_lab_runs_end_to_end_in_smoke_mode(tmp_path):
    """`tinyres lab NAME --smoke` for each lab (degradation first: the others reuse its runs)."""
    expected = {"degradation": ["degradation.png", "curves.csv", "report.txt"],
                "responses": ["responses.png", "responses.csv", "report.txt"],
                "depth": ["depth.png", "depth.csv", "report.txt"],
                "features": ["filters.png", "feature_maps.png", "report.txt"],
                "bottleneck": ["bottleneck.png", "bottleneck.csv", "report.txt"]}
    assert set(expected) == set(LABS)
    for name, files in expected.items():
        out = tmp_path / f"lab-{name}-smoke"
        done = subprocess.run([sys.executable, "-m", "tinyres", "lab", name, "--smoke",
                               "--data", "sample", "--out", str(out), "--quiet"],
                              capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-2000:]
        for filename in files:
            assert (out / filename).stat().st_size > 0, (name, filename)
    runs = sorted(p.name for p in (tmp_path / "lab-degradation-smoke").iterdir() if p.is_dir())
    assert runs == ["plain14-seed0", "plain8-seed0", "resnet14-seed0", "resnet8-seed0"]
    # a second call reuses the finished runs (and says the same)
    again = subprocess.run([sys.executable, "-m", "tinyres", "lab", "degradation", "--smoke",
                            "--data", "sample", "--out", str(tmp_path / "lab-degradation-smoke"),
                            "--quiet"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    assert (tmp_path / "lab-degradation-smoke" / "report.txt").read_text() in again.stdout


@pytest.mark.slow
def test_a_lab_run_with_other_settings_is_one_clear_line(tmp_path):
    out = tmp_path / "lab-degradation-smoke"
    first = [sys.executable, "-m", "tinyres", "lab", "degradation", "--smoke", "--data",
             "sample", "--out", str(out), "--quiet"]
    assert subprocess.run(first, capture_output=True, timeout=600).returncode == 0
    done = subprocess.run(first + ["--epochs", "3"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 2
    assert "holds a run with other settings: epochs 2 (asked 3)" in done.stderr
    assert "Traceback" not in done.stderr
