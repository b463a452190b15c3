"""Floor 7: a run's checkpoint — which file it is, and the checks before it is written or trusted.

A run directory's ``checkpoint.npz`` (written by ``tinyres.save``, atomically) holds everything a
run needs to continue: its settings, the model, the optimizer, the schedule, the loader's place,
the random state, and the progress (epochs and steps done, the partial sums of an interrupted
epoch, the number of MPI ranks).

    before writing   every floating-point tensor of the model and optimizer is finite: a NaN
                     or inf state is never saved as if it could be resumed
    when reading     the file named is the file read (a directory means its checkpoint.npz);
                     it must be a run checkpoint with finite weights; a model it does not fit
                     is summarised in one line (counts, the first few names, the likely cause)
"""
import re
from pathlib import Path

import numpy

import tinyres
from tinyres.nn.module import StateDictError
from tinyres.serialization import CheckpointError
from tinyres.tensor import Tensor

CHECKPOINT = "checkpoint.npz"
RUN_KEYS = ("config", "model", "optimizer", "scheduler", "loader", "rng", "progress")


def checkpoint_file(path, option="--checkpoint"):
    """The checkpoint file `path` names: the file itself, or a run directory's checkpoint.npz."""
    path = Path(path)
    if path.is_dir():
        if not (path / CHECKPOINT).is_file():
            raise CheckpointError(f"{option} {path}: the directory holds no {CHECKPOINT}; name "
                                  f"a checkpoint file or a run directory `tinyres train` wrote")
        return path / CHECKPOINT
    if not path.exists():
        raise CheckpointError(f"{option} {path}: no such file or directory")
    return path


def non_finite_tensors(tree, prefix=""):
    """The "/"-joined names of the floating-point arrays in a nested dict / list that hold a NaN
    or an infinity."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    else:
        array = tree.data if isinstance(tree, Tensor) else tree
        kind = getattr(getattr(array, "dtype", None), "kind", None)
        finite = kind != "f" or bool(tinyres.get_array_module(array).isfinite(array).all())
        return [] if finite else [prefix]
    return [name for key, value in items
            for name in non_finite_tensors(value, f"{prefix}/{key}" if prefix else str(key))]


def count_tensors(tree):
    if isinstance(tree, dict):
        return sum(count_tensors(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return sum(count_tensors(v) for v in tree)
    return int(isinstance(tree, Tensor) or hasattr(tree, "dtype"))


def first_few(names, count=3):
    shown = ", ".join(names[:count])
    return shown + (f" and {len(names) - count} more" if len(names) > count else "")


def read_run_checkpoint(path):
    """The nested dict of a checkpoint `tinyres train` wrote at `path`, after checking that it is
    one and that its model and optimizer state are finite; CheckpointError otherwise."""
    state = tinyres.load(path)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a run checkpoint "
                              f"(settings, model and progress): `tinyres eval` and `--resume` "
                              f"need the checkpoint.npz of a `tinyres train` run")
    missing = [key for key in RUN_KEYS if key not in state]
    if missing:
        what = "a bare state dict" if "config" not in state else f"no {', '.join(missing)}"
        raise CheckpointError(f"{path} holds {what}, not a run checkpoint (settings, model and "
                              f"progress): `tinyres eval` and `--resume` need the checkpoint.npz "
                              f"of a `tinyres train` run")
    trainable = {"model": state["model"], "optimizer": state["optimizer"]}
    bad = non_finite_tensors(trainable)
    if bad:
        raise CheckpointError(f"{path} holds NaN or infinite values in {len(bad)} of "
                              f"{count_tensors(trainable)} tensors ({first_few(bad)}): the run "
                              f"it comes from diverged; it cannot be evaluated or resumed")
    return state


def load_model_state(model, state_dict, path, model_name):
    """``model.load_state_dict`` for a checkpoint's weights, with a one-line summary (counts, the
    first few names, the likely cause) in place of one line per mismatched key."""
    try:
        model.load_state_dict(state_dict)
    except StateDictError:
        own = model.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        misshapen = [k for k in own if k in state_dict
                     and tuple(numpy.shape(state_dict[k])) != tuple(own[k].shape)]
        parts = [f"{len(names)} {kind} ({first_few(names)})"
                 for kind, names in (("missing", missing), ("unexpected", unexpected),
                                     ("of another shape", misshapen)) if names]
        raise CheckpointError(
            f"{path}: its weights do not fit a {model_name}: {'; '.join(parts)} of "
            f"{len(own)} entries. Likely cause: the weights are those of "
            f"{describe_architecture(state_dict.keys())}, the model is "
            f"{describe_architecture(own.keys())}") from None


def describe_architecture(keys):
    """A short description of a network from its state-dict keys: its residual stages and blocks
    per stage ("3 stages of 9 blocks, as resnet56 / plain56"), else its count of entries."""
    blocks = {}
    for key in keys:
        found = re.match(r"(?:module\.)?layer(\d+)\.(\d+)\.", key)
        if found:
            stage, block = map(int, found.groups())
            blocks[stage] = max(blocks.get(stage, 0), block + 1)
    counts = [blocks[s] for s in sorted(blocks)]
    if len(counts) == 3 and len(set(counts)) == 1:           # the CIFAR ResNets: 6n + 2 layers
        depth = 6 * counts[0] + 2
        return f"3 stages of {counts[0]} blocks (resnet{depth} or plain{depth})"
    if counts:
        return f"{len(counts)} stages of {'/'.join(map(str, counts))} blocks"
    return f"a network of {len(list(keys))} entries without residual stages"
