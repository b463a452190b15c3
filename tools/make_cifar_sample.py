"""Build tinyres/data/sample/cifar10_sample.npz, the real CIFAR-10 sample bundled with tinyres.

Where the images come from: the official CIFAR-10 python archive (Krizhevsky, 2009;
https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz), through the project's real subset
(shared/data/cifar10-subset, see its README: the first images of each official batch file, in the
official order, with their official labels). Nothing is synthetic or resampled.

The sample is the whole subset: 5,482 training images (the first images of each of the five
official training files) and 1,017 test images (the first of test_batch). That is what the labs'
committed results were measured on, so a clone reproduces them offline, and what makes the
README's first run learn (84 iterations of distinct images in 2 epochs; a 1,280-image sample
gave 10 iterations per epoch).

Packing: 6,499 images are 20.0 MB as raw uint8. Neighbouring pixels are close, so each image row
is stored as its first value and then the differences to the left neighbour (mod 256: PNG's "Sub"
filter); the differences cluster near 0 and deflate better (the training split: 13.1 MB against
15.5 MB for its raw bytes; the whole file 15.5 MB). The loader undoes it with one cumulative sum.
Keys of the file (numpy.savez_compressed):
    train_rowdiff uint8 (5482, 3, 32, 32)   train_labels int64 (5482,)   train_sha256 str
    test_rowdiff  uint8 (1017, 3, 32, 32)   test_labels  int64 (1017,)   test_sha256  str
    classes       str (10,)
where ``*_sha256`` is tinyres.data.cifar.content_sha256(images, labels) of the decoded images:
the loader recomputes it and refuses a sample whose content changed. The file's own SHA-256 goes
to SHA256SUMS beside it (in `sha256sum` format), which the loader checks too. The output is the
same bytes on every run.

    python tools/make_cifar_sample.py [--subset ../shared/data/cifar10-subset] [--out PATH]
"""
import argparse
import hashlib
import sys
from pathlib import Path

import numpy

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))          # run from a checkout, installed or not
from tinyres.data.cifar import (CIFAR10, SAMPLE_PATH, content_sha256,  # noqa: E402
                                 row_differences)
from tinyres.data.integrity import MANIFEST  # noqa: E402

DEFAULT_SUBSET = REPO.parent / "shared" / "data" / "cifar10-subset"


def build_sample(subset_root, out_path):
    """Read the subset, pack both splits, write the verified .npz."""
    arrays = {}
    for split in ("train", "test"):
        data = CIFAR10(root=subset_root, train=(split == "train"), download=False)
        arrays[f"{split}_rowdiff"] = row_differences(data.images)
        arrays[f"{split}_labels"] = data.labels
        arrays[f"{split}_sha256"] = numpy.array(content_sha256(data.images, data.labels))
    arrays["classes"] = numpy.array(data.classes)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    numpy.savez_compressed(out_path, **arrays)
    # the loader checks the file against the SHA256SUMS beside it (tinyres/data/integrity.py)
    digest = hashlib.sha256(out_path.read_bytes()).hexdigest()
    (out_path.parent / MANIFEST).write_text(f"{digest}  {out_path.name}\n")
    print(f"wrote {out_path} ({out_path.stat().st_size / 1e6:.2f} MB): "
          f"{len(arrays['train_labels'])} train and {len(arrays['test_labels'])} test images "
          f"from {subset_root}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", type=Path, default=DEFAULT_SUBSET,
                        help="folder holding cifar-10-batches-py/ (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=SAMPLE_PATH,
                        help="where to write the .npz (default: %(default)s)")
    args = parser.parse_args()
    build_sample(args.subset, args.out)


if __name__ == "__main__":
    main()
