"""The labs (tinyres lab NAME): their pieces, and each lab end to end in smoke mode only."""
import csv
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy
import pytest

from tinyres.cli import main
from tinyres.labs import LABS, degradation, get_lab, paper, responses
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


def lab_options(**given):
    """The options `tinyres lab` hands a lab, with its defaults."""
    options = dict(smoke=False, paper=False, download=False, report_only=False, data=None,
                   epochs=None, seeds=None, depths=None, jobs=2, threads=1, quiet=True)
    return SimpleNamespace(**{**options, **given})


def test_degradation_design_is_the_runs_at_the_papers_depths_seed_by_seed():
    """The lab's runs are exactly those of the long training made for issue 30 (so pointed at
    its directory the lab finds them finished): plain and ResNet 56 and 20, seed after seed,
    12 epochs, warm-up 100, batch 128; `--depths 8 20 --epochs 20` is the lab of 2026-12-05."""
    data = "../shared/data/cifar10-subset"
    expected = [RunSpec(f"{family}{depth}", seed, 12, 100, data, None, 128)
                for seed in (0, 1, 2) for depth in (56, 20) for family in ("plain", "resnet")]
    assert degradation.specs(degradation.design_for(lab_options()), data) == expected
    two = degradation.design_for(lab_options(seeds=2))
    assert two.seeds == (0, 1) and degradation.specs(two, data) == expected[:8]
    earlier = degradation.design_for(lab_options(depths=[20, 8], epochs=20))
    assert degradation.specs(earlier, data)[:2] == [RunSpec("plain20", 0, 20, 100, data),
                                                    RunSpec("resnet20", 0, 20, 100, data)]
    assert earlier.pairs == [(8, 20)]
    assert degradation.design_for(lab_options(depths=[8, 20, 56])).pairs == [(20, 56), (8, 20)]


