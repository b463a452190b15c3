"""The training tool: metrics and curves written, exact resume, NaN stop, Ctrl-C, eval, CLI."""
import subprocess
import sys

import numpy
import pytest

from tinyres.train import TrainConfig, Trainer, TrainingDiverged
from tinyres.train.metrics import read_metrics


def tiny_config(tmp_path, **changes):
    """ResNet-20 on the first 32 images of the bundled real sample: 2 steps of 16 per epoch."""
    settings = dict(model="resnet20", epochs=2, batch_size=16, data="sample", limit_train=32,
                    seed=3, out=str(tmp_path / "run"))
    settings.update(changes)
    return TrainConfig(**settings)


def parameters(trainer):
    return {k: v.copy() for k, v in trainer.model.state_dict().items()}


def test_a_run_writes_metrics_curves_and_a_checkpoint(tmp_path):
    trainer = Trainer(tiny_config(tmp_path), show_progress=False, log=lambda *a: None)
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


def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path):
    straight = Trainer(tiny_config(tmp_path / "a"), show_progress=False, log=lambda *a: None)
    straight.fit()

    first = Trainer(tiny_config(tmp_path / "b", epochs=2), show_progress=False,
                    log=lambda *a: None)
    first.out.mkdir(parents=True)
    first._one_epoch()                          # stop after epoch 1, as an interrupted run would
    first.save_checkpoint()
    resumed = Trainer.resume(tmp_path / "b" / "run", show_progress=False, log=lambda *a: None)
    assert resumed.epochs_done == 1 and resumed.iteration == 2
    resumed.fit()

    want, got = parameters(straight), parameters(resumed)
    assert want.keys() == got.keys()
    for name in want:
        numpy.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_ctrl_c_stops_between_steps_and_saves(tmp_path):
    trainer = Trainer(tiny_config(tmp_path), show_progress=False, log=lambda *a: None)
    real_track = trainer._track

    def interrupt_after_first_step(step):
        trainer._stop_requested = True          # what the SIGINT handler does
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


def test_a_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = Trainer(tiny_config(tmp_path, epochs=3), show_progress=False, log=lambda *a: None)
    trainer.out.mkdir(parents=True)
    trainer._one_epoch()
    trainer.save_checkpoint()
    saved = (tmp_path / "run" / "checkpoint.npz").read_bytes()
    trainer.model.fc.weight.data[...] = numpy.nan          # the next loss is NaN
    with pytest.raises(TrainingDiverged, match=r"at step 3 .* the last finite loss was [0-9.]+"):
        trainer.fit()
    assert (tmp_path / "run" / "checkpoint.npz").read_bytes() == saved


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
