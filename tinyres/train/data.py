"""Floor 7: a run's data — which CIFAR-10 it trains and tests on, loaded once, pinned by a digest.

Where the images come from is settled once per run, and both splits come from that one place:

    --data sample        the bundled sample
    --data DIR           the CIFAR-10 in DIR (downloaded there first with --download)
    no --data            the cache ($TINYRES_DATA or ~/.cache/tinyres) when it holds CIFAR-10 (any
                         of it: a damaged or incomplete cache is reported, never passed over),
                         else the bundled sample, which the log says in one line

The resolved source (the word "sample" or an absolute folder) and a SHA-256 of the images and
labels of each split go into the checkpoint (its progress). A resume trains on that source again,
wherever it is started from and whatever the cache now holds, and refuses, naming both digests,
when the images there are no longer those the run trained on. A checkpoint of an older tinyres,
which has no such record, resolves its `data` setting as before, and records it from then on.
"""
import dataclasses
import functools
from pathlib import Path

from tinyres.data import (CIFAR10, Compose, DataLoader, DatasetError, Normalize,
                          PerPixelMeanSubtraction, RandomCrop, RandomHorizontalFlip,
                          bundled_sample, default_data_root)
from tinyres.data.cifar import FOLDER_NAME, META_FILE, content_sha256
from tinyres.distributed import ShardedLoader, check_ranks_agree, shard_dataset
from tinyres.errors import UserError

SAMPLE = "sample"


def data_source(data):
    """The source a `data` setting names: "sample", or the absolute folder that holds (or is to
    hold) CIFAR-10."""
    if data == SAMPLE:
        return SAMPLE
    if data is not None:
        return str(Path(data).expanduser().resolve())
    cache = default_data_root()
    if (cache / FOLDER_NAME).exists() or (cache / META_FILE).exists():
        return str(cache.resolve())
    return SAMPLE


def load_split(source, train, download=False, verify=False):
    """The training (or test) set of a resolved source (`verify`: every file hashed again)."""
    if source == SAMPLE:
        return bundled_sample(train)            # (whose content is checked at every load)
    return CIFAR10(source, train=train, download=download, verify=verify)


def load_cifar(data, train, download=False):
    """The CIFAR-10 split a `data` setting names ('sample', a folder, or None: the cache if it
    holds CIFAR-10, else the bundled sample), as `tinyres train` resolves it."""
    return load_split(data_source(data), train, download)


@dataclasses.dataclass
class RunData:
    """The two splits of a run, where they came from, and their digests.

    train_set   the images trained on (the first `limit_train` when the config limits them)
    test_set    the test images
    source      "sample", or the absolute CIFAR-10 folder
    digests     {"train": SHA-256, "test": SHA-256} of the whole splits as loaded
    notes       what the log should say about them (a fallback, unverified files)
    """
    train_set: object
    test_set: object
    source: str
    digests: dict
    notes: list

    @classmethod
    def load(cls, config, pinned=None, verify=False):
        """The data of `config`: from `pinned` ({"source", "sha256"}, a checkpoint's record)
        when given, else as `config.data` resolves now (`verify`: every file hashed again).
        Checks --limit-train and --batch-size against the training set."""
        source = pinned_source(pinned) if pinned else data_source(config.data)
        train_set, test_set = (load_split(source, split, config.download, verify)
                               for split in (True, False))
        digests = {"train": content_sha256(train_set.images, train_set.labels),
                   "test": content_sha256(test_set.images, test_set.labels)}
        if pinned:
            check_digests(pinned, digests)
        data = cls(_limited(train_set, config), test_set, source, digests,
                   _notes(config, source, train_set, test_set))
        data.check_batch_size(config.batch_size)
        return data

    @property
    def record(self):
        """What a checkpoint keeps of the data: {"source", "sha256"}."""
        return {"source": self.source, "sha256": dict(self.digests)}

    def check_batch_size(self, batch_size):
        count = len(self.train_set.labels)
        if count < batch_size:
            raise UserError(f"--batch-size {batch_size}: the training set has {count} images, "
                            f"fewer than one batch; use a --batch-size of at most {count}")

    def describe(self):
        """What the run trains and tests on, short enough for a figure's title."""
        return data_description(self.train_set, self.test_set)


