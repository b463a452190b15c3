"""The training tool: metrics and curves written, exact resume, NaN stop, Ctrl-C, eval, CLI.
(The command line's refusals and messages are in test_cli.py.)"""
import csv
import subprocess
import sys

import numpy
import pytest

import tinyres
from tinyres.serialization import CheckpointError
from tinyres.train import Evaluation, OutOfMemory, TrainConfig, Trainer, TrainingDiverged
from tinyres.train import checkpoint as run_checkpoint
from tinyres.train.metrics import TIMING_COLUMNS, read_metrics


def tiny_config(tmp_path, **changes):
    """ResNet-20 on the first 32 images of the bundled real sample: 2 steps of 16 per epoch (the
    `tiny_cifar` fixture's folder as data= tests on 32 images instead of 512: a faster epoch)."""
    settings = dict(model="resnet20", epochs=2, batch_size=16, data="sample", limit_train=32,
                    seed=3, out=str(tmp_path / "run"))
    settings.update(changes)
    return TrainConfig(**settings)


def quiet(config):
    return Trainer(config, show_progress=False, log=lambda *a: None)


def parameters(trainer):
    return {k: v.copy() for k, v in trainer.model.state_dict().items()}


def test_a_run_writes_metrics_curves_and_a_checkpoint(tmp_path, tiny_cifar):
    trainer = quiet(tiny_config(tmp_path, data=tiny_cifar))
    row = trainer.fit()
    out = tmp_path / "run"
    assert (out / "checkpoint.npz").is_file() and (out / "curves.png").is_file()
    rows = read_metrics(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2] and [r["iteration"] for r in rows] == [2, 4]
    assert 0 <= row["test_accuracy"] <= 1 and numpy.isfinite(row["train_loss"])
    # the paper's schedule over 4 iterations: lr / 10 after 2 and again after 3
    assert rows[-1]["lr"] == pytest.approx(0.001)
    steps = read_metrics(out / "iterations.csv")          # one row per step, with the lr it used
    assert [s["iteration"] for s in steps] == [1, 2, 3, 4]
    assert [s["lr"] for s in steps] == pytest.approx([0.1, 0.1, 0.01, 0.001])
    assert all(0 <= s["train_error"] <= 1 and numpy.isfinite(s["train_loss"]) for s in steps)


def metrics_without_timings(out):
    with open(out / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS}
                for row in csv.DictReader(f)]


def interrupt_at_step(trainer, step):
    """Make `trainer` stop as Ctrl-C would, right after step `step`."""
    real_track = trainer._track

    def track(record):
        trainer.stop.requested = record["iteration"] == step
        real_track(record)

    trainer._track = track


@pytest.mark.parametrize("stop_at", [2, 3])      # after epoch 1's last step, and in epoch 2
def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path, stop_at, tiny_cifar):
    """Weights bit for bit, and every column of metrics.csv but the timings (the interrupted
    epoch's train loss and error cover all its batches, not only those after the resume)."""
    straight = quiet(tiny_config(tmp_path / "a", epochs=2, data=tiny_cifar))
    straight.fit()

    first = quiet(tiny_config(tmp_path / "b", epochs=2, data=tiny_cifar))
    interrupt_at_step(first, stop_at)
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    resumed = Trainer.resume(tmp_path / "b" / "run", show_progress=False, log=lambda *a: None)
    assert resumed.iteration == stop_at and resumed.epochs_done == (stop_at - 1) // 2
    resumed.fit()

    want, got = parameters(straight), parameters(resumed)
    assert want.keys() == got.keys()
    for name in want:
        numpy.testing.assert_array_equal(got[name], want[name], err_msg=name)
    expected = metrics_without_timings(tmp_path / "a" / "run")
    assert len(expected) == 2 and "train_loss" in expected[0] and "test_loss" in expected[0]
    assert metrics_without_timings(tmp_path / "b" / "run") == expected


def test_ctrl_c_stops_between_steps_and_saves(tmp_path, tiny_cifar):
    trainer = quiet(tiny_config(tmp_path, data=tiny_cifar))
    real_track = trainer._track

    def interrupt_after_first_step(step):
        trainer.stop.requested = True           # what the SIGINT handler does
        real_track(step)

    trainer._track = interrupt_after_first_step
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert [s["iteration"] for s in read_metrics(tmp_path / "run" / "iterations.csv")] == [1]
    resumed = Trainer.resume(tmp_path / "run", show_progress=False, log=lambda *a: None)
    assert resumed.iteration == 1 and resumed.train_loader.batches_done == 1
    resumed.fit()                               # the steps after the checkpoint, each once
    steps = read_metrics(tmp_path / "run" / "iterations.csv")
    assert [s["iteration"] for s in steps] == [1, 2, 3, 4]


