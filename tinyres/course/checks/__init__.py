"""The cases `tinyres gradcheck` runs: one module per op family, each registering its builders
with `register` (registry.py). Importing this package registers them all in `REGISTRY`."""
from tinyres.course.checks.registry import REGISTRY  # noqa: F401  (the table, filled below)
from tinyres.course.checks import core  # noqa: F401
from tinyres.course.checks import conv  # noqa: F401
from tinyres.course.checks import pooling  # noqa: F401
from tinyres.course.checks import batchnorm  # noqa: F401
from tinyres.course.checks import linear_loss  # noqa: F401
from tinyres.course.checks import dropout_lrn  # noqa: F401
