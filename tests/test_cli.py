"""The `tinyres` command as a careless user meets it: every mistake is refused before any work with
one line on stderr naming the option or file and what to do (exit 2, no traceback unless --debug
or TINYRES_DEBUG=1), no run is overwritten, and the file named is the file used."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy
import pytest

import tinyres
from tinyres.cli import main
from tinyres.train import TrainConfig, Trainer


def tiny_settings(out, **changes):
    settings = dict(model="resnet20", epochs=2, batch_size=16, data="sample", limit_train=32,
                    seed=3, out=str(out))
    settings.update(changes)
    return settings


def as_options(settings):
    flags = {"model": "--model", "epochs": "--epochs", "batch_size": "--batch-size",
             "data": "--data", "limit_train": "--limit-train", "seed": "--seed", "out": "--out"}
    return [text for key, flag in flags.items() if key in settings
            for text in (flag, str(settings[key]))]


def saved_run(out, epochs_done=0, **changes):
    """A run directory as `tinyres train` leaves it after `epochs_done` epochs (the checkpoint of
    an untrained model, and one metrics row per epoch), made without training."""
    trainer = Trainer(TrainConfig(**tiny_settings(out, **changes)), show_progress=False,
                      log=lambda *a: None)
    trainer.epochs_done = epochs_done
    trainer.out.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint()
    rows = "".join(f"{e},{2 * e},0.1,2.3,0.9,2.3,0.9,0.1,1.0,10.0,2\n"
                   for e in range(1, epochs_done + 1))
    (trainer.out / "metrics.csv").write_text(
        "epoch,iteration,lr,train_loss,train_error,test_loss,test_error,test_accuracy,"
        "epoch_seconds,images_per_second,planned_epochs\n" + rows)
    return trainer.out


def snapshot(folder):
    return {p.name: p.read_bytes() for p in Path(folder).iterdir()}


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(err, *parts):
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in err, (part, err)


# -- item 7: every option and variable checked before any work ----------------------------------
@pytest.mark.parametrize("option, value, expected", [
    ("--limit-train", "0", "expected a whole number >= 1, got '0'"),
    ("--limit-train", "-5", "expected a whole number >= 1, got '-5'"),
    ("--epochs", "0", "expected a whole number >= 1"),
    ("--epochs", "-3", "expected a whole number >= 1"),
    ("--batch-size", "0", "expected a whole number >= 1"),
    ("--lr", "nan", "expected a finite number > 0, got 'nan'"),
    ("--lr", "-0.1", "expected a finite number > 0"),
    ("--lr", "inf", "expected a finite number > 0"),
    ("--momentum", "1.5", "expected a finite number in [0, 1)"),
    ("--weight-decay", "-1", "expected a finite number >= 0"),
    ("--warmup", "-4", "expected a whole number >= 0"),
    ("--seed", "-1", "expected a whole number >= 0"),
    ("--threads", "1000", "1000 threads, but this process may use"),
])
def test_a_bad_option_is_one_line_before_any_work(tmp_path, capsys, option, value, expected):
    with pytest.raises(SystemExit) as exit_:
        main(["train", option, value, "--data", "sample", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert_one_line(err, f"argument {option}: {expected}", "tinyres train --help")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("variable, value, expected", [
    ("TINYRES_KERNELS", "bogus", "TINYRES_KERNELS='bogus': expected one of fast, reference"),
    ("TINYRES_BACKEND", "gpu", "TINYRES_BACKEND='gpu': expected one of"),
    ("TINYRES_NUM_THREADS", "0", "TINYRES_NUM_THREADS='0': expected a whole number >= 1"),
    ("TINYRES_COLLECTIVE_TIMEOUT", "soon", "TINYRES_COLLECTIVE_TIMEOUT='soon'"),
])
def test_a_bad_environment_variable_is_one_line_before_any_work(tmp_path, capsys, monkeypatch,
                                                                variable, value, expected):
    monkeypatch.setenv(variable, value)
    code, _, err = run_cli(capsys, "train", "--data", "sample", "--out", tmp_path / "run")
    assert code == 2
    assert_one_line(err, expected, "unset it")
    assert not (tmp_path / "run").exists()


def test_limit_train_beyond_the_data_is_refused(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", "--data", "sample", "--limit-train", "6000",
                           "--out", tmp_path / "run")
    assert code == 2
    assert_one_line(err, "--limit-train 6000: the training set", "has only 5482 images")


# -- item 1: a run directory that holds a run is never replaced without being asked -------------
def test_a_directory_holding_a_run_is_refused_and_left_intact(tmp_path, capsys):
    out = saved_run(tmp_path / "run", epochs_done=2)
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    code, _, err = run_cli(capsys, "train", *as_options(tiny_settings(out, epochs=1)))
    assert code == 2
    assert_one_line(err, f"--out {out} already holds checkpoint.npz (epoch 2 of 2)",
                    "metrics.csv (2 rows)", "1 other file", "--resume", "--overwrite")
    assert snapshot(out) == before


def test_overwrite_replaces_only_the_runs_own_files(tmp_path):
    from tinyres.train import run_directory
    out = saved_run(tmp_path / "run", epochs_done=2)
    (out / "notes.txt").write_text("mine")
    with run_directory.claim_run_directory(out, overwrite=True):
        pass
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


# -- item 2: --resume with other settings, and extending a finished run -------------------------
def test_resume_with_other_settings_lists_each_difference(tmp_path, capsys):
    out = saved_run(tmp_path / "run", epochs_done=1)
    before = snapshot(out)
    code, _, err = run_cli(capsys, "train", "--resume", "--out", out, "--model", "resnet56",
                           "--batch-size", "64", "--seed", "3", "--data", "sample")
    assert code == 2
    assert_one_line(err, "--model resnet20 (not resnet56)", "--batch-size 16 (not 64)",
                    "leave these options out")
    assert "--seed" not in err and "--data" not in err          # those agree with the run's
    assert snapshot(out) == before


def test_resuming_a_finished_run_says_so_and_changes_nothing(tmp_path, capsys):
    out = saved_run(tmp_path / "run", epochs_done=2)
    before = snapshot(out)
    code, stdout, err = run_cli(capsys, "train", "--resume", "--out", out)
    assert code == 0 and err == ""
    assert "has finished its 2 epochs: nothing to train" in stdout and "--epochs N" in stdout
    assert snapshot(out) == before


def test_resume_with_fewer_epochs_than_done_is_refused(tmp_path, capsys):
    out = saved_run(tmp_path / "run", epochs_done=2)
    code, _, err = run_cli(capsys, "train", "--resume", "--out", out, "--epochs", "1")
    assert code == 2
    assert_one_line(err, "--resume --epochs 1", "has already trained 2 epochs")


@pytest.mark.slow
def test_resume_with_more_epochs_extends_the_run_and_says_how(tmp_path, capsys):
    out = saved_run(tmp_path / "run", epochs_done=2)
    code, stdout, err = run_cli(capsys, "train", "--resume", "--out", out, "--epochs", "3",
                                "--quiet")
    assert code == 0, err
    assert "extending the run from 2 to 3 epochs: the learning-rate schedule is re-planned " \
           "for 6 iterations" in stdout and "done: test accuracy" in stdout
    assert (out / "metrics.csv").read_text().splitlines()[-1].endswith(",3")


# -- item 8: an unwritable directory, and the litter of killed saves ----------------------------
def test_an_unwritable_run_directory_is_refused_before_training(tmp_path, capsys, monkeypatch):
    from tinyres.train import run_directory

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(run_directory.tempfile, "NamedTemporaryFile", refuse)
    code, _, err = run_cli(capsys, "train", "--data", "sample", "--out", tmp_path / "run")
    assert code == 2
    assert_one_line(err, f"--out {tmp_path / 'run'} is not writable (Permission denied)")


def test_a_file_as_run_directory_is_refused(tmp_path, capsys):
    (tmp_path / "run").write_text("")
    code, _, err = run_cli(capsys, "train", "--data", "sample", "--out", tmp_path / "run")
    assert code == 2
    assert_one_line(err, "is a file, not a directory")


def test_stale_temporary_files_of_killed_saves_are_removed_and_only_those(tmp_path):
    from tinyres.train import run_directory
    out = saved_run(tmp_path / "run", epochs_done=1)
    stale = [".checkpoint.npz.0a1b2c3d.tmp", ".checkpoint.npz.ffffffff.tmp"]
    kept = [".checkpoint.npz.mine.tmp", "checkpoint.npz.0a1b2c3d.tmp", ".weights.npz.0a1b2c3d.tmp"]
    for name in stale + kept:
        (out / name).write_bytes(b"PK half a zip")
    with run_directory.claim_run_directory(out, resume=True):
        pass
    names = {p.name for p in out.iterdir()}
    assert not names & set(stale) and set(kept) <= names


# -- item 4: the file named is the file evaluated -----------------------------------------------
def test_eval_loads_exactly_the_file_named(tmp_path, capsys):
    out = saved_run(tmp_path / "run", epochs_done=1)
    other = tmp_path / "elsewhere" / "epoch1.npz"
    other.parent.mkdir()
    shutil.copy(out / "checkpoint.npz", other)
    state = tinyres.load(out / "checkpoint.npz")
    state["model"]["fc.weight"][:] = numpy.nan                 # the file beside it is broken
    tinyres.save(state, out / "checkpoint.npz")
    code, stdout, err = run_cli(capsys, "eval", "--checkpoint", other)
    assert code == 0, err
    assert f"resnet20 from {other} on bundled sample" in stdout

    code, _, err = run_cli(capsys, "eval", "--checkpoint", out)       # a directory: its file
    assert code == 2
    assert_one_line(err, f"{out / 'checkpoint.npz'} holds NaN or infinite values in 1 of",
                    "model/fc.weight", "cannot be evaluated or resumed")


def test_eval_of_a_directory_without_a_checkpoint_names_it(tmp_path, capsys):
    code, _, err = run_cli(capsys, "eval", "--checkpoint", tmp_path)
    assert code == 2
    assert_one_line(err, f"--checkpoint {tmp_path}: the directory holds no checkpoint.npz")
    assert "--resume" not in err and "checkpoint.npz/checkpoint.npz" not in err


def test_eval_of_a_bare_state_dict_says_what_it_needs(tmp_path, capsys):
    from tinyres.models import get_model
    tinyres.save(get_model("resnet20").state_dict(), tmp_path / "weights.npz")
    code, _, err = run_cli(capsys, "eval", "--checkpoint", tmp_path / "weights.npz")
    assert code == 2
    assert_one_line(err, "holds a bare state dict, not a run checkpoint")


# -- item 9: damaged checkpoints in one line; --debug and TINYRES_DEBUG show the traceback ------
@pytest.mark.parametrize("damage, expected", [
    (lambda data: data[:len(data) // 2], "the archive is truncated or damaged"),
    (lambda data: os.urandom(len(data)), "it is not an .npz archive"),
])
def test_a_damaged_checkpoint_is_one_line(tmp_path, capsys, monkeypatch, damage, expected):
    out = saved_run(tmp_path / "run", epochs_done=1)
    path = out / "checkpoint.npz"
    path.write_bytes(damage(path.read_bytes()))
    for command in (["eval", "--checkpoint", path], ["train", "--resume", "--out", out]):
        code, _, err = run_cli(capsys, *command)
        assert code == 2
        assert_one_line(err, f"{path} is not a tinyres checkpoint: {expected}")
        assert "allow_pickle" not in err and "BadZipFile" not in err
    code, _, err = run_cli(capsys, "--debug", "eval", "--checkpoint", path)
    assert code == 2 and "Traceback" in err and err.strip().splitlines()[-1].startswith(
        "tinyres eval: ")
    code, _, err = run_cli(capsys, "eval", "--checkpoint", path, "--debug")
    assert "Traceback" in err
    monkeypatch.setenv("TINYRES_DEBUG", "1")
    code, _, err = run_cli(capsys, "eval", "--checkpoint", path)
    assert "Traceback" in err


def test_a_checkpoint_of_another_model_is_summarised(tmp_path, capsys):
    out = saved_run(tmp_path / "run", epochs_done=1)
    state = tinyres.load(out / "checkpoint.npz")
    from tinyres.models import get_model
    state["model"] = get_model("resnet56").state_dict()           # weights and settings disagree
    tinyres.save(state, out / "checkpoint.npz")
    code, _, err = run_cli(capsys, "eval", "--checkpoint", out)
    assert code == 2
    assert_one_line(err, "its weights do not fit a resnet20: 180 unexpected",
                    "3 stages of 9 blocks (resnet56 or plain56)")


# -- item 11: a missing data folder is explained, and not created --------------------------------
@pytest.mark.parametrize("make", [None, "empty", "other"])
def test_a_missing_or_empty_data_folder_offers_the_sample(tmp_path, capsys, make):
    data = tmp_path / "cifar"
    if make:
        data.mkdir()
    if make == "other":
        (data / "readme.txt").write_text("")
    code, _, err = run_cli(capsys, "train", "--data", data, "--out", tmp_path / "run")
    assert code == 2
    assert_one_line(err, f"--data {data}", "the full CIFAR-10 data set is missing",
                    "--download", "--data sample")
    assert data.exists() == bool(make) and not (tmp_path / "run").exists()


# -- issue 29: nothing a user does deletes work, mixes runs, or ends in a traceback --------------
@pytest.mark.parametrize("bad", [["--limit-train", "999999"], ["--batch-size", "9999"]])
def test_overwrite_with_a_refused_option_leaves_the_finished_run_intact(tmp_path, capsys, bad):
    """29.2: --overwrite replaces a run only once every check has passed."""
    out = saved_run(tmp_path / "run", epochs_done=2)
    before = snapshot(out)
    code, _, err = run_cli(capsys, "train", "--data", "sample", "--out", out, "--overwrite", *bad)
    assert code == 2 and "Traceback" not in err
    assert snapshot(out) == before


def test_a_refused_new_run_leaves_no_run_directory_behind(tmp_path, capsys):
    """29.2: a refusal after the directory check (here: the data) creates no --out."""
    code, _, err = run_cli(capsys, "train", "--data", "sample", "--limit-train", "999999",
                           "--out", tmp_path / "deep" / "run")
    assert code == 2 and not (tmp_path / "deep").exists()


def test_a_second_training_into_a_locked_run_directory_is_refused(tmp_path, capsys):
    """29.3: a training holds an OS lock on --out; another is refused before writing."""
    from tinyres.train.run_directory import claim_run_directory
    out = tmp_path / "run"
    with claim_run_directory(out):                 # as a training in another process holds it
        code, _, err = run_cli(capsys, "train", *as_options(tiny_settings(out, epochs=1)))
        assert code == 2
        assert_one_line(err, f"--out {out} is in use: another training is writing it")
        assert list(out.iterdir()) == []
    with claim_run_directory(out):                 # released when the training ends
        pass


def test_the_run_directory_lock_is_released_when_its_process_is_killed(tmp_path):
    """29.3: a SIGKILLed training leaves no lock behind (the OS releases it)."""
    from tinyres.train.run_directory import RunDirectoryError, claim_run_directory
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from tinyres.train.run_directory import claim_run_directory\n"
         f"with claim_run_directory({str(out)!r}):\n"
         "    print('held', flush=True)\n    time.sleep(600)\n"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirectoryError, match="is in use"):
            with claim_run_directory(out, resume=True):
                pass
    finally:
        holder.kill()
        holder.wait()
    with claim_run_directory(out, resume=True):
        pass


def test_a_full_disk_is_one_line_that_says_what_is_kept(tmp_path, capsys, monkeypatch):
    """29.17: ENOSPC while saving: one line, exit 2, no traceback."""
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(tinyres, "save", disk_full)
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", *as_options(tiny_settings(out, epochs=1)), "--quiet")
    assert code == 2
    assert_one_line(err, f"cannot write {out / 'checkpoint.npz'}: No space left on device",
                    "--resume")


def test_a_malformed_tree_in_a_valid_npz_is_one_line(tmp_path, capsys):
    """29.18: an .npz whose __tinyres_tree__ is not the JSON tinyres.save writes."""
    path = tmp_path / "odd.npz"
    for tree in ("{not json", '{"dict": 5}', '["a", "b"]'):
        numpy.savez(path, __tinyres_tree__=numpy.array(tree))
        for command in (["eval", "--checkpoint", path],
                        ["train", "--resume", "--out", tmp_path, "--data", "sample"]):
            if command[0] == "train":
                shutil.copy(path, tmp_path / "checkpoint.npz")
            code, _, err = run_cli(capsys, *command)
            assert code == 2, (tree, command)
            assert "Traceback" not in err and err.count("\n") == 1, err


@pytest.mark.parametrize("config", ["{bad json", '{"model": "resnet9000"}', '{"batch_size": 0}',
                                    '{"epochs": -1}', '{"lr": "fast"}'])
def test_a_checkpoint_with_impossible_settings_is_one_line(tmp_path, capsys, config):
    """29.18: bad JSON, an unknown model, batch_size 0 ... in a checkpoint's settings."""
    out = saved_run(tmp_path / "run", epochs_done=1)
    state = tinyres.load(out / "checkpoint.npz")
    import json
    settings = json.loads(state["config"])
    state["config"] = config if config.startswith("{bad") else json.dumps(
        {**settings, **json.loads(config)})
    tinyres.save(state, out / "checkpoint.npz")
    before = snapshot(out)
    for command in (["eval", "--checkpoint", out], ["train", "--resume", "--out", out]):
        code, _, err = run_cli(capsys, *command)
        assert code == 2
        assert_one_line(err, str(out / "checkpoint.npz"))
    assert snapshot(out) == before


