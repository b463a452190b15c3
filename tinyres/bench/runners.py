"""The racers of `tinyres bench`: each builds its model and a batch of random images, then runs
one training step or one eval forward when asked. tinyres on NumPy (the readable reference or the
fast kernels) or CuPy, and PyTorch (torch_resnet.py) on the CPU or a GPU."""
import sys

import numpy

import tinyres
import tinyres.functional as F
from tinyres import backend, dispatch
from tinyres.autograd import no_grad
from tinyres.kernels.memory import keep_freed_memory
from tinyres.models import get_model
from tinyres.optim import SGD


# ----------------------------------------------------------------------------------------------
# Threads: BLAS, Numba and PyTorch each have their own pool
# ----------------------------------------------------------------------------------------------
def set_threads(count):
    """Ask every thread pool in this process for `count` threads; returns what was set."""
    done = {"tinyres (BLAS, Numba)": tinyres.set_num_threads(count)}
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(count)
        done["torch"] = sys.modules["torch"].get_num_threads()
    return done


# ----------------------------------------------------------------------------------------------
# The racers: each builds its model and batch, then runs one training step or one eval forward
# ----------------------------------------------------------------------------------------------
class TinyresRunner:
    """tinyres on NumPy (kernels 'reference' or 'fast') or CuPy."""

    def __init__(self, path, model_name, batch_size, seed=0):
        self.name = path
        self.kernels = "reference" if path == "reference" else "fast"
        self.device = "cuda" if path == "cupy" else "cpu"
        keep_freed_memory()        # as a training run does (tinyres.train.Trainer.fit)
        tinyres.manual_seed(seed)
        self.model = get_model(model_name).to(self.device)
        self.optimizer = SGD(self.model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        rng = numpy.random.default_rng(seed)
        images = rng.standard_normal((batch_size, 3, 32, 32)).astype(numpy.float32)
        labels = rng.integers(0, 10, batch_size)
        self.images = tinyres.Tensor(backend.to_device(images, self.device))
        self.labels = backend.to_device(labels, self.device)

    def train_step(self):
        dispatch.set_kernels(self.kernels)
        loss = F.cross_entropy(self.model(self.images), self.labels)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.sync()

    def eval_forward(self):
        dispatch.set_kernels(self.kernels)
        self.model.eval()
        with no_grad():
            self.model(self.images)
        self.model.train()
        self.sync()

    def sync(self):
        if self.device == "cuda":
            import cupy
            cupy.cuda.get_current_stream().synchronize()


class TorchRunner:
    """PyTorch on the CPU or a GPU, with the same batch and optimizer settings."""

    def __init__(self, path, model_name, batch_size, seed=0):
        import torch
        self.torch, self.name = torch, path
        self.device = "cuda" if path == "torch-cuda" else "cpu"
        from tinyres.bench.torch_resnet import CifarResNet
        depth = int(model_name.replace("resnet", ""))
        torch.manual_seed(seed)
        self.model = CifarResNet(depth).to(self.device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9,
                                         weight_decay=1e-4)
        rng = numpy.random.default_rng(seed)
        self.images = torch.from_numpy(
            rng.standard_normal((batch_size, 3, 32, 32)).astype(numpy.float32)).to(self.device)
        self.labels = torch.from_numpy(rng.integers(0, 10, batch_size)).to(self.device)

    def train_step(self):
        loss = self.torch.nn.functional.cross_entropy(self.model(self.images), self.labels)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.sync()

    def eval_forward(self):
        self.model.eval()
        with self.torch.no_grad():
            self.model(self.images)
        self.model.train()
        self.sync()

    def sync(self):
        if self.device == "cuda":
            self.torch.cuda.synchronize()


def available_paths():
    """The paths this machine can run, each with a note where it cannot."""
    found, notes = [], {}
    found.append("reference")
    if dispatch.fast_kernels_available():
        found.append("fast")
    else:
        notes["fast"] = "Numba is not installed (pip install 'tinyres[fast]')"
    try:
        backend.require_cupy()
        found.append("cupy")
    except backend.BackendError as err:
        notes["cupy"] = f"no GPU ({str(err).split(';')[0].split('.')[0]})"
    try:
        import torch
        found.append("torch")
        if torch.cuda.is_available():
            found.append("torch-cuda")
        else:
            notes["torch-cuda"] = "torch sees no GPU"
    except ImportError:
        notes["torch"] = "torch is not installed (the ratio column needs it)"
    return found, notes


def make_runner(path, model_name, batch_size):
    if path.startswith("torch"):
        return TorchRunner(path, model_name, batch_size)
    return TinyresRunner(path, model_name, batch_size)
