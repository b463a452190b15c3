"""Build tinyres/data/sample/cifar10_sample.npz, the small real CIFAR-10 sample in tinyres.

Where the images come from: the official CIFAR-10 python archive (Krizhevsky, 2009;
https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz), through the project's real subset
(shared/data/cifar10-subset, see its README: the first images of each official batch file, in the
official order, with their official labels). Nothing is synthetic or resampled.

The sample is
    train: the first 1,280 training images of the subset, in order (data_batch_1, then the start
           of data_batch_2): exactly 10 batches of 128;
    test:  the first 512 images of test_batch: 4 batches of 128.

It is written with numpy.savez_compressed (about 5 MB) under the keys
    train_images uint8 (1280, 3, 32, 32)   train_labels int64 (1280,)   train_sha256 str
    test_images  uint8 (512, 3, 32, 32)    test_labels  int64 (512,)    test_sha256  str
    classes      str (10,)
where ``*_sha256`` is tinyres.data.cifar.content_sha256(images, labels): the loader recomputes it
and refuses a sample whose content changed. The file's own SHA-256 goes to SHA256SUMS beside it
(in `sha256sum` format), which the loader checks too. The output is the same bytes on every run.

    python tools/make_cifar_sample.py [--subset ../shared/data/cifar10-subset] [--out PATH]
"""
import argparse
import hashlib
import sys
from pathlib import Path

import numpy

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))          # run from a checkout, installed or not
from tinyres.data.cifar import CIFAR10, SAMPLE_PATH, content_sha256  # noqa: E402
from tinyres.data.integrity import MANIFEST  # noqa: E402

TRAIN_IMAGES = 1280
TEST_IMAGES = 512
DEFAULT_SUBSET = REPO.parent / "shared" / "data" / "cifar10-subset"


def build_sample(subset_root, out_path):
    """Read the subset, keep the first images of each split, write the verified .npz."""
    arrays = {}
    for split, count in (("train", TRAIN_IMAGES), ("test", TEST_IMAGES)):
        data = CIFAR10(root=subset_root, train=(split == "train"), download=False)
        if len(data) < count:
            raise SystemExit(f"{data.source} has {len(data)} images; the sample needs {count}")
        images, labels = data.images[:count].copy(), data.labels[:count].copy()
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = labels
        arrays[f"{split}_sha256"] = numpy.array(content_sha256(images, labels))
    arrays["classes"] = numpy.array(data.classes)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    numpy.savez_compressed(out_path, **arrays)
    # the loader checks the file against the SHA256SUMS beside it (tinyres/data/integrity.py)
    digest = hashlib.sha256(out_path.read_bytes()).hexdigest()
    (out_path.parent / MANIFEST).write_text(f"{digest}  {out_path.name}\n")
    print(f"wrote {out_path} ({out_path.stat().st_size / 1e6:.2f} MB): "
          f"{TRAIN_IMAGES} train and {TEST_IMAGES} test images from {subset_root}")


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
