"""Floor 1: the one random-number generator behind initialisation, dropout and ``tinyres.randn``.

One global NumPy Generator, unseeded until ``tinyres.manual_seed(seed)`` (as in PyTorch). Numbers
are drawn on the host and copied to the device, so a seed gives the same numbers on CPU and GPU.
"""
import numpy

_generator = numpy.random.default_rng()


def manual_seed(seed):
    """Reseed the generator behind all initialisation (and Dropout's default); returns it."""
    global _generator
    _generator = numpy.random.default_rng(seed)
    return _generator


def generator():
    """The global numpy.random.Generator that initialisation draws from."""
    return _generator


def get_rng_state():
    """The global generator's state, a dict of plain numbers (checkpoints save it)."""
    return _generator.bit_generator.state


def set_rng_state(state):
    """Continue the global generator from a state that ``get_rng_state()`` returned."""
    _generator.bit_generator.state = state
