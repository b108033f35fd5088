"""The optional extras of pyproject.toml: one check that a feature's packages are there,
one message that names the install command."""

from __future__ import annotations

import importlib.util

#: extra → what it installs (pyproject.toml's [project.optional-dependencies])
EXTRAS = {
    "app": "gradio",
    "export": "onnx, onnxscript, onnxruntime",
    "browser": "playwright",
}


class MissingExtraError(ImportError):
    """An optional package is not installed; the message gives the pip command."""


def install_hint(extra: str) -> str:
    return f"pip install -e .[{extra}]  ({EXTRAS[extra]})"


def require_extra(extra: str, feature: str, *modules: str) -> None:
    """Raise :class:`MissingExtraError` when any of ``modules`` cannot be imported."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtraError(f"{', '.join(missing)} not installed; {feature} needs: {install_hint(extra)}")
