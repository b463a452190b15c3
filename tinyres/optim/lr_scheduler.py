"""Learning-rate schedules, stepped once per *iteration* (mini-batch), not per epoch.

The paper states its CIFAR schedule in iterations: "a learning rate of 0.1, divided by 10 at 32k
and 48k iterations, and terminate training at 64k iterations". tinyres's training loop therefore
calls ``scheduler.step()`` after every ``optimizer.step()``, and milestones are iteration numbers.

PyTorch counts the same steps and names the count ``last_epoch`` (its examples step once per
epoch); the arithmetic is the same, so ``MultiStepLR(opt, milestones=[2], gamma=0.1)`` stepped
once per epoch as in PyTorch gives PyTorch's lrs.

A scheduler is a function lr(t) of the iteration count t, applied to every parameter group
(each group's ``base_lr`` is its lr when the scheduler was made). After construction t = 0, and
each ``step()`` does t <- t + 1 and writes lr(t) into the optimizer: iteration t (counted from 0)
trains with lr(t). The values are PyTorch's (torch.optim.lr_scheduler, in its closed form):

    MultiStepLR        lr(t) = base_lr * gamma ** (number of milestones <= t)
    CosineAnnealingLR  lr(t) = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2
    Warmup             lr(t) = warmup_lr for t < warmup_iterations ('constant', the paper's
                       ResNet-110 recipe), or a straight line from warmup_lr up to the main
                       schedule's lr ('linear'); the main schedule afterwards.

``paper_schedule(optimizer, total_iterations)`` is the paper's: divide by 10 at 50 % and 75 %.
"""
import bisect
import math

from tinyres.errors import not_supported


class LRScheduler:
    """Base class: subclasses define ``lr_at(t, base_lr)``."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.last_iteration = 0
        self._apply()

    last_epoch = property(lambda self: self.last_iteration)     # PyTorch's name for the count

    def lr_at(self, iteration, base_lr):
        """The learning rate at ``iteration`` of a group whose initial lr was ``base_lr``."""
        raise NotImplementedError(f"{type(self).__name__} must implement lr_at()")

    def _apply(self):
        for group, lr in zip(self.optimizer.param_groups, self.get_last_lr()):
            group["lr"] = lr

    def step(self):
        """One iteration done: move to the next and set the optimizer's learning rates."""
        self.last_iteration += 1
        self._apply()

    def get_last_lr(self):
        """The learning rate of each parameter group at the current iteration."""
        return [self.lr_at(self.last_iteration, base_lr) for base_lr in self.base_lrs]

    def state_dict(self):
        """The iteration count and base learning rates (plain Python numbers)."""
        return {"last_iteration": self.last_iteration, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state):
        """Continue from ``state_dict()``, and set the optimizer's lr to match."""
        if len(state["base_lrs"]) != len(self.base_lrs):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state has "
                             f"{len(state['base_lrs'])} parameter group(s), the optimizer has "
                             f"{len(self.base_lrs)}")
        self.last_iteration = int(state["last_iteration"])
        self.base_lrs = [float(lr) for lr in state["base_lrs"]]
        self._apply()


class MultiStepLR(LRScheduler):
    """Multiply the lr by ``gamma`` at each milestone iteration: lr(t) = base_lr * gamma^k(t),
    k(t) = how many milestones are <= t."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        if last_epoch != -1:
            raise not_supported("MultiStepLR", f"last_epoch={last_epoch}", "resume a schedule "
                                "with load_state_dict(scheduler.state_dict())")
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = gamma
        super().__init__(optimizer)

    def lr_at(self, iteration, base_lr):
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, iteration)


class CosineAnnealingLR(LRScheduler):
    """Half a cosine from base_lr (t = 0) down to eta_min (t = T_max)."""

    def __init__(self, optimizer, T_max, eta_min=0.0):
        if T_max <= 0:
            raise ValueError(f"CosineAnnealingLR needs T_max > 0 iterations, got {T_max}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer)

    def lr_at(self, iteration, base_lr):
        cosine = (1 + math.cos(math.pi * iteration / self.T_max)) / 2    # 1 → 0
        return self.eta_min + (base_lr - self.eta_min) * cosine


class Warmup(LRScheduler):
    """Hold (or ramp) a small lr for the first iterations, then follow ``schedule``.

    The paper, for ResNet-110: "we use 0.01 to warm up the training until the training error is
    below 80% (about 400 iterations), and then go back to 0.1 and continue training":
    ``Warmup(MultiStepLR(opt, [32000, 48000]), warmup_iterations=400, warmup_lr=0.01)``.
    The main schedule keeps counting from iteration 0, so its milestones stay where they were.
    """

    def __init__(self, schedule, warmup_iterations, warmup_lr=0.01, mode="constant"):
        if mode not in ("constant", "linear"):
            raise ValueError(f"Warmup mode must be 'constant' or 'linear', got {mode!r}")
        if warmup_iterations < 0:
            raise ValueError(f"Warmup needs warmup_iterations >= 0, got {warmup_iterations}")
        self.schedule = schedule
        self.warmup_iterations, self.warmup_lr, self.mode = warmup_iterations, warmup_lr, mode
        self.optimizer = schedule.optimizer
        self.base_lrs = schedule.base_lrs          # the main schedule's, shared
        self.last_iteration = schedule.last_iteration
        self._apply()

    def lr_at(self, iteration, base_lr):
        main_lr = self.schedule.lr_at(iteration, base_lr)
        if iteration >= self.warmup_iterations:
            return main_lr
        if self.mode == "constant":
            return self.warmup_lr
        return self.warmup_lr + (main_lr - self.warmup_lr) * iteration / self.warmup_iterations

    def step(self):
        super().step()
        self.schedule.last_iteration = self.last_iteration

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.schedule.last_iteration, self.schedule.base_lrs = self.last_iteration, self.base_lrs


def paper_schedule(optimizer, total_iterations, warmup_iterations=0, warmup_lr=0.01):
    """The paper's CIFAR schedule: lr / 10 at 50 % and at 75 % of ``total_iterations``
    (32k and 48k of 64k; milestones rounded down), optionally after a constant warm-up."""
    milestones = [total_iterations // 2, total_iterations * 3 // 4]
    schedule = MultiStepLR(optimizer, milestones, gamma=0.1)
    if warmup_iterations:
        return Warmup(schedule, warmup_iterations, warmup_lr)
    return schedule