def test_a_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, tiny_cifar):
    trainer = quiet(tiny_config(tmp_path, epochs=3, data=tiny_cifar))
    trainer.out.mkdir(parents=True)
    trainer._one_epoch()
    trainer.save_checkpoint()
    saved = (tmp_path / "run" / "checkpoint.npz").read_bytes()
    trainer.model.fc.weight.data[...] = numpy.nan          # the next loss is NaN
    with pytest.raises(TrainingDiverged, match=r"at step 3 .* the last finite loss was [0-9.]+") \
            as error:
        trainer.fit()
    assert f"the last good checkpoint, {tmp_path / 'run' / 'checkpoint.npz'} (end of epoch 1), " \
           f"is kept" in str(error.value)
    assert (tmp_path / "run" / "checkpoint.npz").read_bytes() == saved


def test_a_non_finite_buffer_is_never_saved_and_the_message_says_there_is_no_checkpoint(
        tmp_path, tiny_cifar):
    """The issue's case: batch norm's running variance overflows while the loss is finite."""
    trainer = quiet(tiny_config(tmp_path, data=tiny_cifar))
    bn = trainer.model.bn1
    bn.register_forward_hook(lambda module, inputs, output: module.running_var.data.fill(
        numpy.inf))
    with pytest.raises(TrainingDiverged) as error:
        trainer.fit()
    message = str(error.value)
    assert "bn1.running_var" in message and "this state was not saved" in message
    assert "no checkpoint of this run was written" in message and "--lr" in message
    assert not (tmp_path / "run" / "checkpoint.npz").exists()
    assert not (tmp_path / "run" / "metrics.csv").exists()     # no row for the bad epoch


def test_a_non_finite_checkpoint_is_refused_on_load(tmp_path, tiny_cifar):
    trainer = quiet(tiny_config(tmp_path, epochs=1, data=tiny_cifar))
    trainer.fit()
    path = tmp_path / "run" / "checkpoint.npz"
    state = tinyres.load(path)
    state["model"]["layer1.0.bn1.running_var"][:] = numpy.inf     # as an old tinyres wrote it
    tinyres.save(state, tmp_path / "diverged.npz")
    with pytest.raises(CheckpointError, match=r"NaN or infinite values in 1 of \d+ tensors "
                                              r"\(model/layer1.0.bn1.running_var\)"):
        Evaluation.of_checkpoint(tmp_path / "diverged.npz")


def test_an_exploding_loss_is_flagged_once_with_the_step(tmp_path, capsys):
    trainer = quiet(tiny_config(tmp_path))
    for step, loss in enumerate([2.3, 2.2, 30, 40, 50, 60, 70, 80, 90], start=1):
        trainer._track({"iteration": step, "lr": 0.1, "train_loss": loss, "train_error": 0.5})
    err = capsys.readouterr().err
    assert err.count("warning: the loss is exploding") == 1
    assert "70 at step 7" in err and "(2.3)" in err and "lower --lr" in err


def test_out_of_memory_names_the_layer_the_shape_and_a_smaller_batch(tmp_path):
    trainer = quiet(tiny_config(tmp_path))
    conv = trainer.model.layer2[0].conv1

    def allocate_too_much(*args):
        return numpy.empty((16, 10**7, 10**7), dtype=numpy.float32)   # refused by malloc

    conv.forward = allocate_too_much
    with pytest.raises(OutOfMemory) as error:
        trainer.fit()
    message = str(error.value)
    assert "out of memory in layer2.0.conv1 (Conv2d)" in message
    assert "(16, 10000000, 10000000) float32" in message and "--batch-size, such as 8" in message


def test_resnet56_weights_in_a_resnet20_are_summarised_in_one_line():
    from tinyres.models import get_model
    weights = get_model("resnet56").state_dict()
    with pytest.raises(CheckpointError) as error:
        run_checkpoint.load_model_state(get_model("resnet20"), weights, "w.npz", "resnet20")
    message = str(error.value)
    assert "\n" not in message and len(message) < 600
    assert "180 unexpected (layer1.3.conv1.weight, " in message and "and 177 more" in message
    assert "3 stages of 9 blocks (resnet56 or plain56)" in message


def test_extending_a_finished_run_replans_its_schedule(tmp_path, tiny_cifar):
    trainer = quiet(tiny_config(tmp_path, epochs=1, data=tiny_cifar))
    trainer.fit()
    lines = []
    extended = Trainer.resume(tmp_path / "run", show_progress=False, log=lines.append, epochs=2)
    replanned, = [line for line in lines if line.startswith("extending")]
    assert "extending the run from 1 to 2 epochs" in replanned and "4 iterations" in replanned
    # re-planned for 4 iterations: lr 0.1 until iteration 2, 0.01 until 3, then 0.001; the
    # run is at iteration 2, where the 2-iteration plan had reached 0.001
    assert "lr 0.1 until iteration 2, 0.01 until 3" in replanned
    assert extended.optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    extended.fit()
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert [r["planned_epochs"] for r in rows] == [1, 2]
    assert [r["iteration"] for r in rows] == [2, 4]
    with pytest.raises(tinyres.errors.UserError, match="has already trained 2 epochs"):
        Trainer.resume(tmp_path / "run", show_progress=False, log=lambda *a: None, epochs=1)


