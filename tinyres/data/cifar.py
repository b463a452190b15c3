"""CIFAR-10: 60,000 tiny colour images in 10 classes, the data set of the paper's section 4.2.

The official "python version" is a folder ``cifar-10-batches-py`` of pickled batch files:

    data_batch_1 ... data_batch_5   the 50,000 training images (10,000 per file)
    test_batch                      the 10,000 test images
    batches.meta                    the 10 class names

Each batch file unpickles (``encoding='bytes'``) to a dict with

    b'data'     uint8 (N, 3072): per image 1024 red, 1024 green, 1024 blue values, row by row
    b'labels'   N ints in 0..9

so ``data.reshape(N, 3, 32, 32)`` is already the (N, C, H, W) layout the network wants. This module
reads any number of images per file (the project's real subset holds about 1,000 per file).

Memory: images stay uint8, 3 KB each (150 MB for the full training set). Converting them to
float32 happens one batch at a time, in the DataLoader: a float64 copy of the whole set would
be 1.2 GB for nothing.

Where the data comes from, in order:
  1. ``root`` (or, when ``root`` is None, ``$TINYRES_DATA`` or ``~/.cache/tinyres``), holding
     ``cifar-10-batches-py/``; ``root`` may also be that folder itself.
  2. If it is not there and ``download=True``: the official archive, checked against its MD5 and
     unpacked safely into that directory.
  3. ``sample=True``: the real sample shipped inside tinyres (5,482 training and 1,017 test
     images: the project's subset, the first images of each official file), verified by a
     SHA-256 of its content. Every example, lab and the first `tinyres train` run offline on it.

Integrity: every file is checked before it is used (integrity.py): against a SHA256SUMS manifest
in its folder or the folder's parent where one lists it, else against the official per-file MD5s.
A mismatch is an error naming the file and how to get a good copy; a full-size batch file (10,000
images) with an official name but another MD5 is a damaged official file; files that match
nothing known (a user's own subset) load, and ``unverified`` names them (the trainer says so).

Safety: pickle can run code while loading, so batch files are read with an unpickler that only
builds NumPy arrays; anything else in a file is refused.
"""
import codecs
import hashlib
import http.client
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath

import numpy

from tinyres.data import integrity
from tinyres.errors import UserError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER_NAME = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
META_FILE = "batches.meta"
NUM_CLASSES = 10
IMAGE_SHAPE = (3, 32, 32)
OFFICIAL_IMAGES_PER_FILE = 10_000
SAMPLE_PATH = Path(__file__).parent / "sample" / "cifar10_sample.npz"

try:                                   # the functions that rebuild a pickled ndarray
    from numpy._core.multiarray import _reconstruct as _rebuild_array
    from numpy._core.numeric import _frombuffer as _array_from_buffer     # pickle protocol 5
except ImportError:                    # NumPy 1.x
    from numpy.core.multiarray import _reconstruct as _rebuild_array
    from numpy.core.numeric import _frombuffer as _array_from_buffer


class DatasetError(UserError, RuntimeError):
    """The data set could not be found, downloaded, verified or read."""


def default_data_root():
    """Where data sets live when no root is given: ``$TINYRES_DATA``, else ``~/.cache/tinyres``."""
    return Path(os.environ.get("TINYRES_DATA") or Path.home() / ".cache" / "tinyres").expanduser()


def _how_to_fix():
    return ("To use a copy you already have, pass its directory: `--data DIR` on the command line "
            "or `CIFAR10(root=DIR)` in Python, where DIR holds cifar-10-batches-py/ (or is that "
            "folder). To run offline without it, use the small real sample shipped with tinyres: "
            "`CIFAR10(sample=True)` or `bundled_sample()`.")


