"""VGG-style plain stacking against residual stacking: parameters, multiply-adds, time, accuracy.

The ResNet paper (He et al. 2015) builds its plain nets "following the philosophy of VGG nets"
(3x3 convs; the same number of filters within a stage; twice the filters when the map halves),
then adds shortcuts, and it makes a point of the cost: "Our 34-layer baseline has 3.6 billion
FLOPs (multiply-adds), which is only 18% of VGG-19 (19.6 billion FLOPs)". This example makes
that visible, on the CIFAR-10 subset:

    1  the data, and the two ways of stacking 3x3 convs
    2  parameters and multiply-adds per 32x32 image (tinyres.models.summary)
    3  the paper's ImageNet comparison: ResNet-34 against VGG-19 at 224x224
    4  the time of one training step
    5  accuracy after a short training run
    6  all of it side by side

    python examples/vgg_vs_resnet.py                    # a few minutes on a laptop CPU
    python examples/vgg_vs_resnet.py --step             # pause for Enter between the steps
    python examples/vgg_vs_resnet.py --smoke            # seconds: tiny batches, checks it runs
    python examples/vgg_vs_resnet.py --steps 200 --models cifar_vgg11 cifar_vgg19 resnet20
"""
import statistics
import time

import tinyres
from tinyres.data import DataLoader, cifar_test_transform, cifar_train_transform
from tinyres.models import get_model, summary
from tinyres.models.vgg import CONFIGS
from tinyres.optim import SGD
from tinyres.train import evaluate, load_cifar
from tinyres.train.loop import train_step

from lesson import Lesson, find_cifar, first, table

PAPER_MACS = {"resnet34": 3.6e9, "vgg19": 19.6e9}      # what the ResNet paper states
VGG19_MACS = 19_632_062_464                             # asserted by tests/test_models_vgg.py


def options(parser):
    parser.add_argument("--data", help="a CIFAR-10 folder, or 'sample' (default: the sample "
                                       "bundled with tinyres, the project's 5,482-image subset)")
    parser.add_argument("--models", nargs="+", default=["cifar_vgg11", "plain20", "resnet20"],
                        help="CIFAR models to compare (default: cifar_vgg11 plain20 resnet20)")
    parser.add_argument("--steps", type=int, default=80, help="training steps per model")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.02,
                        help="SGD learning rate (default 0.02: VGG-11 at the paper's 0.1 "
                             "diverges in its first steps; see docs/vgg.md)")


def human(count):
    return f"{count / 1e9:.3f} G" if count >= 1e9 else f"{count / 1e6:.2f} M"


lesson = Lesson(__file__, __doc__, options)
args = lesson.args
steps = lesson.pick(args.steps, 2)
batch_size = lesson.pick(args.batch_size, 8)

# -------------------------------------------------------------------------------------------
lesson.step("the data, and two ways of stacking 3x3 convolutions")
data, where = find_cifar(args.data)
train_set = first(load_cifar(data, train=True), lesson.pick(None, 4 * batch_size))
test_set = first(load_cifar(data, train=False), lesson.pick(None, 64))
print(f"training on {where}: {len(train_set.labels)} training images, {len(test_set.labels)} "
      f"test images")
stages, stage = [], []
for entry in CONFIGS["A"]:                  # the paper's Table 1, column A; "M" is a max pool
    if entry == "M":
        stages.append(" ".join(str(width) for width in stage))
        stage = []
    else:
        stage.append(entry)
print(f"""
VGG-11 (configuration A; 'cifar_vgg11' on 32x32 images): five stages of 3x3 convs with widths
    {' | '.join(stages)}
a 2x2 max pool after each stage (32 -> 16 -> 8 -> 4 -> 2 -> 1), then one Linear(512, 10).
Plain-20 and ResNet-20 (the ResNet paper, section 4.2): three stages of 3x3 convs with 16, 32
and 64 filters, strided convs halve the map (32 -> 16 -> 8), global average pool, Linear(64, 10).
ResNet-20 adds the input back every two convs, y = relu(F(x) + x); plain-20 does not.""")

# -------------------------------------------------------------------------------------------
lesson.step("parameters and multiply-adds per 32x32 image")
counts = {}
for name in args.models:
    tinyres.manual_seed(lesson.seed)
    counts[name] = summary(get_model(name, num_classes=10), (3, 32, 32), show=False)
table(["model", "parameters", "multiply-adds"],
      [(name, f"{c.total_params:,}", human(c.total_macs)) for name, c in counts.items()])