def test_a_damaged_metrics_file_on_resume_is_one_line_and_left_as_it_was(tmp_path, capsys):
    """29.20"""
    out = saved_run(tmp_path / "run", epochs_done=1)
    with open(out / "metrics.csv", "a") as f:
        f.write("2,4,0.1,zz\x00,\n")
    before = snapshot(out)
    code, _, err = run_cli(capsys, "train", "--resume", "--out", out, "--quiet")
    assert code == 2
    assert_one_line(err, f"{out / 'metrics.csv'} is damaged at line 3")
    assert snapshot(out) == before


def test_eval_never_checks_the_training_options_of_the_data_it_is_given(tmp_path, capsys,
                                                                       tiny_cifar):
    """29.21: a run with --batch-size 100 evaluated on a folder of 80 training images."""
    out = saved_run(tmp_path / "run", epochs_done=1, batch_size=100, limit_train=None)
    code, stdout, err = run_cli(capsys, "eval", "--checkpoint", out, "--data", tiny_cifar)
    assert code == 0, err
    assert "test accuracy" in stdout and "32 test images" in stdout


def test_a_directory_named_like_a_stale_save_is_someones_folder(tmp_path, capsys):
    """29.25: never removed as litter, and no traceback."""
    from tinyres.train import run_directory
    out = tmp_path / "run"
    folder = out / ".checkpoint.npz.0a1b2c3d.tmp"
    folder.mkdir(parents=True)
    (folder / "mine.txt").write_text("work")
    code, _, err = run_cli(capsys, "train", "--data", "sample", "--out", out)
    assert code == 2
    assert_one_line(err, "already holds 1 other file")
    with run_directory.claim_run_directory(out, resume=True):
        pass
    assert (folder / "mine.txt").read_text() == "work"


