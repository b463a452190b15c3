"""Floor 1: the one base class of the mistakes a user can fix.

A ``UserError`` is raised for what the person at the keyboard got wrong or must act on: an option
out of range, a file that is not what it claims to be, a data set that is missing or damaged, a
run directory that holds someone's finished run. Its message is one line that names the file,
option or layer, says what was expected and what was found, and what to do.

The ``tinyres`` command prints a UserError as that one line on stderr and exits with status 2,
without a traceback (``tinyres --debug ...`` or ``TINYRES_DEBUG=1`` shows it; `report_error`
below prints it so). Everything else is a bug in tinyres, and keeps its traceback.
"""
import os
import sys
import traceback


class UserError(Exception):
    """A mistake the user can fix, explained in one line (see the module docstring)."""


def debugging(args):
    """--debug (before or after the subcommand), or TINYRES_DEBUG=1: tracebacks are shown."""
    return bool(getattr(args, "debug", False)) or os.environ.get("TINYRES_DEBUG") == "1"


def report_error(args, error, prefix=""):
    """A user's mistake as one line on stderr (with the traceback before it under --debug)."""
    if debugging(args):
        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    message = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    print(f"tinyres {getattr(args, 'command', '')}: {prefix}{message}", file=sys.stderr)
