"""The cases `tinyres gradcheck` runs: one module per op family, each registering its builders
with `tinyres.gradcheck.register`. Importing this package registers them all."""
from tinyres.checks import core  # noqa: F401
from tinyres.checks import conv  # noqa: F401
from tinyres.checks import pooling  # noqa: F401
from tinyres.checks import batchnorm  # noqa: F401
from tinyres.checks import linear_loss  # noqa: F401
from tinyres.checks import dropout_lrn  # noqa: F401
