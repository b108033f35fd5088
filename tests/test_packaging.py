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


def test_no_import_path_hacks_outside_tests():
    offenders = [
        str(path.relative_to(ROOT))
        for path in ROOT.rglob("*.py")
        if ".venv" not in path.parts
        and "tests" not in path.relative_to(ROOT).parts
        and re.search(r"sys\.path\.(insert|append)", path.read_text())
    ]
    assert offenders == []
