"""tinyres.kernels.memory: glibc keeps freed memory for the next training step. It changes the
whole process's allocator, so it happens where training starts, never on import."""
import subprocess
import sys

import pytest

from tinyres.kernels import memory
from tinyres.train import TrainConfig, Trainer
from tinyres.train import trainer as trainer_module

# mallopt, as the probe process sees it: every call through ctypes.CDLL is recorded
PROBE = """
import ctypes
calls = []
class Recording(ctypes.CDLL):
    def __getattr__(self, name):
        if name == "mallopt":
            calls.append(name)
        return super().__getattr__(name)
ctypes.CDLL = Recording
import numpy, tinyres
import tinyres.kernels.cpu
tinyres.functional.relu(tinyres.tensor(numpy.ones(4, numpy.float32)))
print(len(calls))
"""


def test_importing_tinyres_and_its_kernels_leaves_the_allocator_alone():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "0"


def test_the_setting_can_be_declined(monkeypatch):
    monkeypatch.setenv("TINYRES_KEEP_FREED_MEMORY", "0")
    assert memory.keep_freed_memory() is False


@pytest.mark.slow
def test_a_training_run_keeps_freed_memory_from_its_start(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(trainer_module, "keep_freed_memory", lambda: calls.append("fit") or True)
    config = TrainConfig(model="resnet20", epochs=1, batch_size=16, data="sample", limit_train=16,
                         out=str(tmp_path / "run"))
    Trainer(config, show_progress=False, log=lambda *a: None).fit()
    assert calls == ["fit"]
