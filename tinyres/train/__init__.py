"""Floor 7: training and evaluation — the loop, checkpoints, metrics and curves."""
from tinyres.train.loop import OutOfMemory, TrainingDiverged, evaluate, train_epoch, train_step
from tinyres.train.trainer import TrainConfig, Trainer, load_cifar

__all__ = ["OutOfMemory", "TrainConfig", "Trainer", "TrainingDiverged", "evaluate", "load_cifar",
           "train_epoch", "train_step"]
