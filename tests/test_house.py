"""The house rules that hold over the whole tree (docs/contributing.md): no module reaches into
another's private names, library code changes nothing of the user's process (matplotlib's
backend, the environment), and every model name is a function grep can find."""
import ast
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("tinyres", "kernels")                            # what `pip install tinyres` installs
EVERYTHING = LIBRARY + ("tools", "examples", "docs")        # every module of the repository


def python_files(folders):
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def parse(path):
    return ast.parse(path.read_text(), str(path))


def is_private(name):
    return name.startswith("_") and not name.startswith("__")


def private_reach_ins(tree):
    """(line, what) for every private name this module takes from another tinyres module:
    ``from tinyres.x import _y`` (or a relative import), and ``m._y`` where m was bound by
    importing from tinyres."""
    imported, found = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or
                                                 (node.module or "").startswith("tinyres")):
            for alias in node.names:
                if is_private(alias.name):
                    module = "." * node.level + (node.module or "")
                    found.append((node.lineno, f"from {module} import {alias.name}"))
                imported.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            imported.update(alias.asname or alias.name.split(".")[0] for alias in node.names
                            if alias.name.startswith("tinyres"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in imported:
                found.append((node.lineno, f"{ast.unparse(node.value)}.{node.attr}"))
    return sorted(found)


def test_no_module_takes_another_modules_private_names():
    """What another room uses is public and documented (dispatch.fast_kernels_available,
    backend.require_cupy, batch norm's BatchNormBase and per_channel, ...). Tests may reach in."""
    found = [f"{path.relative_to(ROOT)}:{line}: {what}" for path in python_files(EVERYTHING)
             for line, what in private_reach_ins(parse(path))]
    assert found == [], "private names taken from another module:\n" + "\n".join(found)


def test_the_private_name_check_sees_each_kind_of_reach_in():
    source = ("from tinyres.functional.batchnorm import _per_channel\n"
              "from .threads import _helpers\n"
              "from tinyres import dispatch\n"
              "import tinyres.backend as backend\n"
              "dispatch._kernel_module('cpu'); backend._current; tinyres_thing._fine\n"
              "from tinyres.models import vgg as _vgg_family\n")
    assert [what for _, what in private_reach_ins(ast.parse(source))] == [
        "from tinyres.functional.batchnorm import _per_channel", "from .threads import _helpers",
        "backend._current", "dispatch._kernel_module"]


def process_changes(tree):
    """(line, what) for every call in a module that changes the process for everyone in it:
    matplotlib's backend (matplotlib.use, pyplot's switch_backend, or pyplot at all: its
    figures are global state) and the environment (os.environ written, os.putenv)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names] \
                if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            if any(name == "matplotlib.pyplot" for name in names):
                found.append((node.lineno, "imports matplotlib.pyplot"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            call = ast.unparse(node.func)
            if (call in ("matplotlib.use", "mpl.use", "os.putenv", "os.unsetenv")
                    or call.endswith("switch_backend")
                    or re.fullmatch(r"os\.environ\.(update|setdefault|pop|popitem|clear)", call)):
                found.append((node.lineno, call))
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                if isinstance(target, ast.Subscript) and ast.unparse(target.value) == "os.environ":
                    found.append((node.lineno, f"writes {ast.unparse(target)}"))
    return sorted(found)


def test_library_code_leaves_the_users_process_alone():
    """Drawing a figure from a notebook must not switch its backend (a Figure with its own Agg
    canvas, tinyres/plotting.py); set_backend('cudasim') sets Numba's config, not os.environ.
    The examples and docs/figures scripts draw the same way (a lesson may run in a notebook)."""
    found = [f"{path.relative_to(ROOT)}:{line}: {what}"
             for path in python_files(LIBRARY + ("examples", "docs"))
             for line, what in process_changes(parse(path))]
    assert found == [], "process-wide changes in library code:\n" + "\n".join(found)


def test_the_process_change_check_sees_each_kind():
    source = ("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
              "from matplotlib import pyplot\nos.environ['A'] = '1'\n"
              "os.environ.setdefault('B', 1)\ndel os.environ['C']\n"
              "env = dict(os.environ, D='1')\nos.environ.get('E')\n")
    assert [line for line, _ in process_changes(ast.parse(source))] == [2, 3, 4, 5, 6, 7]


def test_drawing_keeps_the_backend_the_user_chose(tmp_path):
    """graph.draw and the training curves draw off screen without touching pyplot's backend."""
    matplotlib = pytest.importorskip("matplotlib")
    import tinyres
    from tinyres import graph
    from tinyres.train.curves import plot_run
    before = matplotlib.get_backend()
    matplotlib.rcParams["backend"] = "svg"               # a user's choice (not Agg)
    try:
        x = tinyres.tensor([1.0, 2.0], requires_grad=True)
        graph.draw((x * x).sum(), tmp_path / "graph.png")
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "iterations.csv").write_text(
            "iteration,lr,train_loss,train_error\n1,0.1,2.3,0.9\n2,0.1,2.2,0.85\n")
        (tmp_path / "run" / "metrics.csv").write_text(
            "epoch,iteration,lr,train_loss,train_error,test_loss,test_error\n"
            "1,2,0.1,2.2,0.85,2.1,0.8\n")
        plot_run(tmp_path / "run", tmp_path / "curves.png", "a run")
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.rcParams["backend"] = before
    for image in ("graph.png", "curves.png"):
        assert (tmp_path / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_model_name_is_a_function_grep_finds():
    """models.resnet20 is a def of its family module (not made by globals().update), and the
    registry's table holds those same functions."""
    from tinyres import models
    sources = {path: path.read_text() for path in (ROOT / "tinyres" / "models").glob("*.py")}
    for name in models.list_models():
        builder = getattr(models, name)
        assert inspect.isfunction(builder) and builder.__name__ == name, name
        assert models.MODELS[name] is builder, name
        defined_in = [path.name for path, text in sources.items()
                      if re.search(rf"^def {name}\(", text, re.MULTILINE)]
        assert defined_in == [Path(inspect.getsourcefile(builder)).name], name
    assert "globals()" not in sources[ROOT / "tinyres" / "models" / "__init__.py"]


def test_the_gradcheck_cases_are_the_courses():
    """The engine's checker holds no table; the course room registers its cases in its own."""
    import tinyres.gradcheck
    from tinyres.course.checks import REGISTRY
    assert not hasattr(tinyres.gradcheck, "REGISTRY") and not hasattr(tinyres.gradcheck,
                                                                       "register")
    assert {"conv2d", "max_pool2d", "batch_norm (training)"} <= set(REGISTRY)


def test_what_the_bench_asks_the_engine_is_public():
    from tinyres import backend, dispatch
    numba_imports = True
    try:
        import numba  # noqa: F401
    except ImportError:
        numba_imports = False
    assert dispatch.fast_kernels_available() is numba_imports
    try:
        cupy = backend.require_cupy()
    except backend.BackendError as err:
        assert "cupy" in str(err).lower()
    else:
        assert cupy.__name__ == "cupy"
