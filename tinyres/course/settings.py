"""A course's settings, in one file the staff keep: points, time limits, visibility, release order.

    tinyres assignment make A2 --out a2 --settings course.toml
    tinyres assignment grade submissions/* --settings course.toml --csv grades.csv
    tinyres assignment gradescope A2 --settings course.toml --out autograder.zip

Every key is optional; without a file (or for a key it leaves out) the defaults are those of
tinyres/course/assignments.py and cases.py. A TOML file (Python 3.11+) or the same keys as JSON:

    release_order = ["A1", "A2", "A3", "A4"]     # what each copy leaves out (copier.py)
    hidden_seed = 1234                           # fix the hidden cases' values (default: drawn
                                                 # for each run and recorded in the results)
    [points]                                     # points per function, by task id
    im2col = 12
    [case_points.im2col]                         # weight of a case within its function, by name
    "goal: no Python loop over images, channels or pixels" = 3
    [time]
    per_function = 300                           # seconds each function may run
    total = 1200                                 # the autograder's whole budget (Gradescope's)
    [visibility]                                 # Gradescope's: visible, hidden, after_due_date,
    visible = "visible"                          # after_published
    hidden = "after_due_date"

A wrong key or value is refused in one line naming the file, the key, what was expected and
what was given.
"""
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from tinyres.course.assignments import ASSIGNMENTS, RELEASE_ORDER, TASKS

VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")


@dataclass(frozen=True)
class Settings:
    release_order: tuple = RELEASE_ORDER
    hidden_seed: int = None                      # None: drawn for each run, and recorded
    points: dict = field(default_factory=dict)           # task id -> points
    case_points: dict = field(default_factory=dict)      # task id -> {case name: weight}
    per_function: float = 300.0
    total: float = 1200.0
    visible: str = "visible"
    hidden: str = "after_due_date"
    source: str = "defaults"                     # the file read, for messages

    def points_of(self, task):
        return self.points.get(task.id, task.points)

    def weight_of(self, task_id, case):
        return self.case_points.get(task_id, {}).get(case.name, case.weight)


class SettingsError(ValueError):
    """A settings file the commands cannot use (one line: file, key, expected, given)."""


def _number(where, value, positive=True):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (positive and value <= 0) or value < 0:
        raise SettingsError(f"{where}: expected a {'positive ' if positive else ''}finite "
                            f"number, got {value!r}")
    return value


def _table(where, value):
    if not isinstance(value, dict):
        raise SettingsError(f"{where}: expected a table of keys and values, got {value!r}")
    return value


def _order(where, value):
    if (not isinstance(value, list) or sorted(value) != sorted(ASSIGNMENTS)
            or len(set(value)) != len(value)):
        raise SettingsError(f"{where}: expected every assignment once, "
                            f"e.g. {list(RELEASE_ORDER)}, got {value!r}")
    return tuple(value)


def _task_id(where, name):
    if name not in TASKS:
        raise SettingsError(f"{where}: unknown function {name!r}; the task ids are "
                            f"{', '.join(TASKS)}")
    return name


def parse(content, source="settings"):
    """Settings from the parsed content of a settings file (a dict)."""
    known = {"release_order", "hidden_seed", "points", "case_points", "time", "visibility"}
    unknown = set(content) - known
    if unknown:
        raise SettingsError(f"{source}: unknown key {sorted(unknown)[0]!r}; the keys are "
                            f"{', '.join(sorted(known))}")
    values = {"source": source}
    if "release_order" in content:
        values["release_order"] = _order(f"{source}: release_order", content["release_order"])
    if "hidden_seed" in content:
        seed = content["hidden_seed"]
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 32:
            raise SettingsError(f"{source}: hidden_seed: expected an integer in [0, 2**32), "
                                f"got {seed!r}")
        values["hidden_seed"] = seed
    points = _table(f"{source}: points", content.get("points", {}))
    values["points"] = {_task_id(f"{source}: points", k): _number(f"{source}: points.{k}", v,
                                                                  positive=False)
                        for k, v in points.items()}
    case_points = _table(f"{source}: case_points", content.get("case_points", {}))
    values["case_points"] = {
        _task_id(f"{source}: case_points", k): {
            name: _number(f"{source}: case_points.{k}.{name!r}", weight, positive=False)
            for name, weight in _table(f"{source}: case_points.{k}", cases).items()}
        for k, cases in case_points.items()}
    time = _table(f"{source}: time", content.get("time", {}))
    for key in set(time) - {"per_function", "total"}:
        raise SettingsError(f"{source}: time.{key}: unknown; expected per_function or total")
    for key in ("per_function", "total"):
        if key in time:
            values[key] = float(_number(f"{source}: time.{key}", time[key]))
    visibility = _table(f"{source}: visibility", content.get("visibility", {}))
    for key, value in visibility.items():
        if key not in ("visible", "hidden"):
            raise SettingsError(f"{source}: visibility.{key}: unknown; expected visible or "
                                f"hidden")
        if value not in VISIBILITIES:
            raise SettingsError(f"{source}: visibility.{key}: expected one of "
                                f"{', '.join(VISIBILITIES)}, got {value!r}")
        values[key] = value
    return Settings(**values)


def load(path=None):
    """The settings in `path` (TOML, or JSON when it ends in .json); the defaults for None."""
    if path is None:
        return Settings()
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise SettingsError(f"--settings {path}: cannot read it ({error.strerror or error})")
    try:
        if path.suffix == ".json":
            content = json.loads(text)
        else:
            import tomllib  # Python 3.11+; JSON works on every Python
            content = tomllib.loads(text)
    except ImportError:
        raise SettingsError(f"--settings {path}: reading TOML needs Python 3.11+; write the "
                            f"same keys as JSON (a file ending in .json)")
    except ValueError as error:                  # json.JSONDecodeError, tomllib.TOMLDecodeError
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise SettingsError(f"--settings {path}: not valid {kind} ({error})")
    return parse(_table(f"--settings {path}", content), f"--settings {path}")
