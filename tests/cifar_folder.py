"""A small CIFAR-10 folder in the official format, for tests that run `tinyres train` (imported by
conftest.py's `tiny_cifar` fixture, and by test_distributed.py, whose ranks run without pytest)."""
import pickle
from pathlib import Path

from tinyres.data import bundled_sample


def write_tiny_cifar(root, train_per_batch=16, test=32):
    """A CIFAR-10 folder in the official format made of bundled-sample images (80 training
    images in 5 batch files, 32 test images), so a whole `tinyres train` run takes a second."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    train, test_set = bundled_sample(True), bundled_sample(False)

    def dump(name, images, labels):
        batch = {b"data": images.reshape(len(images), -1), b"labels": [int(v) for v in labels]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)

    for i in range(5):
        part = slice(i * train_per_batch, (i + 1) * train_per_batch)
        dump(f"data_batch_{i + 1}", train.images[part], train.labels[part])
    dump("test_batch", test_set.images[:test], test_set.labels[:test])
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in train.classes]}, f, protocol=2)
    return str(root)