@pytest.mark.slow
def test_cli_train_then_eval(tmp_path):
    out = tmp_path / "cli"
    train = subprocess.run(
        [sys.executable, "-m", "tinyres", "train", "--model", "resnet20", "--epochs", "1",
         "--batch-size", "16", "--data", "sample", "--limit-train", "32", "--out", str(out),
         "--quiet"], capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stdout + train.stderr
    assert "done: test accuracy" in train.stdout
    evaluate = subprocess.run([sys.executable, "-m", "tinyres", "eval", "--checkpoint", str(out)],
                              capture_output=True, text=True, timeout=300)
    assert evaluate.returncode == 0, evaluate.stdout + evaluate.stderr
    assert "test accuracy" in evaluate.stdout and "airplane" in evaluate.stdout


def test_cli_unknown_model_lists_the_names(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tinyres", "train", "--model", "resnet21",
                             "--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert result.returncode == 2
    assert "unknown model 'resnet21'" in result.stderr and "resnet20" in result.stderr
    assert result.stderr.count("\n") == 1 and not (tmp_path / "x").exists()


# -- issue 27: the config is a value; issue 29.7: a resume pins its data -------------------------
def test_the_config_is_a_value_the_trainer_never_changes(tmp_path):
    import dataclasses
    config = tiny_config(tmp_path, lr=None)
    trainer = quiet(config)
    assert config.lr is None and trainer.config.lr == 0.1          # the Trainer's own copy
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lr = 0.5
    trainer.save_checkpoint()
    resumed = Trainer.resume(config.out, show_progress=False, log=lambda *a: None, epochs=4)
    assert resumed.config.epochs == 4 and trainer.config.epochs == config.epochs == 2


def copy_of_tiny_cifar(tiny_cifar, where):
    import shutil
    shutil.copytree(tiny_cifar, where)
    return where


def test_a_resume_trains_on_the_data_it_started_on_wherever_it_is_run(tmp_path, tiny_cifar,
                                                                      monkeypatch):
    """29.7: --data given as a relative path, resumed from another directory."""
    copy_of_tiny_cifar(tiny_cifar, tmp_path / "work" / "cifar")
    monkeypatch.chdir(tmp_path / "work")
    trainer = quiet(tiny_config(tmp_path, data="cifar"))
    trainer.save_checkpoint()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")                # "cifar" means nothing here
    resumed = Trainer.resume(tmp_path / "run", show_progress=False, log=lambda *a: None)
    assert resumed.data.source == str(tmp_path / "work" / "cifar")
    assert resumed.data.digests == trainer.data.digests


def test_a_resume_on_other_images_is_refused_naming_both_digests(tmp_path, tiny_cifar):
    """29.7: the files at the run's source changed since it started."""
    from tinyres.data import DatasetError
    data = copy_of_tiny_cifar(tiny_cifar, tmp_path / "cifar")
    trainer = quiet(tiny_config(tmp_path, data=str(data)))
    trainer.save_checkpoint()
    test_batch = data / "cifar-10-batches-py" / "test_batch"
    batch = __import__("pickle").loads(test_batch.read_bytes(), encoding="bytes")
    batch[b"labels"] = [(label + 1) % 10 for label in batch[b"labels"]]
    test_batch.write_bytes(__import__("pickle").dumps(batch, protocol=2))
    with pytest.raises(DatasetError) as error:
        Trainer.resume(tmp_path / "run", show_progress=False, log=lambda *a: None)
    message = str(error.value)
    assert trainer.data.digests["test"][:12] in message and str(data) in message
    assert "now holds other images" in message


def test_an_old_checkpoint_without_a_data_record_resumes_and_records_it(tmp_path, tiny_cifar):
    """A checkpoint of today's main has no data record: it resumes, and the next save adds it."""
    trainer = quiet(tiny_config(tmp_path, data=tiny_cifar))
    trainer.save_checkpoint()
    path = tmp_path / "run" / "checkpoint.npz"
    state = tinyres.load(path)
    del state["progress"]["data"]
    tinyres.save(state, path)
    resumed = Trainer.resume(tmp_path / "run", show_progress=False, log=lambda *a: None)
    resumed.save_checkpoint()
    assert tinyres.load(path)["progress"]["data"]["sha256"] == trainer.data.digests


def test_the_trainer_is_built_from_small_parts():
    import inspect
    assert len(inspect.getsource(Trainer.__init__).splitlines()) <= 25
