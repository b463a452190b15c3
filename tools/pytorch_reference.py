"""Re-measure the PyTorch reference figures that tinyres's docs quote (docs/pytorch-reference.md).

An independent implementation (PyTorch, the CIFAR ResNets of tools/export_pytorch_resnet.py:
option-A shortcuts, or the plain twin) trained with exactly the recipe of `tinyres train`:
He init, SGD lr 0.1 / momentum 0.9 / weight decay 1e-4 on every parameter, batch 128 (last
partial batch dropped), lr / 10 at 50 % and 75 % of the iterations, an optional warm-up at lr 0.01,
4-pixel padding + random crop + flip, per-channel normalisation. Data: the sample bundled with
tinyres (the project's 5,482 / 1,017-image subset) unless --data names a CIFAR-10 folder.

Writes one JSON line per run (settings, per-epoch loss / training error / test accuracy, minutes,
date, machine, torch version) to --json, and prints a table. torch is optional for tinyres: this
script alone needs it.

    python tools/pytorch_reference.py --models resnet20 --epochs 2 3 --seeds 0 1 2
    python tools/pytorch_reference.py --models plain8 plain20 resnet8 resnet20 --epochs 20 \\
        --warmup 100 --seeds 0          # the degradation lab's recipe
"""
import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit("tools/pytorch_reference.py needs PyTorch (pip install torch); tinyres itself "
             "does not")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_pytorch_resnet import CifarResNet, augment, load_data, normalise  # noqa: E402


def machine():
    """CPU model and core count, for the record."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()}"


def train(model_name, train_x, train_y, test_x, test_y, epochs, seed, warmup, log):
    """One run of the recipe; returns its per-epoch records."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    family, depth = ("plain", model_name[5:]) if model_name.startswith("plain") else (
        "resnet", model_name[6:])
    model = CifarResNet(int(depth), option="none" if family == "plain" else "A")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    steps_per_epoch = len(train_y) // 128
    total = epochs * steps_per_epoch
    milestones = [total // 2, (3 * total) // 4]

    def lr_at(iteration):
        if iteration < warmup:
            return 0.01
        return 0.1 * 0.1 ** sum(iteration >= m for m in milestones)

    x_all, y_all = torch.from_numpy(train_x), torch.from_numpy(train_y)
    records, iteration, start = [], 0, time.time()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(y_all), generator=generator)
        losses, wrong = [], 0
        for step in range(steps_per_epoch):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(iteration)
            index = order[step * 128:(step + 1) * 128]
            logits = model(augment(x_all[index], generator))
            loss = F.cross_entropy(logits, y_all[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            iteration += 1
            losses.append(loss.item())
            wrong += int((logits.argmax(1) != y_all[index]).sum())
        model.eval()
        with torch.no_grad():
            predictions = torch.cat([model(torch.from_numpy(test_x[i:i + 500])).argmax(1)
                                     for i in range(0, len(test_y), 500)]).numpy()
        records.append({"epoch": epoch + 1, "loss": float(numpy.mean(losses)),
                        "train_error": wrong / (steps_per_epoch * 128),
                        "test_accuracy": float((predictions == test_y).mean())})
        log(f"{model_name} seed {seed} epoch {epoch + 1}/{epochs}: loss {records[-1]['loss']:.3f}"
            f", train error {records[-1]['train_error']:.3f}, test accuracy "
            f"{records[-1]['test_accuracy']:.3f} ({time.time() - start:.0f} s)")
    return records, (time.time() - start) / 60


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet20"],
                        help="resnetD / plainD for D = 6n + 2 (default resnet20)")
    parser.add_argument("--epochs", nargs="+", type=int, default=[2],
                        help="one run per value: the whole schedule fitted to that many epochs")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--warmup", type=int, default=0, help="iterations at lr 0.01 first")
    parser.add_argument("--data", type=Path, help="a CIFAR-10 folder (default: the bundled sample)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=Path("runs/pytorch-reference.jsonl"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    train_set, test_set = load_data(args.data)
    train_x, train_y = normalise(train_set.images), train_set.labels.astype(numpy.int64)
    test_x, test_y = normalise(test_set.images), test_set.labels.astype(numpy.int64)
    stamp = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
             "machine": machine(), "torch": torch.__version__, "threads": args.threads,
             "data": train_set.source}
    print(f"PyTorch {torch.__version__}, {args.threads} threads, {stamp['machine']}; "
          f"{train_set.source}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for model_name in args.models:
        for epochs in args.epochs:
            for seed in args.seeds:
                records, minutes = train(model_name, train_x, train_y, test_x, test_y, epochs,
                                         seed, args.warmup, print)
                run = {"model": model_name, "epochs": epochs, "seed": seed,
                       "warmup": args.warmup, "minutes": minutes, "per_epoch": records, **stamp}
                with args.json.open("a") as f:
                    f.write(json.dumps(run) + "\n")
                rows.append(run)
    print("\n| net | epochs | seed | warm-up | train error, last epoch | test accuracy | minutes |")
    print("|---|---|---|---|---|---|---|")
    for run in rows:
        last = run["per_epoch"][-1]
        print(f"| {run['model']} | {run['epochs']} | {run['seed']} | {run['warmup']} | "
              f"{last['train_error']:.3f} | {last['test_accuracy']:.3f} | {run['minutes']:.1f} |")
    print(f"\n{stamp['date']}; every run's epochs in {args.json}")


if __name__ == "__main__":
    main()