print("Multiply-adds count the conv and linear products of one image (the papers' 'FLOPs').")

# -------------------------------------------------------------------------------------------
lesson.step("the ResNet paper's point: ResNet-34 against VGG-19 at 224x224")
measured = {}
for name in lesson.pick(["resnet34", "vgg19"], ["resnet34"]):
    print(f"building {name} and counting on one 224x224 image ...", flush=True)
    tinyres.manual_seed(lesson.seed)
    measured[name] = summary(get_model(name), (3, 224, 224), show=False).total_macs
if "vgg19" not in measured:
    print("(smoke run: VGG-19 not built, drawing its 144 M weights takes seconds; its count is "
          "asserted by tests/test_models_vgg.py)")
    measured["vgg19"] = VGG19_MACS
table(["model", "multiply-adds", "the paper"],
      [(name, human(macs), f"{PAPER_MACS[name] / 1e9} G") for name, macs in measured.items()])
print(f"""
ResNet-34 / VGG-19 = {measured['resnet34'] / measured['vgg19']:.1%}: "only 18% of VGG-19". The net
almost twice as deep is cheaper: a stride-2 7x7 conv and a pool bring the map to 56x56 before its
first 3x3 conv (VGG runs its first convs at 224x224 and 112x112), and global average pooling
replaces VGG's 4096-wide fully connected layers (124 M of VGG-19's 144 M parameters).""")

# -------------------------------------------------------------------------------------------
lesson.step(f"the time of one training step (batch {batch_size})")
loader = DataLoader(train_set, batch_size, shuffle=True, drop_last=True, seed=lesson.seed,
                    transform=cifar_train_transform())
images, labels = next(iter(loader))
x, y = tinyres.tensor(images), tinyres.tensor(labels)
times = {}
for name in args.models:
    tinyres.manual_seed(lesson.seed)
    model = get_model(name, num_classes=10)
    optimizer = SGD(model.parameters(), lr=0.0)         # lr 0: only the time matters here
    seconds = []
    for _ in range(lesson.pick(4, 2)):
        start = time.perf_counter()
        train_step(model, x, y, optimizer)              # forward, loss, backward, update
        seconds.append(time.perf_counter() - start)
    times[name] = statistics.median(seconds[1:])        # the first step warms caches up
    print(f"{name:<14} {times[name] * 1000:8.0f} ms per step", flush=True)
print("Time follows the multiply-adds more than the parameters: the convs do the arithmetic.")

# -------------------------------------------------------------------------------------------
lesson.step(f"accuracy after {steps} steps of SGD (lr {args.lr}, momentum 0.9)")
accuracies = {}
for name in args.models:
    tinyres.manual_seed(lesson.seed)
    model = get_model(name, num_classes=10)
    optimizer = SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    loader = DataLoader(train_set, batch_size, shuffle=True, drop_last=True, seed=lesson.seed,
                        transform=cifar_train_transform())
    done, losses, start = 0, [], time.perf_counter()
    model.train()
    while done < steps:
        for images, labels in loader:
            loss, _ = train_step(model, tinyres.tensor(images), tinyres.tensor(labels),
                                 optimizer)
            losses.append(loss)
            done += 1
            if done % 20 == 0 or done == steps:
                print(f"   {name}: step {done}/{steps}, mean loss of the last 20 steps "
                      f"{statistics.mean(losses[-20:]):.3f}", flush=True)
            if done == steps:
                break
    test_loader = DataLoader(test_set, 256, transform=cifar_test_transform())
    accuracies[name] = evaluate(model, test_loader, tinyres.backend.default_device())[
        "test_accuracy"]
    print(f"{name:<14} test accuracy {accuracies[name]:.3f} ({time.perf_counter() - start:.0f} s)",
          flush=True)

# -------------------------------------------------------------------------------------------
lesson.step("side by side")
table(["model", "parameters", "multiply-adds", "ms / step", "test accuracy"],
      [(name, f"{counts[name].total_params:,}", human(counts[name].total_macs),
        f"{times[name] * 1000:.0f}", f"{accuracies[name]:.3f}") for name in args.models])
print("""
The VGG-style net spends its parameters on width (512 filters) and its arithmetic on 32x32 and
16x16 maps; plain-20 and ResNet-20 have 34 times fewer parameters. Plain and residual nets of
equal depth cost the same (identity shortcuts are free); the shortcut matters when the plain net
gets deep (examples/05_plain_vs_residual.py, docs/vgg.md).""")
if lesson.smoke:
    print("(smoke run: a couple of steps on a few images; the accuracies mean nothing)")