class CIFAR10:
    """The CIFAR-10 training or test set, held in memory. Every file is checked against its
    checksum first (integrity.py; `verify=True` hashes it again whatever the cache remembers).

    Attributes:
        images      uint8 (N, 3, 32, 32)
        labels      int64 (N,), values 0..9
        classes     the 10 class names, in label order ('airplane', 'automobile', ...)
        source      where the images came from, for logs and reports
        name        a short name for figure titles ("CIFAR-10", "the bundled CIFAR-10 sample", or
                    "CIFAR-10 images from FOLDER" for a partial copy such as the project's subset)
        unverified  the files no checksum could vouch for (a user's own subset), else []
    """

    def __init__(self, root=None, train=True, download=True, sample=False, verify=False):
        self.train = train
        split = "train" if train else "test"
        if sample:
            if root is not None:
                raise ValueError(f"CIFAR10: pass either root= (a CIFAR-10 folder) or sample=True "
                                 f"(the bundled sample), not both; got root={str(root)!r}")
            self.images, self.labels, self.classes = _load_sample(SAMPLE_PATH, split)
            self.source = f"bundled sample ({len(self.labels)} {split} images, {SAMPLE_PATH})"
            self.unverified = []
            self.name = "the bundled CIFAR-10 sample"
            return
        root = Path(root).expanduser() if root is not None else default_data_root()
        folder = _find_folder(root, download)
        files = TRAIN_FILES if train else TEST_FILES
        checks = {name: _checked(folder / name, verify) for name in (META_FILE,) + files}
        self.classes = _read_class_names(folder / META_FILE)
        images, labels = zip(*(_read_batch(folder / name) for name in files))
        for name, batch in zip(files, images):
            if checks[name][0] == "official-mismatch" and len(batch) == OFFICIAL_IMAGES_PER_FILE:
                raise DatasetError(
                    f"{folder / name} is damaged: it has the name and size of CIFAR-10's "
                    f"official {name} but its MD5 is {checks[name][1]}, not the official "
                    f"{integrity.OFFICIAL_MD5[name]}. {_how_to_get_a_good_copy(folder)} (If you "
                    f"made this file yourself, list its SHA-256 in a {integrity.MANIFEST} file "
                    f"beside it, in `sha256sum` format.)")
        self.unverified = [name for name, (kind, _) in checks.items()
                           if kind not in ("manifest", "official")]
        self.images = numpy.concatenate(images)     # uint8 (N, 3, 32, 32)
        self.labels = numpy.concatenate(labels)     # int64 (N,)
        self.source = f"{folder} ({len(self.labels)} {split} images)"
        complete = len(self.labels) == (50000 if train else 10000)
        self.name = "CIFAR-10" if complete else f"CIFAR-10 images from {folder.parent.name}"

    def __len__(self):
        return len(self.labels)

    def __repr__(self):
        return f"CIFAR10({self.source})"


def _checked(path, rehash=False):
    """integrity.verify for a CIFAR-10 file, a mismatch as a DatasetError."""
    try:
        return integrity.verify(path, default_data_root(), rehash)
    except integrity.ChecksumMismatch as err:
        raise DatasetError(f"{err}. {_how_to_get_a_good_copy(Path(path).parent)}") from None
    except OSError as err:
        raise DatasetError(f"cannot read CIFAR-10 file {path}: {err}") from None


def _how_to_get_a_good_copy(folder):
    return (f"Get a good copy: copy the folder again from where it came from, or delete {folder} "
            f"and download the official CIFAR-10 again (`--data DIR --download`, whose archive's "
            f"MD5 is checked)")


def bundled_sample(train=True):
    """The real CIFAR-10 sample shipped with tinyres (5,482 train / 1,017 test images)."""
    return CIFAR10(train=train, sample=True)


# ----------------------------------------------------------------------------------------------
# Finding the folder, or downloading it.
# ----------------------------------------------------------------------------------------------
def _find_folder(root, download):
    """The ``cifar-10-batches-py`` folder under (or at) ``root``; downloads it if allowed.

    An existing but incomplete folder is an error, never overwritten by a download."""
    for folder in (root / FOLDER_NAME, root):
        if (folder / META_FILE).is_file() or (folder.name == FOLDER_NAME and folder.is_dir()):
            expected = (META_FILE,) + TRAIN_FILES + TEST_FILES
            missing = [name for name in expected if not (folder / name).is_file()]
            if missing:
                raise DatasetError(f"CIFAR-10 folder {folder} is incomplete: missing "
                                   f"{', '.join(missing)}. {_how_to_fix()}")
            return folder
    if not download:
        raise DatasetError(f"CIFAR-10 not found: expected {root / FOLDER_NAME}/ holding "
                           f"{META_FILE}, {', '.join(TRAIN_FILES + TEST_FILES)}; download=False "
                           f"so nothing was fetched. {_how_to_fix()}")
    download_cifar10(root)
    return _find_folder(root, download=False)


