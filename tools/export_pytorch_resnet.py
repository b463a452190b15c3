"""Train a CIFAR ResNet-20 in PyTorch, export its weights to .npz, and record what PyTorch says.

This is the reference tinyres is checked against: an independent implementation of the same
network (tinyres/bench/torch_resnet.py, the one PyTorch CIFAR ResNet of the repository: option-A
shortcut, a classifier called ``linear``), trained briefly on the CIFAR-10 subset. It writes

    tests/data/resnet20_pytorch.npz             the state dict, float32 (BN's
                                                num_batches_tracked kept, as PyTorch saves it)
    tests/data/resnet20_pytorch_reference.npz   logits of the first 256 test images (float32),
                                                the predicted class of all 1,017 test images,
                                                the accuracy, the normalisation used, versions

tests/test_pretrained.py loads the weights into tinyres's resnet20 and must reproduce both,
without torch. The export step itself is three lines (see ``export_state_dict``):

    import numpy, torch
    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    numpy.savez("resnet20.npz", **state)

The module also defines torchvision's ImageNet layout (``ImageNetResNet``: ``downsample``,
``fc``, bottleneck stride on the 3x3 or, with stride_in_1x1, on the first 1x1), which the tests
use as an oracle for tinyres's ImageNet models where torch is installed (torchvision is not
needed). Run:

    python tools/export_pytorch_resnet.py [--data DIR] [--epochs 3]   # default: the bundled sample
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy
import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))                     # tinyres from this checkout, installed or not
from tinyres.bench.torch_resnet import CifarResNet  # noqa: E402
DEFAULT_OUT = REPO / "tests" / "data"
MEAN = (0.4914, 0.4822, 0.4465)          # the reference recipe's per-channel normalisation
STD = (0.2470, 0.2435, 0.2616)
LOGITS_KEPT = 256


# ---------------------------------------------------------------------------------------------
# The ImageNet ResNets in torchvision's layout (names only; no torchvision needed)
# ---------------------------------------------------------------------------------------------
class TorchBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1, downsample=None, stride_in_1x1=False):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class TorchBottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes, planes, stride=1, downsample=None, stride_in_1x1=False):
        super().__init__()
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(in_planes, planes, 1, stride=s1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=s3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


IMAGENET_LAYOUTS = {18: (TorchBasicBlock, (2, 2, 2, 2)), 34: (TorchBasicBlock, (3, 4, 6, 3)),
                    50: (TorchBottleneck, (3, 4, 6, 3)), 101: (TorchBottleneck, (3, 4, 23, 3)),
                    152: (TorchBottleneck, (3, 8, 36, 3))}


class ImageNetResNet(nn.Module):
    """ResNet-18/34/50/101/152 with torchvision's module names and projection shortcuts (B)."""

    def __init__(self, depth=18, num_classes=1000, stride_in_1x1=False):
        super().__init__()
        block, counts = IMAGENET_LAYOUTS[depth]
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_planes = 64
        for index, (planes, count) in enumerate(zip((64, 128, 256, 512), counts), start=1):
            blocks = []
            for b in range(count):
                stride = 2 if index > 1 and b == 0 else 1
                downsample = None
                if stride != 1 or in_planes != planes * block.expansion:
                    downsample = nn.Sequential(
                        nn.Conv2d(in_planes, planes * block.expansion, 1, stride=stride,
                                  bias=False),
                        nn.BatchNorm2d(planes * block.expansion))
                blocks.append(block(in_planes, planes, stride, downsample, stride_in_1x1))
                in_planes = planes * block.expansion
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ---------------------------------------------------------------------------------------------
# Export, and the helpers the tests use
# ---------------------------------------------------------------------------------------------
def state_dict_arrays(model):
    """{name: NumPy array} of a torch model's state dict (what tinyres's load_state_dict takes)."""
    return {key: value.detach().cpu().numpy() for key, value in model.state_dict().items()}


def export_state_dict(model, path):
    """Write a torch model's state dict as an .npz of NumPy arrays."""
    numpy.savez(path, **state_dict_arrays(model))


