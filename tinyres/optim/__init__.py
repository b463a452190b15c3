"""Optimizers and learning-rate schedules.

    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    scheduler = paper_schedule(optimizer, total_iterations=64000)   # lr / 10 at 32k and 48k
    for images, labels in loader:
        optimizer.zero_grad()
        loss = ...; loss.backward()
        optimizer.step()
        scheduler.step()            # once per iteration
"""
from tinyres.optim.adam import Adam, AdamW
from tinyres.optim.lr_scheduler import (CosineAnnealingLR, LRScheduler, MultiStepLR, Warmup,
                                        paper_schedule)
from tinyres.optim.optimizer import Optimizer
from tinyres.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW",
           "LRScheduler", "MultiStepLR", "CosineAnnealingLR", "Warmup", "paper_schedule"]