def pinned_source(pinned):
    """The source a checkpoint's data record names, if it is still there."""
    source = pinned["source"]
    if source != SAMPLE and not Path(source).is_dir():
        raise DatasetError(f"the run trained on CIFAR-10 in {source}, which is no longer there; "
                           f"put the same files back there to continue or evaluate it")
    return source


def check_digests(pinned, digests):
    """DatasetError, naming both, where the images now differ from those a run recorded (only
    the splits in `digests` are compared)."""
    recorded = {split: pinned["sha256"][split] for split in digests}
    if recorded != digests:
        source = pinned["source"]
        raise DatasetError(
            f"the run used {_named(source)} with images of SHA-256 {_short(recorded)}, but "
            f"{source} now holds other images ({_short(digests)}): it would go on with other "
            f"data. Restore the files the run used, or start a new run in another --out")


def _limited(train_set, config):
    if config.limit_train is None:
        return train_set
    if config.limit_train > len(train_set.labels):
        raise UserError(f"--limit-train {config.limit_train}: the training set "
                        f"({train_set.source}) has only {len(train_set.labels)} images")
    return first_images(train_set, config.limit_train)


def _notes(config, source, train_set, test_set):
    notes = []
    if config.data is None and source == SAMPLE:
        notes.append(f"note: no CIFAR-10 in the cache ({default_data_root()}): training and "
                     f"testing on the bundled sample (--data DIR --download fetches the full set)")
    unverified = sorted(set(getattr(train_set, "unverified", []))
                        | set(getattr(test_set, "unverified", [])))
    if unverified:
        notes.append(f"note: {', '.join(unverified)} in {source} could not be verified (no "
                     f"SHA256SUMS lists them and they are not the official CIFAR-10 files); "
                     f"they are used as they are")
    return notes


def _named(source):
    return "the bundled sample" if source == SAMPLE else f"CIFAR-10 in {source}"


def _short(digests):
    return ", ".join(f"{split} {digest[:12]}..." for split, digest in digests.items())


def data_description(train_set, test_set):
    """What a run trained and tested on, short enough for a figure's title."""
    return (f"{train_set.name}, {len(train_set.labels):,} train / {len(test_set.labels):,} test "
            f"images")


@functools.lru_cache(maxsize=16)
def _description(source, limit_train):
    train_set, test_set = load_split(source, True), load_split(source, False)
    if limit_train is not None and limit_train < len(train_set.labels):
        train_set = first_images(train_set, limit_train)
    return data_description(train_set, test_set)


def describe_data(config):
    """What a run of `config` (a TrainConfig, or its settings as a dict) trains and tests on, as
    the Trainer's figure titles say it ("CIFAR-10, 50,000 train / 10,000 test images"). Each
    source is read once per process, however often it is described."""
    settings = config if isinstance(config, dict) else dataclasses.asdict(config)
    return _description(data_source(settings["data"]), settings.get("limit_train"))


def first_images(dataset, count):
    """The first `count` images of a data set (a view, for short runs)."""
    subset = type(dataset).__new__(type(dataset))
    vars(subset).update(vars(dataset))
    subset.images, subset.labels = dataset.images[:count], dataset.labels[:count]
    subset.source = f"{dataset.source}, first {len(subset.labels)}"
    return subset


def transforms(config, train_set):
    """(training transform, test transform): pad-crop-flip then the normalisation, which is
    per-channel, or the paper's per-pixel mean of the training set."""
    normalise = (PerPixelMeanSubtraction.from_dataset(train_set) if config.normalize == "pixel"
                 else Normalize())
    return Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), normalise]), normalise


def loaders(config, data, comm):
    """(training loader, test loader) of `data`; under MPI, this rank's slice of each batch and
    of the test set, once every rank has checked it has the same settings and images."""
    train_transform, test_transform = transforms(config, data.train_set)
    if comm.size == 1:
        return (DataLoader(data.train_set, config.batch_size, shuffle=True, drop_last=True,
                           seed=config.seed, transform=train_transform),
                DataLoader(data.test_set, 500, transform=test_transform))
    check_ranks_agree(comm, {"settings": config.to_json(), "training data": data.digests["train"],
                             "test data": data.digests["test"]},
                      "the run's settings and data")
    return (ShardedLoader(data.train_set, config.batch_size, comm.rank, comm.size, shuffle=True,
                          drop_last=True, seed=config.seed, transform=train_transform),
            DataLoader(shard_dataset(data.test_set, comm.rank, comm.size), 500,
                       transform=test_transform))
