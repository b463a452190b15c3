"""Floor 7: a checkpoint's model on a test set — what `tinyres eval` runs.

Only the test set is loaded (and the training set, where the run normalised with the paper's
per-pixel mean of it); nothing about training (batch size, --limit-train) is checked. Without
`data`, the test set is the run's own, from the source its checkpoint recorded, and its images
must still be those the run was tested on (data.py); a `data` given is used as it is.
"""
import dataclasses

from tinyres import backend
from tinyres.data import DataLoader
from tinyres.data.cifar import content_sha256
from tinyres.models import get_model
from tinyres.train.checkpoint import load_model_state, read_run_checkpoint
from tinyres.train.data import (check_digests, data_source, first_images, load_split,
                                pinned_source, transforms)
from tinyres.train.loop import evaluate
from tinyres.train.trainer import read_run_config


@dataclasses.dataclass
class Evaluation:
    config: object          # the run's TrainConfig
    model: object           # its weights loaded
    device: str
    test_set: object
    test_transform: object

    @classmethod
    def of_checkpoint(cls, checkpoint, data=None, verify=False):
        """The model of the checkpoint file `checkpoint` and its test set (from `data` if given,
        else the run's own; `verify`: every data file hashed again)."""
        state = read_run_checkpoint(checkpoint)
        config, progress = read_run_config(checkpoint, state)
        pinned = progress.get("data") if data is None else None
        source = pinned_source(pinned) if pinned else data_source(
            data if data is not None else config.data)
        test_set = load_split(source, train=False, verify=verify)
        if pinned:
            check_digests(pinned, {"test": content_sha256(test_set.images, test_set.labels)})
        normalise_with = None
        if config.normalize == "pixel":            # the mean of the images the run trained on
            normalise_with = load_split(source, train=True, verify=verify)
            if config.limit_train is not None and config.limit_train < len(normalise_with):
                normalise_with = first_images(normalise_with, config.limit_train)
        device = backend.default_device()
        model = get_model(config.model, num_classes=len(test_set.classes)).to(device)
        load_model_state(model, state["model"], checkpoint, config.model)
        return cls(config, model, device, test_set, transforms(config, normalise_with)[1])

    def run(self):
        """{"test_accuracy", "test_loss", "confusion"} of the model on the test set."""
        loader = DataLoader(self.test_set, 500, transform=self.test_transform)
        return evaluate(self.model, loader, self.device, num_classes=len(self.test_set.classes))
