"""The package as installed: kernels/ installs as tinyres.kernels, never as a top-level `kernels`,
and every package of the source tree is in the wheel."""
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_installs_the_kernels_inside_tinyres(tmp_path):
    """Build the wheel from a clean copy of the sources, install it into a fresh venv (which sees
    this interpreter's numpy and numba), import tinyres.kernels.cpu from it."""
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

    environment = tmp_path / "venv"
    venv.create(environment, system_site_packages=True, with_pip=False)
    python = str(environment / "bin" / "python")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    # the venv runs this interpreter's pip (a system site package); no network needed
    subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
                   check=True, cwd=tmp_path, env=env)
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.run([python, "-c", purelib], check=True, capture_output=True,
                               text=True, env=env).stdout.strip())
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
    done = subprocess.run([python, "-c", probe], check=True, capture_output=True,
                          text=True, cwd=tmp_path, env=env)
    tinyres_file, kernels_file, top_level = done.stdout.split("\n")[:3]
    assert tinyres_file.startswith(str(site)) and kernels_file.startswith(str(site))
    assert top_level == "None"
