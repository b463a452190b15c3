"""The one helper every case file shares: a random float64 leaf Tensor to differentiate."""
import numpy

from tinyres.tensor import Tensor


def leaf(rng, *shape, positive=False):
    """A Tensor of standard normal values (|values| + 0.5 when `positive`: inputs of log and
    fractional powers) that requires its gradient."""
    data = rng.standard_normal(shape)
    return Tensor(numpy.abs(data) + 0.5 if positive else data, requires_grad=True)