def download_cifar10(root):
    """Download the official archive into ``root``, check its MD5, unpack it safely.

    The bytes go to ``cifar-10-python.tar.gz.part`` first; only a complete file with the right
    checksum is renamed to ``.tar.gz``, so an interrupted download never passes for data.
    The archive is deleted once unpacked.
    """
    root = Path(root)
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    archive = root / "cifar-10-python.tar.gz"
    partial = root / "cifar-10-python.tar.gz.part"
    md5 = hashlib.md5()
    try:
        with urllib.request.urlopen(CIFAR10_URL, timeout=60) as response, \
                open(partial, "wb") as out:
            size = int(response.headers.get("Content-Length") or 0) or None
            from tqdm import tqdm  # here: the CLI's parser imports this file
            with tqdm(total=size, unit="B", unit_scale=True, desc="CIFAR-10") as progress:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    md5.update(chunk)
                    progress.update(len(chunk))
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        # offline, DNS failure, timeout, connection cut, disk full...
        partial.unlink(missing_ok=True)
        if created and not any(root.iterdir()):
            root.rmdir()                    # leave no empty folder behind for a failed download
        raise DatasetError(f"could not download CIFAR-10 from {CIFAR10_URL} into {root}: "
                           f"{err}. {_how_to_fix()}") from err
    if md5.hexdigest() != CIFAR10_MD5:
        partial.unlink()
        raise DatasetError(f"the download from {CIFAR10_URL} is corrupt: MD5 {md5.hexdigest()}, "
                           f"expected {CIFAR10_MD5}; the file was deleted. {_how_to_fix()}")
    partial.replace(archive)
    try:
        extract_safely(archive, root)
    finally:
        archive.unlink()


def extract_safely(archive, target):
    """Unpack the ``cifar-10-batches-py`` folder of a .tar.gz into ``target``.

    An archive is input from the network, and a tar member can name any path: ``/etc/passwd``,
    ``../../.bashrc``, or a link pointing out of the target. Every member is checked first; only
    plain files and folders inside ``target`` are allowed, then written by hand. Unpacking goes
    to a temporary folder that is moved into place at the end, so a half-unpacked folder never
    looks like data.
    """
    target = Path(target)
    with tarfile.open(archive, "r:gz") as tar, \
            tempfile.TemporaryDirectory(dir=target, prefix=".unpacking-") as scratch:
        scratch = Path(scratch).resolve()
        for member in tar.getmembers():
            destination = _checked_destination(member, scratch, archive)
            if member.isdir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(member) as source, open(destination, "wb") as out:
                shutil.copyfileobj(source, out)
        unpacked = scratch / FOLDER_NAME
        if not (unpacked / META_FILE).is_file():
            raise DatasetError(f"{archive} holds no {FOLDER_NAME}/{META_FILE}; is it the "
                               f"CIFAR-10 python archive? {_how_to_fix()}")
        unpacked.rename(target / FOLDER_NAME)


def _checked_destination(member, scratch, archive):
    """Where a tar member may be written, or DatasetError if it is not a safe file or folder."""
    name = PurePosixPath(member.name)
    if not (member.isfile() or member.isdir()):
        problem = "is a link or special file"
    elif name.is_absolute() or ".." in name.parts:
        problem = "has an absolute path or '..'"
    elif not (scratch / name).resolve().is_relative_to(scratch):
        problem = "points outside the target folder"
    else:
        return scratch / name
    raise DatasetError(f"refusing to unpack {archive}: member {member.name!r} {problem}; "
                       f"only plain files and folders inside the target are allowed")


