"""python -m tinyres.bench: the same as `tinyres bench` (and the fresh process that measures one
path's memory)."""
import sys

from tinyres.bench.command import main

sys.exit(main())
