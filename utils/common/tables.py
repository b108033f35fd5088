"""Adding an entry to one of the project's tables (backbones, losses, metrics): one rule for all."""

from __future__ import annotations

from typing import Dict, TypeVar

Entry = TypeVar("Entry")


def add_entry(table: Dict[str, Entry], name: str, entry: Entry, what: str, replace: bool = False) -> Entry:
    """``table[name] = entry``, refusing to redefine a name unless ``replace``; returns ``entry``."""
    if name in table and not replace:
        raise ValueError(f"{what} {name!r} is already registered; pass replace=True to redefine it")
    table[name] = entry
    return entry


__all__ = ["add_entry"]
