"""Floor 7: training and evaluation — the loop, checkpoints, metrics and curves."""
from tinyres.train.data import describe_data, load_cifar
from tinyres.train.evaluation import Evaluation
from tinyres.train.loop import OutOfMemory, TrainingDiverged, evaluate, train_epoch, train_step
from tinyres.train.trainer import TrainConfig, Trainer

__all__ = ["Evaluation", "OutOfMemory", "TrainConfig", "Trainer", "TrainingDiverged",
           "describe_data", "evaluate", "load_cifar", "train_epoch", "train_step"]
