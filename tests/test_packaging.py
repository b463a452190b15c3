"""The package as installed: kernels/ installs as tinyres.kernels, never as a top-level `kernels`,
and every package of the source tree is in the wheel."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_installs_the_kernels_inside_tinyres(tmp_path):
    """Build the wheel from a clean copy of the sources (with the setuptools and wheel that
    `.[dev]` declares), install it into a folder of its own, import tinyres.kernels.cpu from it."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc")
    for name in ("tinyres", "kernels"):
        shutil.copytree(REPO / name, source / name, ignore=skip)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(wheels)], check=True, cwd=tmp_path)
    wheel = next(wheels.glob("tinyres-*.whl"))

    # installed into a folder of its own, put first on the path of this interpreter, which
    # brings numpy and numba (what a fresh `pip install -e ".[dev]"` environment has: no venv
    # of the base Python, whose site-packages may lack them); no network needed
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                    "--target", str(site), str(wheel)], check=True, cwd=tmp_path)
    env = dict(os.environ, PYTHONPATH=str(site))
    assert (site / "tinyres" / "kernels" / "cpu" / "__init__.py").is_file()
    assert (site / "tinyres" / "kernels" / "gpu" / "__init__.py").is_file()
    assert not (site / "kernels").exists(), "a top-level `kernels` package was installed"
    # every package of the source tree is in the wheel
    for init in list((REPO / "tinyres").rglob("__init__.py")):
        package = init.parent.relative_to(REPO)
        if "__pycache__" not in package.parts:
            assert (site / package / "__init__.py").is_file(), f"{package} missing from the wheel"
    for init in (REPO / "kernels").rglob("__init__.py"):
        package = Path("tinyres") / init.parent.relative_to(REPO)
        assert (site / package / "__init__.py").is_file(), f"{package} missing from the wheel"

    probe = ("import tinyres, tinyres.kernels.cpu as k, importlib.util; "
             "print(tinyres.__file__); print(k.__file__); "
             "print(importlib.util.find_spec('kernels'))")
    done = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                          text=True, cwd=tmp_path, env=env)
    tinyres_file, kernels_file, top_level = done.stdout.split("\n")[:3]
    assert tinyres_file.startswith(str(site)) and kernels_file.startswith(str(site))
    assert top_level == "None"