# ----------------------------------------------------------------------------------------------
# Reading batch files.
# ----------------------------------------------------------------------------------------------
class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Builds lists, dicts, bytes, numbers and NumPy arrays; refuses every other class."""

    def find_class(self, module, name):
        if (module, name) in {("numpy", "ndarray"), ("numpy", "dtype")}:
            return getattr(numpy, name)
        if (module, name) == ("_codecs", "encode"):   # how Python 3 writes bytes in protocol 2
            return codecs.encode
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return _rebuild_array
        if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
            return _array_from_buffer               # an array from its bytes (protocol 5)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR-10 batch file "
                                     f"holds only NumPy arrays, lists and numbers")


def _unpickle(path):
    try:
        with open(path, "rb") as f:
            return _ArraysOnlyUnpickler(f, encoding="bytes").load()
    except OSError as err:
        raise DatasetError(f"cannot read CIFAR-10 file {path}: {err}") from err
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise DatasetError(f"{path} is not a readable CIFAR-10 pickle ({err}); the file may be "
                           f"truncated or not from the python version of CIFAR-10") from err


def _read_batch(path):
    """One batch file → images uint8 (N, 3, 32, 32), labels int64 (N,)."""
    batch = _unpickle(path)
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        keys = list(batch) if isinstance(batch, dict) else "none"
        raise DatasetError(f"{path}: expected a dict with keys b'data' and b'labels', got "
                           f"{type(batch).__name__} with keys {keys}")
    data, labels = batch[b"data"], numpy.asarray(batch[b"labels"])
    pixels = int(numpy.prod(IMAGE_SHAPE))
    if not (isinstance(data, numpy.ndarray) and data.dtype == numpy.uint8
            and data.ndim == 2 and data.shape[1] == pixels):
        raise DatasetError(f"{path}: expected b'data' to be uint8 of shape (N, {pixels}), got "
                           f"{getattr(data, 'dtype', type(data).__name__)} of shape "
                           f"{getattr(data, 'shape', '?')}")
    if labels.shape != (len(data),) or not numpy.issubdtype(labels.dtype, numpy.integer):
        raise DatasetError(f"{path}: expected {len(data)} integer labels (one per image), got "
                           f"{labels.dtype} of shape {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DatasetError(f"{path}: labels must lie in 0..{NUM_CLASSES - 1}, got values from "
                           f"{labels.min()} to {labels.max()}")
    return data.reshape(-1, *IMAGE_SHAPE), labels.astype(numpy.int64)


def _read_class_names(path):
    meta = _unpickle(path)
    names = meta.get(b"label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) != NUM_CLASSES:
        raise DatasetError(f"{path}: expected b'label_names', a list of {NUM_CLASSES} class "
                           f"names, got {names!r}")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


# ----------------------------------------------------------------------------------------------
# The bundled sample.
# ----------------------------------------------------------------------------------------------
def content_sha256(images, labels):
    """SHA-256 of the images' bytes (uint8, C order), then the labels' (little-endian int64)."""
    digest = hashlib.sha256(numpy.ascontiguousarray(images, dtype=numpy.uint8).tobytes())
    digest.update(numpy.ascontiguousarray(labels, dtype="<i8").tobytes())
    return digest.hexdigest()


def row_differences(images):
    """uint8 images (..., W) -> each row's first value, then each value minus its left
    neighbour, mod 256 (PNG's "Sub" filter: the bundled sample deflates better this way)."""
    differences = images.copy()
    differences[..., 1:] -= images[..., :-1]          # uint8 arithmetic wraps mod 256
    return differences


def undo_row_differences(differences):
    """The inverse of row_differences: a running sum along each row, mod 256."""
    return numpy.cumsum(differences, axis=-1, dtype=numpy.uint8)


def _load_sample(path, split):
    """The bundled sample's ``split`` ('train' or 'test'), after checking the file against the
    SHA256SUMS beside it (which tools/make_cifar_sample.py writes) and its content checksum."""
    try:
        integrity.verify(path, default_data_root())
    except integrity.ChecksumMismatch as err:
        raise DatasetError(f"the bundled CIFAR-10 sample {err}; reinstall tinyres or rebuild it "
                           f"with tools/make_cifar_sample.py") from None
    try:
        with numpy.load(path, allow_pickle=False) as npz:
            images = undo_row_differences(npz[f"{split}_rowdiff"])
            labels = npz[f"{split}_labels"]
            expected, classes = str(npz[f"{split}_sha256"]), [str(c) for c in npz["classes"]]
    except (OSError, KeyError, ValueError) as err:
        raise DatasetError(f"cannot read the bundled CIFAR-10 sample {path}: {err}; reinstall "
                           f"tinyres or rebuild it with tools/make_cifar_sample.py") from err
    actual = content_sha256(images, labels)
    if actual != expected:
        raise DatasetError(f"the bundled CIFAR-10 sample {path} is corrupt: its {split} images "
                           f"and labels hash to {actual}, expected {expected}; reinstall tinyres "
                           f"or rebuild it with tools/make_cifar_sample.py")
    return images, labels.astype(numpy.int64), classes