@pytest.mark.parametrize("depths", [[20], [20, 21], [20, 18]])
def test_depths_that_cannot_be_compared_are_one_line(tmp_path, capsys, depths):
    code = main(["lab", "degradation", "--depths", *map(str, depths), "--data", "sample",
                 "--out", str(tmp_path / "lab")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "give two depths or more" in err, err
    assert "8, 14, 20, 32, 44, 56, 110" in err
    assert not (tmp_path / "lab").exists() or not list((tmp_path / "lab").iterdir())


def run_of(train_errors, steps_per_epoch=2, test_error=0.5):
    """A run's curves (as load_run gives them) whose epoch e has training error train_errors[e]."""
    steps = [{"iteration": e * steps_per_epoch + i + 1, "lr": 0.1, "train_error": error}
             for e, error in enumerate(train_errors) for i in range(steps_per_epoch)]
    epochs = [{"epoch": e + 1, "iteration": (e + 1) * steps_per_epoch, "lr": 0.1,
               "train_error": error, "test_error": test_error}
              for e, error in enumerate(train_errors)]
    return {"steps": steps, "epochs": epochs, "config": {}}


def test_a_check_holds_in_a_seed_above_at_the_end_and_in_most_epochs():
    results = {("plain56", 0): run_of([0.9, 0.8, 0.7, 0.6]),
               ("plain20", 0): run_of([0.95, 0.7, 0.6, 0.5]),        # below from epoch 2 on
               ("plain56", 1): run_of([0.9, 0.8, 0.7, 0.4]),
               ("plain20", 1): run_of([0.95, 0.7, 0.6, 0.5])}        # above at the end only
    first, second = degradation.compare(results, "plain56", "plain20", (0, 1))
    assert (first["share"], first["holds"]) == (0.75, True)
    assert (second["share"], second["holds"]) == (0.5, False)
    lines, held = degradation.check_lines("1.", "plain56", "plain20", [first, second], 4)
    assert not held and lines[-1] == "  -> does NOT hold in 1 of 2 seeds"
    assert "above in 3 of 4 epochs (75%): holds" in lines[1]


def test_runs_read_while_they_train_are_compared_over_their_common_whole_epochs():
    growing = run_of([0.96, 0.8, 0.7])
    growing["steps"] = growing["steps"][:4]          # epoch 3's row written, its steps not yet
    cut = degradation.whole_epochs(growing)
    assert len(cut["epochs"]) == 2 and len(cut["steps"]) == 4
    results = {("plain56", 0): cut, ("plain20", 0): run_of([0.95, 0.7, 0.6, 0.5])}
    (only,) = degradation.compare(results, "plain56", "plain20", (0, 1, 2))
    assert only["epochs"] == 2 and only["higher"] == 0.8 and only["lower"] == 0.7
    text = degradation.report(results, degradation.Design(epochs=4), "test data")
    assert "NOT FINISHED (--report-only)" in text and "@2" in text
    assert "-> not checked yet: no seed has both runs" in text
    assert text.rstrip().endswith("Checks that hold in every seed: 1; not checked yet: 2, 3 "
                                  "(so far: the runs are not finished).")


def test_report_only_with_no_run_begun_is_one_line(tmp_path, capsys):
    code = main(["lab", "degradation", "--report-only", "--data", "sample",
                 "--out", str(tmp_path / "lab-degradation")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no run under" in err, err


def test_responses_observations_are_checked_seed_by_seed():
    design = degradation.Design(depths=(8, 20, 56), seeds=(0, 1))
    stds, ends = {}, {}
    for seed, deep_resnet in ((0, 0.5), (1, 0.9)):
        for depth, plain, resnet in ((8, 1.0, 0.7), (20, 1.0, 0.6), (56, 1.0, deep_resnet)):
            stds[(f"plain{depth}", seed)] = [plain] * (depth - 1)
            stds[(f"resnet{depth}", seed)] = [resnet] * (depth - 1)
            ends[depth] = [i % 2 == 1 for i in range(depth - 1)]
    epochs = {key: 20 for key in stds}
    text = responses.report(stds, design, 500, ends, epochs)
    assert "depth 56: seed 0: 55 of 55 layers, ratio 0.50; seed 1: 55 of 55 layers, ratio 0.90 " \
           "-> holds in 2 of 2 seeds" in text
    assert "ResNet-56 against ResNet-20: seed 0: 0.500 against 0.600; seed 1: 0.900 against " \
           "0.600 -> does NOT hold in 1 of 2 seeds" in text
    assert "ResNet-20 against ResNet-8: seed 0: 0.600 against 0.700; seed 1: 0.600 against " \
           "0.700 -> holds in 2 of 2 seeds" in text
    assert "NOT FINISHED" not in text


def test_the_papers_recipe_is_section_4_2():
    design = paper.design_for(lab_options(paper=True))
    assert (design.steps_per_epoch, design.epochs) == (351, 182)     # 63,882 of the 64k
    specs = paper.specs(design, "/data/cifar-10-batches-py")
    assert [s.model for s in specs] == ["resnet110", "plain56", "resnet56", "plain44", "resnet44",
                                        "plain32", "resnet32", "plain20", "resnet20"]
    config = {s.model: s.config("out") for s in specs}
    assert config["resnet110"].warmup_iterations == 400
    assert {c.warmup_iterations for m, c in config.items() if m != "resnet110"} == {0}
    assert {(c.normalize, c.limit_train, c.batch_size, c.lr, c.momentum, c.weight_decay)
            for c in config.values()} == {("pixel", 45000, 128, 0.1, 0.9, 1e-4)}
    assert paper.design_for(lab_options(paper=True, seeds=2)).seeds == (0, 1)


@pytest.mark.parametrize("argv, expected", [
    (["degradation", "--paper", "--data", "sample"], "the bundled sample has 5,482"),
    (["degradation", "--paper", "--data", "{subset}"], "has 5,482. Give --data DIR"),
    (["degradation", "--paper", "--data", "{missing}"], "--paper needs the full CIFAR-10"),
    (["depth", "--paper"], "--paper is an option of the degradation lab only"),
    (["degradation", "--download"], "--download goes with --paper"),
    (["depth", "--report-only"], "--report-only is an option of the degradation and responses"),
    (["features", "--depths", "8", "20"], "--depths is an option of the degradation and"),
    (["degradation", "--paper", "--depths", "8", "20"], "--depths does not go with --paper"),
])
def test_the_papers_recipe_refuses_what_is_not_the_full_cifar10_in_one_line(
        tmp_path, capsys, argv, expected, request):
    if "{subset}" in argv:
        argv = [request.getfixturevalue("cifar_subset") if a == "{subset}" else a for a in argv]
    argv = [str(tmp_path / "none") if a == "{missing}" else a for a in argv]
    code = main(["lab", *map(str, argv), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert expected in err, err
    assert not list((tmp_path / "out").iterdir()) if (tmp_path / "out").exists() else True


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
    # --report-only reads the same finished runs, trains nothing, and reports the same
    only = subprocess.run([sys.executable, "-m", "tinyres", "lab", "degradation", "--smoke",
                           "--data", "sample", "--out", str(tmp_path / "lab-degradation-smoke"),
                           "--quiet", "--report-only"], capture_output=True, text=True,
                          timeout=300)
    assert only.returncode == 0 and "NOT FINISHED" not in only.stdout
    assert (tmp_path / "lab-degradation-smoke" / "report.txt").read_text() in only.stdout


@pytest.mark.slow
def test_the_papers_recipe_in_smoke_mode_estimates_then_trains_and_validates(tmp_path):
    """`tinyres lab degradation --paper --smoke`: the section-4.2 code path at a tiny size on
    the bundled sample: the estimate from measured steps first, then the runs, the held-out
    validation error and the paper's Table 6 beside."""
    out = tmp_path / "lab-degradation-paper-smoke"
    done = subprocess.run([sys.executable, "-m", "tinyres", "lab", "degradation", "--paper",
                           "--smoke", "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    estimate = done.stdout.index("Estimated time with --jobs 2:")
    assert done.stdout.index("ResNet-14") < estimate < done.stdout.index("The paper's recipe (")
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "plain8-seed0", "resnet14-seed0", "resnet8-seed0"]
    report = (out / "report.txt").read_text()
    assert "a warm-up at lr 0.01 for ResNet-14 (4 iterations)" in report
    assert "validation: the 128 training images after the first 256" in report
    assert (out / "degradation.png").stat().st_size > 0


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


ROOT = Path(__file__).resolve().parents[1]
VERDICTS = ("holds", "does not hold", "not measured yet")


def verdict_rows(markdown, heading):
    """The rows (lab, finding, depths, verdict) of the table under `heading` in a markdown text."""
    section = markdown.split(heading, 1)[1]
    rows = []
    for line in section.splitlines()[1:]:
        if rows and not line.startswith("|"):
            break
        if line.startswith("|") and not line.startswith("|---"):
            rows.append(tuple(cell.strip() for cell in line.strip().strip("|").split("|")))
    return rows[1:]                                     # (the header row)


def test_the_readmes_claims_about_the_labs_are_docs_labs_verdicts():
    """README's table of what the labs show is docs/labs.md's table of verdicts, row for row:
    the README claims nothing the committed results do not, and leaves out no verdict (a
    finding that does not hold here is said so in both)."""
    readme = verdict_rows((ROOT / "README.md").read_text(), "What the labs show")
    labs = verdict_rows((ROOT / "docs" / "labs.md").read_text(), "## What the labs show")
    assert readme and readme == labs
    for lab, finding, depths, verdict in labs:
        assert lab.strip("`") in LABS, lab
        assert verdict.startswith(VERDICTS), (finding, verdict)
