"""tools/gpu_check.sh, the GPU check for a machine with a GPU (docs/gpu.md), as far as a machine
without one can check it: it parses, refuses a wrong call with one line and exit 2, and never
writes into a folder that already holds files."""
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "gpu_check.sh"


def run(*args):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=60)


def test_the_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shellcheck_finds_nothing():
    process = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert process.returncode == 0, process.stdout


@pytest.mark.parametrize("args", [(), ("a", "b"), ("--help",)])
def test_a_wrong_call_is_one_line_and_exit_2(args):
    process = run(*args)
    assert process.returncode == 2
    assert process.stdout == "" and len(process.stderr.strip().splitlines()) == 1
    assert "folder for the logs" in process.stderr


def test_a_folder_with_files_is_refused_and_left_as_it_was(tmp_path):
    earlier = tmp_path / "summary.txt"
    earlier.write_text("an earlier run")
    process = run(str(tmp_path))
    assert process.returncode == 2 and "already holds files" in process.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["summary.txt"]
    assert earlier.read_text() == "an earlier run"


def test_a_file_in_place_of_the_folder_is_refused(tmp_path):
    target = tmp_path / "logs"
    target.write_text("not a folder")
    process = run(str(target))
    assert process.returncode == 2 and "is not a folder" in process.stderr
    assert target.read_text() == "not a folder"
