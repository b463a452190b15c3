"""Saving and loading: state dicts and checkpoints as .npz files.

    tinyres.save(model.state_dict(), "weights.npz")
    model.load_state_dict(tinyres.load("weights.npz"))

    tinyres.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 12},
                 "checkpoint.npz")
    checkpoint = tinyres.load("checkpoint.npz")          # the same nested dict, arrays as numpy

The file is a NumPy .npz archive (a zip of .npy files), readable without tinyres and without
pickle. Nested containers are flattened: each array is stored under its path of keys joined by
"/" ("model/layer1.0.conv1.weight"). Everything that is not an array (numbers, strings, None,
the shape of the nesting itself) is written as JSON under one reserved key, and load rebuilds
the object from it. A flat {name: array} dict (a plain state dict) needs no JSON: its file is
exactly what ``numpy.savez`` would write, and ``numpy.load`` gives the state dict back.

Writing is *atomic*: the archive goes to a temporary file in the same directory, is flushed to
disk, and only then renamed over `path` (``os.replace``, which is atomic). A crash or an error
mid-save leaves the previous file at `path` untouched, never a truncated one.

Reading refuses what is not such an archive with a CheckpointError naming the file and what is
wrong with it: missing, empty, truncated or damaged (a zip's CRC catches flipped bits), not an .npz
at all, or holding pickled Python objects (which could run code, so they are never loaded).
"""
import json
import os
import secrets
import zipfile

import numpy

from tinyres import backend
from tinyres.errors import UserError
from tinyres.tensor import Tensor

TREE_KEY = "__tinyres_tree__"     # the reserved key holding the JSON description
SEPARATOR = "/"
ZIP_MAGIC = b"PK\x03\x04"        # the first bytes of every zip archive, hence of every .npz


class CheckpointError(UserError, ValueError):
    """A file that ``load`` cannot read as a tinyres checkpoint or state dict (the message names
    the file and says why)."""


# -- flattening a nested object into (arrays, JSON tree) ------------------------------------------
def _is_array(value):
    return isinstance(value, (Tensor, numpy.ndarray, numpy.generic)) or (
        hasattr(value, "shape") and hasattr(value, "dtype"))          # CuPy, leakproof arrays


def _host_array(value):
    array = value.data if isinstance(value, Tensor) else value
    if isinstance(array, numpy.generic):
        return numpy.asarray(array)
    array = backend.to_device(array, "cpu")
    if array.dtype == object:
        raise TypeError("save: object arrays cannot be stored without pickle; convert them to a "
                        "numeric dtype")
    return array


def _flatten(value, key, arrays):
    """Describe `value` as JSON, moving its arrays into `arrays` under "/"-joined key paths."""
    if _is_array(value):
        if key in arrays or key == TREE_KEY:
            raise ValueError(f"save: two entries would both be stored as {key!r}; keys must not "
                             f"repeat after joining nested keys with {SEPARATOR!r}")
        arrays[key] = _host_array(value)
        return {"array": key}
    if isinstance(value, dict):
        items = []
        for k, v in value.items():
            if isinstance(k, bool) or not isinstance(k, (str, int)):
                raise TypeError(f"save: dict keys must be str or int, got {k!r} under {key!r}")
            items.append([k, _flatten(v, f"{key}{SEPARATOR}{k}" if key else str(k), arrays)])
        return {"dict": items}
    if isinstance(value, (list, tuple)):
        kind = "list" if isinstance(value, list) else "tuple"
        return {kind: [_flatten(v, f"{key}{SEPARATOR}{i}" if key else str(i), arrays)
                       for i, v in enumerate(value)]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": value}
    raise TypeError(f"save: cannot store a {type(value).__name__} (at {key!r}); expected arrays, "
                    "Tensors, numbers, strings, None, or dicts / lists / tuples of them")


def _unflatten(tree, arrays):
    (kind, content), = tree.items()
    if kind == "array":
        return arrays[content]
    if kind == "dict":
        return {k: _unflatten(v, arrays) for k, v in content}
    if kind in ("list", "tuple"):
        items = [_unflatten(v, arrays) for v in content]
        return items if kind == "list" else tuple(items)
    return content                                                  # "value"


def _is_plain_state_dict(obj):
    return isinstance(obj, dict) and all(
        isinstance(k, str) and k != TREE_KEY and _is_array(v) for k, v in obj.items())


# -- writing ------------------------------------------------------------------------------------
def _write_npz(file, arrays):
    """Write {name: array} as an .npz archive (a zip holding one name.npy per array)."""
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as entry:
                numpy.lib.format.write_array(entry, numpy.asanyarray(array), allow_pickle=False)


def save(obj, path):
    """Write a state dict, or a nested dict / list of arrays, numbers and strings, to `path`.

    Arrays (and Tensors) are copied to the host; nothing about `obj` is changed. The file is
    written to `path` exactly (no suffix is added) and atomically (see the module docstring).
    """
    path = os.fspath(path)
    if _is_plain_state_dict(obj):
        arrays = {k: _host_array(v) for k, v in obj.items()}
    else:
        arrays = {}
        tree = _flatten(obj, "", arrays)
        arrays[TREE_KEY] = numpy.array(json.dumps(tree))          # a 0-d unicode array

    # Same directory as `path`, so the rename never crosses file systems; "x" never overwrites.
    directory, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
    file = open(temporary, "xb")
    try:
        with file:
            _write_npz(file, arrays)
            file.flush()
            os.fsync(file.fileno())          # the bytes are on disk before the rename
        os.replace(temporary, path)          # atomic: `path` is the old file or the new one
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)             # a failed save leaves no litter behind
        raise


def load(path):
    """Read what ``save`` wrote (or any .npz without pickled objects): the same nested object,
    with host numpy arrays in place of the arrays and Tensors that were saved.

    A file that is not such an archive raises CheckpointError (see the module docstring)."""
    path = os.fspath(path)
    try:
        archive = numpy.load(path, allow_pickle=False)
        if not isinstance(archive, numpy.lib.npyio.NpzFile):
            raise CheckpointError(f"{path} is not a tinyres checkpoint: it holds a single .npy "
                                  f"array, not an .npz archive as tinyres.save writes")
        with archive:
            arrays = {name: archive[name] for name in archive.files}
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path} is a directory, not a checkpoint file") from None
    except (zipfile.BadZipFile, EOFError, ValueError, OSError) as err:
        raise CheckpointError(f"{path} is not a tinyres checkpoint: {_what_is_wrong(path, err)}"
                              ) from None
    if TREE_KEY not in arrays:
        return arrays
    try:
        return _unflatten(json.loads(str(arrays.pop(TREE_KEY))), arrays)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as err:
        raise CheckpointError(                  # bad JSON, or a tree save never writes
            f"{path} is not a tinyres checkpoint: its {TREE_KEY} entry (the description of the "
            f"nested object) is malformed ({type(err).__name__}: {err}); was it written by "
            f"tinyres.save?") from None


def _what_is_wrong(path, error):
    """Why numpy could not read `path`, in words (never NumPy's advice to allow pickle)."""
    with open(path, "rb") as f:
        start = f.read(len(ZIP_MAGIC))
    if not start:
        return "the file is empty (was its save interrupted by a full disk?)"
    if start != ZIP_MAGIC:
        return ("it is not an .npz archive (its first bytes are not a zip's); was it written by "
                "tinyres.save?")
    if "pickle" in str(error):
        return ("it holds pickled Python objects, which tinyres never loads because unpickling "
                "can run code; save plain arrays with tinyres.save")
    return (f"the archive is truncated or damaged ({error}); use an intact copy, or the "
            f"checkpoint of an earlier run")
