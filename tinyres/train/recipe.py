"""Floor 7: the paper's recipe as objects — the model, SGD with momentum and weight decay, and the
learning-rate schedule, built from a TrainConfig (and, under MPI, the data-parallel wrapper).

    recipe = Recipe.build(config, num_classes=10, device="cpu", comm=comm,
                          iterations_per_epoch=len(train_loader))
    recipe.model, recipe.optimizer, recipe.scheduler, recipe.parallel, recipe.total_iterations
"""
import dataclasses

import tinyres
from tinyres.distributed import DataParallel, convert_sync_batchnorm
from tinyres.models import get_model
from tinyres.optim import SGD, paper_schedule


@dataclasses.dataclass
class Recipe:
    model: object
    optimizer: object
    scheduler: object
    parallel: object                 # DataParallel under MPI, else None
    total_iterations: int

    @classmethod
    def build(cls, config, num_classes, device, comm, iterations_per_epoch):
        """The model (He init, seeded by config.seed), its optimizer and schedule."""
        tinyres.manual_seed(config.seed)
        model = get_model(config.model, num_classes=num_classes).to(device)
        if config.sync_bn and comm.uses_mpi:       # (fit() refuses sync_bn without MPI)
            convert_sync_batchnorm(model, comm)
        # Data-parallel: rank 0's parameters on every rank, gradients averaged at every step.
        parallel = DataParallel(model, comm) if comm.size > 1 else None
        optimizer = SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                        weight_decay=config.weight_decay)
        total_iterations = config.epochs * iterations_per_epoch
        scheduler = paper_schedule(optimizer, total_iterations,
                                   warmup_iterations=config.warmup_iterations)
        return cls(model, optimizer, scheduler, parallel, total_iterations)

    def state_dict(self):
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
