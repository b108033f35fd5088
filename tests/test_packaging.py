"""The install story: one dependency list in two files kept equal, no import-path hacks."""

from __future__ import annotations

import re

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


def test_no_import_path_hacks_outside_tests():
    offenders = [
        str(path.relative_to(ROOT))
        for path in ROOT.rglob("*.py")
        if ".venv" not in path.parts
        and "tests" not in path.relative_to(ROOT).parts
        and re.search(r"sys\.path\.(insert|append)", path.read_text())
    ]
    assert offenders == []