def randomize_batch_norm(model, generator):
    """Give every BN layer non-trivial weight, bias and running statistics, so that an
    evaluation-mode comparison exercises them (a new BN layer is the identity in eval mode)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(1 + 0.2 * torch.randn(n, generator=generator))
                m.bias.copy_(0.2 * torch.randn(n, generator=generator))
                m.running_mean.copy_(0.2 * torch.randn(n, generator=generator))
                m.running_var.copy_(0.5 + torch.rand(n, generator=generator))
    return model


def load_data(folder):
    """The training and test sets (tinyres's reader): `folder`, or the bundled sample."""
    from tinyres.data.cifar import CIFAR10
    if folder is None:
        return CIFAR10(train=True, sample=True), CIFAR10(train=False, sample=True)
    return CIFAR10(folder, train=True, download=False), CIFAR10(folder, train=False, download=False)


def normalise(images_uint8, mean=MEAN, std=STD):
    """uint8 (N, 3, 32, 32) -> float32 (x / 255 - mean) / std, per channel."""
    x = images_uint8.astype(numpy.float32) / numpy.float32(255)
    mean = numpy.asarray(mean, numpy.float32).reshape(1, 3, 1, 1)
    std = numpy.asarray(std, numpy.float32).reshape(1, 3, 1, 1)
    return (x - mean) / std


def augment(batch, generator):
    """The paper's augmentation on a float (N, 3, 32, 32) batch: 4-pixel zero padding, a
    random 32x32 crop, a random horizontal flip."""
    n = batch.shape[0]
    padded = F.pad(batch, (4, 4, 4, 4))
    rows = torch.randint(0, 9, (n,), generator=generator)
    cols = torch.randint(0, 9, (n,), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    out = torch.empty_like(batch)
    for i in range(n):
        crop = padded[i, :, rows[i]:rows[i] + 32, cols[i]:cols[i] + 32]
        out[i] = crop.flip(-1) if flips[i] else crop
    return out


def train_resnet20(train_x, train_y, epochs, seed, log=print):
    """The reference recipe, shortened: SGD 0.1 / momentum 0.9 / weight decay 1e-4, batch 128
    (last partial batch dropped), lr / 10 at 50 % and 75 % of the iterations."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = CifarResNet(20)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    steps_per_epoch = len(train_y) // 128
    total = epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=[total // 2, (3 * total) // 4], gamma=0.1)
    x_all, y_all = torch.from_numpy(train_x), torch.from_numpy(train_y)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(y_all), generator=generator)
        start, losses = time.time(), []
        for step in range(steps_per_epoch):
            index = order[step * 128:(step + 1) * 128]
            loss = F.cross_entropy(model(augment(x_all[index], generator)), y_all[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        log(f"epoch {epoch + 1}/{epochs}: mean loss {numpy.mean(losses):.3f} "
            f"({time.time() - start:.0f} s)")
    return model.eval()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path,
                        help="folder holding cifar-10-batches-py/ (default: the sample bundled "
                             "with tinyres, the project's 5,482 / 1,017-image subset)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    train_set, test_set = load_data(args.data)
    train_x, train_y = normalise(train_set.images), train_set.labels.astype(numpy.int64)
    test_x, test_y = normalise(test_set.images), test_set.labels.astype(numpy.int64)

    model = train_resnet20(train_x, train_y, args.epochs, args.seed)
    with torch.no_grad():
        logits = torch.cat([model(torch.from_numpy(test_x[i:i + 256]))
                            for i in range(0, len(test_y), 256)]).numpy()
    predictions = logits.argmax(axis=1)
    accuracy = float((predictions == test_y).mean())
    top2 = numpy.sort(logits, axis=1)[:, -2:]
    margin = float((top2[:, 1] - top2[:, 0]).min())
    print(f"test accuracy {accuracy:.4f} on {len(test_y)} images; smallest top-1/top-2 logit "
          f"margin {margin:.2e}")

    args.out.mkdir(parents=True, exist_ok=True)
    export_state_dict(model, args.out / "resnet20_pytorch.npz")
    numpy.savez(args.out / "resnet20_pytorch_reference.npz",
                logits=logits[:LOGITS_KEPT].astype(numpy.float32),
                predictions=predictions.astype(numpy.int8),
                accuracy=numpy.float64(accuracy),
                correct=numpy.int64((predictions == test_y).sum()),
                mean=numpy.asarray(MEAN, numpy.float32), std=numpy.asarray(STD, numpy.float32),
                info=json.dumps({"torch": torch.__version__, "epochs": args.epochs,
                                 "seed": args.seed, "test_images": int(len(test_y)),
                                 "min_top2_margin": margin}))
    print(f"wrote {args.out / 'resnet20_pytorch.npz'} and "
          f"{args.out / 'resnet20_pytorch_reference.npz'}")


if __name__ == "__main__":
    main()
