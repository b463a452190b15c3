"""Finding the holes' regions in a file, and cutting them out.

In Python source a region is

    # BEGIN SOLUTION A2 im2col
    ...
    # END SOLUTION

and in Markdown (a worked code block in the docs that is a hole's answer)

    <!-- BEGIN SOLUTION A3 batch_norm_backward -->
    ...
    <!-- END SOLUTION -->

A student copy of A2 replaces every A2 region: in Python by a NotImplementedError naming the
task, in Markdown by a line pointing to the handout. The regions of the assignments released
after A2 (A3, A4 in the default order) are cut too, each standing as a NotImplementedError that
says which assignment fills it: an A2 copy holds no later answer. The regions of earlier
assignments keep their code; every marker line goes.
"""
import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

from tinyres.course.assignments import ASSIGNMENTS, TASKS

BEGIN, END = "BEGIN SOLUTION", "END SOLUTION"


@dataclass
class Region:
    file: Path
    task: str
    begin: int                    # line numbers (1-based) of the two marker lines
    end: int
    indent: str


def _marker(line):
    """('BEGIN', words after it) / ('END', ()) for a marker line, else None."""
    text = line.strip()
    if text.startswith("<!--") and text.endswith("-->"):
        text = text[4:-3].strip()
    elif text.startswith("#"):
        text = text[1:].strip()
    else:
        return None
    if text.startswith(BEGIN):
        return "BEGIN", text[len(BEGIN):].split()
    if text.startswith(END):
        return "END", ()
    return None


def find_regions(text, path="<text>"):
    """The regions of a file's text, checked: every BEGIN names a known task of its assignment
    and is closed by an END before the next BEGIN."""
    regions, open_region = [], None
    for number, line in enumerate(text.split("\n"), start=1):
        marker = _marker(line)
        if marker is None:
            continue
        kind, tag = marker
        if kind == "BEGIN":
            if open_region is not None:
                raise ValueError(f"{path}:{number}: '{BEGIN}' inside the region opened at line "
                                 f"{open_region.begin}")
            if len(tag) != 2 or tag[1] not in TASKS or TASKS[tag[1]].assignment != tag[0]:
                raise ValueError(f"{path}:{number}: expected '{BEGIN} <assignment> <task>' with "
                                 f"a known task, got {line.strip()!r}")
            indent = line[:len(line) - len(line.lstrip())]
            open_region = Region(Path(path), tag[1], number, 0, indent)
        else:
            if open_region is None:
                raise ValueError(f"{path}:{number}: '{END}' without a '{BEGIN}'")
            open_region.end = number
            regions.append(open_region)
            open_region = None
    if open_region is not None:
        raise ValueError(f"{path}:{open_region.begin}: '{BEGIN}' is never closed")
    return regions


def strip_solutions(text, assignment_id, path="<text>", later=()):
    """`text` with the regions of `assignment_id` cut out as holes (assignment_id None: keep its
    solutions), those of the assignments in `later` cut out as holes of those assignments, and
    every marker line removed."""
    markdown = str(path).endswith(".md")
    regions = {r.begin: r for r in find_regions(text, path)}
    out, skip_to = [], 0
    for number, line in enumerate(text.split("\n"), start=1):
        if number <= skip_to or _marker(line) is not None and number not in regions:
            continue
        region = regions.get(number)
        if region is None:
            out.append(line)
        elif TASKS[region.task].assignment == assignment_id:
            out += (markdown_note if markdown else student_stub)(TASKS[region.task],
                                                                  region.indent)
            skip_to = region.end
        elif TASKS[region.task].assignment in later:
            out += (later_note if markdown else later_stub)(TASKS[region.task], region.indent,
                                                            assignment_id)
            skip_to = region.end
    return "\n".join(out)


def student_stub(task, indent):
    """The lines that stand where the solution of `task` was in the source."""
    handout = ASSIGNMENTS[task.assignment].handout
    lines = textwrap.wrap(f"TODO {task.assignment}: {task.what}", 96 - len(indent))
    message = f"{task.assignment}: implement {task.function} (see {handout})"
    return ([f"{indent}# {lines[0]}"] + [f"{indent}#     {more}" for more in lines[1:]]
            + [f"{indent}raise NotImplementedError({json.dumps(message)})"])


def markdown_note(task, indent):
    """The line that stands where a worked code block of `task` was in the docs."""
    handout = ASSIGNMENTS[task.assignment].handout
    return [f"{indent}*(Code left out of this copy: it is {task.function}, yours to write in "
            f"{task.assignment}; see {handout}.)*"]


def later_stub(task, indent, current):
    """The lines that stand where the solution of `task`, a hole of an assignment released
    after `current`, was: one line that says which assignment fills it."""
    handout = ASSIGNMENTS[task.assignment].handout
    message = (f"{task.function} is a hole of {task.assignment} ({handout}), released after "
               f"this {current or 'solution'} copy")
    return [f"{indent}# Left out: a hole of {task.assignment}, released later.",
            f"{indent}raise NotImplementedError({json.dumps(task.assignment + ': ' + message)})"]


def later_note(task, indent, current):
    """The line that stands where a worked code block of a later assignment's hole was."""
    handout = ASSIGNMENTS[task.assignment].handout
    return [f"{indent}*(Code left out of this copy: it is {task.function}, written in "
            f"{task.assignment}, released after {current or 'this one'}; see {handout}.)*"]
