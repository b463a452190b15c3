"""The course's room: tinyres as assignments, above the engine (floor 8, beside the CLI).

    assignments.py   the assignments, their holes (tasks) and written parts: plain data
    holes.py         the BEGIN/END SOLUTION regions in the source and docs, and cutting them out
    copier.py        `tinyres assignment make`: a student copy, a whole engine with holes
    signing.py       the copy's manifest, signed with the course key
    cases.py         the grader's cases (visible and hidden) and their expected outputs
    references.py    plain NumPy references the cases are computed with
    runner.py        the only grading code that runs in the student's process: compute, never judge
    feedback.py      comparing arrays, in words: worst element, expected vs got
    grader.py        `tinyres assignment grade`: subprocess, comparisons, table, JSON, CSV
    checks/          the cases `tinyres gradcheck` runs, one file per op family
    options.py       the options of `tinyres assignment` and `tinyres gradcheck` (for the CLI)
    command.py       those two commands: make / grade / list, and the gradcheck table

Imports point down: this package uses the engine; nothing in the engine imports it. A student
copy keeps assignments.py, holes.py, signing.py, options.py, command.py and checks/ (the
grader's side is left out).
"""
