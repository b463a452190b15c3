"""The cases `tinyres gradcheck` runs: one module per op family, each registering its builders
with `tinyres.gradcheck.register`. Importing this package registers them all."""
from tinyres.course.checks import core  # noqa: F401
from tinyres.course.checks import conv  # noqa: F401
from tinyres.course.checks import pooling  # noqa: F401
from tinyres.course.checks import batchnorm  # noqa: F401
from tinyres.course.checks import linear_loss  # noqa: F401
from tinyres.course.checks import dropout_lrn  # noqa: F401