def test_resume_and_overwrite_together_are_refused(tmp_path, capsys):
    """29.26"""
    out = saved_run(tmp_path / "run", epochs_done=1)
    before = snapshot(out)
    code, _, err = run_cli(capsys, "train", "--resume", "--overwrite", "--out", out)
    assert code == 2
    assert_one_line(err, "--resume continues the run", "--overwrite replaces it")
    assert snapshot(out) == before


@pytest.mark.parametrize("argv, expected", [
    (["--out", "FILE"], "is a file, not a directory"),
    (["--seeds", "10000000000000000000000"], "argument --seeds: expected a whole number from 1"),
    (["--threads", "1000"], "argument --threads: 1000 threads, but this process may use"),
    (["--data", "MISSING"], "the full CIFAR-10 data set is missing"),
])
def test_a_bad_lab_option_is_one_line_and_creates_nothing(tmp_path, capsys, monkeypatch, argv,
                                                          expected):
    """29.22"""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "FILE").write_text("mine")
    argv = [str(tmp_path / a) if a in ("FILE", "MISSING") else a for a in argv]
    try:
        code = main(["lab", "degradation", "--smoke", *argv])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    assert_one_line(err, expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FILE"]
    assert (tmp_path / "FILE").read_text() == "mine"


@pytest.mark.parametrize("argv", [
    ["gradcheck", "--seed", "-1"],
    ["bench", "--batch-size", "0"], ["bench", "--batch-size", "-4"], ["bench", "--steps", "0"],
    ["bench", "--steps", "-1"], ["bench", "--threads", "0"], ["bench", "--threads", "1000"],
    ["bench", "--warmup", "-1"],
])
def test_bad_gradcheck_and_bench_numbers_are_one_line(capsys, argv):
    """29.23"""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert_one_line(capsys.readouterr().err, f"argument {argv[1]}: ")


def test_an_interrupted_lab_run_is_an_interruption_not_a_failure(tmp_path):
    """29.27: a run that exits 130 (Ctrl-C reached it before the lab) means interrupted."""
    from tinyres.labs import runs
    spec = runs.RunSpec("resnet8", 0, 1)
    for code in (130, -2):
        with pytest.raises(KeyboardInterrupt):
            runs.check_exit(spec, code, tmp_path)
    with pytest.raises(runs.LabError, match="exit code 1"):
        runs.check_exit(spec, 1, tmp_path)
    runs.check_exit(spec, 0, tmp_path)


# -- issue 27: the command is thin ----------------------------------------------------------------
def test_cli_only_wires_commands():
    import ast
    source = Path(tinyres.__file__).with_name("cli.py").read_text()
    assert len(source.splitlines()) <= 200
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef):
            assert node.end_lineno - node.lineno < 40, node.name


