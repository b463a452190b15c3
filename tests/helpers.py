"""Small helpers shared by the op tests (importable because pytest puts tests/ on sys.path)."""
import numpy

from tinyres import Tensor
from tinyres.backend import to_device


def on_device(xp, array, noncontiguous=False):
    """A host array on the current backend; optionally a non-contiguous view of the same values
    (the axes reversed in memory, then reversed back by a transpose)."""
    if not noncontiguous or array.ndim < 2:
        return xp.asarray(array)
    return xp.asarray(numpy.ascontiguousarray(array.transpose())).transpose()


def leaf(xp, array, noncontiguous=False):
    return Tensor(on_device(xp, array, noncontiguous), requires_grad=True)


def host(array):
    return to_device(getattr(array, "data", array), "cpu")
