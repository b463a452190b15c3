"""The course's room: tinyres as assignments, above the engine (floor 8, beside the CLI).

    assignments.py   the assignments, their holes (tasks), written parts, release order: data
    settings.py      the course's settings file: points, time limits, visibility, release order
    holes.py         the BEGIN/END SOLUTION regions in the source and docs, and cutting them out
    copier.py        `tinyres assignment make`: a student copy, a whole engine with holes
    signing.py       the copy's manifest, signed with the course key
    cases.py         the grader's cases (visible, hidden, goals) and their expected outputs
    references.py    plain NumPy references the cases are computed with (and the stand-ins
                     for a student's other functions while one is graded)
    runner.py        the only grading code that runs in the student's process: compute, never judge
    sandbox.py       where that process runs: the grader's home and processes hidden, as nobody
    feedback.py      comparing arrays, in words: worst element, expected vs got
    grader.py        `tinyres assignment grade`: subprocess, comparisons, table, JSON, CSV
    gradescope.py    `tinyres assignment gradescope`: the autograder zip, and its run
    checks/          the cases `tinyres gradcheck` runs, one file per op family
    options.py       the options of `tinyres assignment` and `tinyres gradcheck` (for the CLI)
    command.py       those two commands: make / grade / gradescope / list, and the gradcheck
                     table

Imports point down: this package uses the engine; nothing in the engine imports it. A student
copy keeps assignments.py, holes.py, signing.py, options.py, command.py and checks/ (the
grader's side is left out).
"""
