"""Small helpers shared by the op tests (importable because pytest puts tests/ on sys.path)."""
import numpy
from hypothesis import strategies as st

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
    """A backend array or a Tensor's data as a host ndarray, for numpy.testing. (Not
    getattr(array, "data"): an ndarray's .data is its raw memory buffer.)"""
    return to_device(array.data if isinstance(array, Tensor) else array, "cpu")


@st.composite
def conv_configs(draw, max_batch=2, max_channels=3, max_size=7, max_stride=3, max_padding=1,
                 **fields):
    """A valid conv2d configuration, a dict: n, c, oc, h, w, and (height, width) pairs kernel
    (1 to 3), stride, padding; noncontiguous. The kernel fits the padded input; a stride may
    exceed it (skipped pixels). `fields` are strategies for more entries (bias=st.booleans())."""
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, max_padding)), draw(st.integers(0, max_padding)))
    config = dict(
        n=draw(st.integers(1, max_batch)), c=draw(st.integers(1, max_channels)),
        oc=draw(st.integers(1, max_channels)),
        h=draw(st.integers(max(1, kernel[0] - 2 * padding[0]), max_size)),
        w=draw(st.integers(max(1, kernel[1] - 2 * padding[1]), max_size)),
        kernel=kernel, stride=(draw(st.integers(1, max_stride)), draw(st.integers(1, max_stride))),
        padding=padding, noncontiguous=draw(st.booleans()))
    config.update({name: draw(strategy) for name, strategy in fields.items()})
    return config


def conv_output_shape(config):
    """(OH, OW) of a conv_configs() configuration."""
    (KH, KW), (SH, SW), (PH, PW) = config["kernel"], config["stride"], config["padding"]
    return ((config["h"] + 2 * PH - KH) // SH + 1, (config["w"] + 2 * PW - KW) // SW + 1)
