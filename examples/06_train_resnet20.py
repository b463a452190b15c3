"""Example 6: train ResNet-20 on CIFAR-10 with the paper's recipe, and plot the learning curves.

Section 4.2 of He et al. (2015), scaled to the epochs asked: SGD with momentum 0.9 and weight
decay 1e-4, batch 128, learning rate 0.1 divided by 10 at 50 % and 75 % of the iterations,
4-pixel padding + random 32x32 crop + random horizontal flip, He initialisation. Everything is
the public tinyres.train.Trainer (the same as `tinyres train`); this script shows what it does.

Data: --data DIR; else the full CIFAR-10 when it is in the cache; else the real sample bundled
with tinyres (the project's subset: 5,482 training and 1,017 test images; offline).

    python examples/06_train_resnet20.py                 # 30 epochs, as the reference table;
                                                         # long (it prints each epoch's time)
    python examples/06_train_resnet20.py --epochs 5      # a quicker look
    python examples/06_train_resnet20.py --resume        # continue after Ctrl-C
"""
from tinyres.data import DataLoader
from tinyres.models import get_model, summary
from tinyres.train import TrainConfig, Trainer, load_cifar
from tinyres.train.metrics import read_metrics

from lesson import Lesson, find_cifar, first, table

# PyTorch, same recipe, on the bundled sample (the subset): docs/pytorch-reference.md
REFERENCE = {2: (0.301, 0.324, 0.325), 5: (0.373, 0.413, 0.435), 30: (0.595, 0.679, 0.674)}


def options(parser):
    parser.add_argument("--data", help="a CIFAR-10 folder, or 'sample'")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in the output folder from its checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


lesson = Lesson(__file__, __doc__, options)
args = lesson.args
run_dir = lesson.path("run")

# -------------------------------------------------------------------------------------------
lesson.step("the data and the recipe")
if args.resume:
    trainer = Trainer.resume(run_dir, show_progress=not args.quiet)
    config = trainer.config
    print(f"resuming {run_dir} after epoch {trainer.epochs_done} (its settings come from the "
          f"checkpoint)")
else:
    data, where = find_cifar(args.data, prefer_full=True)
    print(f"data: {where}")
    config = TrainConfig(model=args.model, epochs=lesson.pick(args.epochs, 1),
                         batch_size=lesson.pick(128, 8), data=data,
                         limit_train=lesson.pick(None, 16), seed=lesson.seed, out=str(run_dir))
    trainer = Trainer(config, show_progress=not (args.quiet or lesson.smoke))
    config = trainer.config                           # the Trainer's copy: the model's lr filled in
    if lesson.smoke:                                  # seconds, not minutes: test on 32 images
        trainer.data.test_set = first(load_cifar(data, train=False), 32)
        trainer.test_loader = DataLoader(trainer.test_set, 500,
                                         transform=trainer.test_loader.transform)
print(config)
steps = len(trainer.train_loader)
print(f"{len(trainer.train_set.labels)} training images: {steps} steps of {config.batch_size} "
      f"per epoch (the last partial batch dropped), {trainer.total_iterations} steps in all;")
print(f"lr {config.lr}, then {config.lr / 10:g} after step {trainer.total_iterations // 2} and "
      f"{config.lr / 100:g} after step {trainer.total_iterations * 3 // 4} (the paper: 32k and "
      f"48k of 64k)")
info = summary(get_model(config.model), (3, 32, 32), show=False)
print(f"{config.model}: {info.total_params:,} parameters, {info.total_macs / 1e6:.1f}M "
      f"multiply-adds per image")

# -------------------------------------------------------------------------------------------
lesson.step("training (Ctrl-C saves a checkpoint; --resume continues)")
try:
    trainer.fit()
except KeyboardInterrupt:
    raise SystemExit(130)

# -------------------------------------------------------------------------------------------
lesson.step("the learning curves")
rows = read_metrics(run_dir / "metrics.csv")
table(["epoch", "lr", "train loss", "train error", "test error", "test accuracy"],
      [(int(r["epoch"]), r["lr"], r["train_loss"], r["train_error"], r["test_error"],
        r["test_accuracy"]) for r in rows],
      {1: "{:.4g}", 2: "{:.3f}", 3: "{:.3f}", 4: "{:.3f}", 5: "{:.3f}"})
print(f"   metrics: {run_dir / 'metrics.csv'}")
print(f"   figure:  {run_dir / 'curves.png'}  (written by the Trainer after every epoch)")
fig, (left, right) = lesson.figure(1, 2, figsize=(10, 3.6))
epochs = [r["epoch"] for r in rows]
left.plot(epochs, [100 * r["train_error"] for r in rows], "--", label="train error (augmented)")
left.plot(epochs, [100 * r["test_error"] for r in rows], "-", linewidth=2, label="test error")
left.set_xlabel("epoch")
left.set_ylabel("error (%)")
left.legend()
right.plot(epochs, [r["train_loss"] for r in rows], "--", label="train loss")
right.plot(epochs, [r["test_loss"] for r in rows], "-", linewidth=2, label="test loss")
right.set_xlabel("epoch")
right.set_ylabel("cross-entropy")
right.legend()
fig.suptitle(f"{config.model} on CIFAR-10, the paper's recipe")
lesson.save(fig, "learning_curves.png")

# -------------------------------------------------------------------------------------------
lesson.step("how does this compare?")
last = rows[-1]
print(f"after {int(last['epoch'])} epochs: test accuracy {last['test_accuracy']:.3f}")
on_the_subset = config.data == "sample" or "cifar10-subset" in str(config.data or "")
if config.model == "resnet20" and on_the_subset:
    if int(last["epoch"]) in REFERENCE:
        seeds = REFERENCE[int(last["epoch"])]
        print(f"PyTorch with the same recipe on this subset, {int(last['epoch'])} epochs, seeds "
              f"0/1/2: {' / '.join(f'{a:.3f}' for a in seeds)}")
    print("Reference (docs/pytorch-reference.md), ResNet-20 test accuracy:")
    for epochs_run, seeds in REFERENCE.items():
        print(f"   {epochs_run:2d} epochs: {' / '.join(f'{a:.3f}' for a in seeds)}")
    print("The spread between seeds is large on 1,017 test images: compare over seeds.")
else:
    print("The paper's ResNet-20 reaches 8.75 % test error on the full CIFAR-10 after 64k")
    print("iterations (~164 epochs); the reference figures for the bundled sample are in")
    print("docs/pytorch-reference.md.")