# -- as a user runs it: a real process, real training --------------------------------------------
def tinyres_command(*argv, env=None):
    return subprocess.run([sys.executable, "-m", "tinyres", *map(str, argv)],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


@pytest.mark.slow
def test_a_finished_run_survives_a_second_train_command(tmp_path):
    out = tmp_path / "run"
    first = tinyres_command("train", *as_options(tiny_settings(out)), "--quiet")
    assert first.returncode == 0, first.stderr
    before = snapshot(out)
    second = tinyres_command("train", *as_options(tiny_settings(out, epochs=1)), "--quiet")
    assert second.returncode == 2 and second.stdout == ""
    assert_one_line(second.stderr, "already holds checkpoint.npz (epoch 2 of 2)")
    assert snapshot(out) == before
    again = tinyres_command("train", "--resume", "--out", out, "--epochs", "3", "--quiet")
    assert again.returncode == 0, again.stderr
    assert "re-planned" in again.stdout and "done: test accuracy" in again.stdout
    rows = (out / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[-1] for row in rows] == ["planned_epochs", "2", "2", "3"]


@pytest.mark.slow
def test_a_diverging_run_never_keeps_a_non_finite_checkpoint(tmp_path):
    """The issue's command: --lr 1e6 --warmup 4."""
    out = tmp_path / "run"
    done = tinyres_command("train", *as_options(tiny_settings(out, epochs=3, limit_train=64)),
                           "--lr", "1e6", "--warmup", "4", "--quiet")
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("tinyres train: ") and "Try a lower --lr" in last
    if (out / "checkpoint.npz").exists():
        state = tinyres.load(out / "checkpoint.npz")
        epoch = int(state["progress"]["epochs_done"])
        assert f"{out / 'checkpoint.npz'} (end of epoch {epoch})" in last
        assert not [k for k, v in state["model"].items() if not numpy.isfinite(v).all()]
    else:
        assert "no checkpoint of this run was written" in last
