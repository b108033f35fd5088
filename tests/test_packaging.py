"""The install story: one dependency list in two files kept equal, no import-path hacks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT

tomllib = pytest.importorskip("tomllib")  # Python 3.11+


def _requirement_lines(text: str) -> list:
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_pyproject_dependencies_are_requirements_txt():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = _requirement_lines((ROOT / "requirements.txt").read_text())
    runtime = lines[: lines.index("pytest")]
    assert project["dependencies"] == runtime
    assert project["optional-dependencies"]["test"] == lines[lines.index("pytest") :]
    assert not any(line.startswith("opencv-python==") or line == "opencv-python" for line in lines)


def test_optional_features_stay_out_of_the_quick_start():
    """gradio, ONNX and the browser driver are extras; the README's install does not pull them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = " ".join(_requirement_lines((ROOT / "requirements.txt").read_text()))
    extras = project["optional-dependencies"]
    for extra, packages in (
        ("app", ["gradio"]),
        ("export", ["onnx", "onnxruntime", "onnxscript"]),
        ("browser", ["playwright"]),
    ):
        names = [re.split(r"[<>=\[]", spec)[0] for spec in extras[extra]]
        for package in packages:
            assert package in names, (extra, package)
            assert not re.search(rf"(^|\s){package}([<>=\s]|$)", base), f"{package} is in requirements.txt"


def _tracked_python_files() -> list:
    """The checkout's Python files as git sees them (tracked, or new and not ignored): a venv,
    a build folder or any other ignored folder in the checkout is not the project's code."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / name for name in listed if (ROOT / name).exists()]


def test_no_import_path_hacks_outside_tests():
    offenders = [
        str(path.relative_to(ROOT))
        for path in _tracked_python_files()
        if "tests" not in path.relative_to(ROOT).parts and re.search(r"sys\.path\.(insert|append)", path.read_text())
    ]
    assert offenders == []


def test_the_wheel_holds_every_package_and_imports_from_a_fresh_folder(tmp_path):
    """setuptools' package discovery: every subpackage of lib, models and utils is in the
    wheel, bench and tests are not, and the wheel imports on its own (not from the checkout)."""
    pytest.importorskip("setuptools")
    source = tmp_path / "source"  # the files git knows, copied: no stale build/ of the checkout can leak in
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    for name in listed:
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(source)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = wheels.glob("fsanet-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "site")
    packages = {
        str(path.parent.relative_to(ROOT)).replace(os.sep, "/")
        for path in _tracked_python_files()
        if path.name == "__init__.py" and path.relative_to(ROOT).parts[0] in ("lib", "models", "utils")
    }
    assert packages and all(f"{package}/__init__.py" in names for package in packages), sorted(packages)
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"lib", "models", "utils"}  # no bench, no tests
    probe = (
        "import lib, utils.deploy.export, utils.training.run, utils.evaluation.scoring;"
        "from lib.FSANet import FSANet; from lib.checkpoint import build_from_checkpoint;"
        "print(lib.__file__)"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert Path(run.stdout.strip()).is_relative_to(tmp_path / "site")  # the wheel's copy, not the checkout's
