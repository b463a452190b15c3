"""`python -m tinyres ...` runs the `tinyres` command."""
import sys

from tinyres.cli import main

sys.exit(main())
