"""The cases `tinyres gradcheck` runs: one module per op family, each registering its builders
with `tinyres.gradcheck.register`. Importing this package registers them all."""
from tinyres.checks import core  # noqa: F401
