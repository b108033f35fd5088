"""Which files a command wrote: a manifest in each output folder, so that no command
overwrites, deletes or mixes into files it did not write.

A command *claims* its output folder before any work (nothing is written then). When
it records what it will write, a new or empty folder gets a manifest
(``.fsanet-outputs``: the command on its first line, then the relative path of every
file it writes). A folder that holds anything else, or another command's manifest, is
refused with the files named. In a claimed folder only files listed in the manifest
may be replaced, so a user's own file dropped in there is never touched.

Single output files (an ONNX export, a converted checkpoint) are recognised by their
content instead: :func:`check_replaceable` lets a command replace a file of the kind
it writes and refuses anything else.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Set, Union

from utils.common.fileio import TMP_PREFIX, TMP_SUFFIX, OutputError, atomic_write_text

PathLike = Union[str, os.PathLike]

MANIFEST = ".fsanet-outputs"
_HEADER = "fsanet-outputs v1"


class OwnershipError(OutputError):
    """An output would replace, delete or mix into files its command did not write."""


def _listing(names: List[str], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (f" … ({len(names)} in all)" if len(names) > limit else "")


def read_manifest(folder: PathLike) -> Optional[tuple]:
    """``(command, {relative paths})`` of ``folder``'s manifest, or None when it has none."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    lines = path.read_text(errors="replace").splitlines()
    if not lines or not lines[0].startswith(_HEADER):
        return None
    return lines[0][len(_HEADER) :].strip(), {line for line in lines[1:] if line}


class OutputFolder:
    """An output folder claimed by one command (see the module docstring)."""

    def __init__(self, folder: Path, command: str, flag: str, owned: Set[str]) -> None:
        self.folder, self.command, self.flag, self.owned = folder, command, flag, owned

    def _relative(self, path: PathLike) -> str:
        path = Path(path)
        full = path if path.is_absolute() else self.folder / path
        try:
            return full.resolve().relative_to(self.folder.resolve()).as_posix()
        except ValueError:
            raise OwnershipError(f"{self.flag} {self.folder}: {path} lies outside the output folder") from None

    def check(self, paths: Iterable[PathLike]) -> List[str]:
        """Raise naming every path that exists but was not written by this command."""
        relative = [self._relative(p) for p in paths]
        foreign = sorted(r for r in relative if r not in self.owned and (self.folder / r).exists())
        if foreign:
            raise OwnershipError(
                f"{self.flag} {self.folder}: would overwrite {_listing(foreign)}, which {self.command} did not "
                "write; move them away or choose another folder"
            )
        return relative

    def record(self, paths: Iterable[PathLike]) -> None:
        """Check ``paths`` and list them in the manifest (before they are written)."""
        new = set(self.check(paths)) - self.owned
        if new or not (self.folder / MANIFEST).is_file():
            self.owned |= new
            _write_manifest(self.folder, self.command, self.owned)

    def path(self, relative: PathLike) -> Path:
        """The path of one output file, checked and recorded."""
        self.record([relative])
        return self.folder / relative


def _write_manifest(folder: Path, command: str, owned: Set[str]) -> None:
    atomic_write_text(folder / MANIFEST, "\n".join([f"{_HEADER} {command}", *sorted(owned)]) + "\n")


def _foreign_entries(folder: Path) -> List[str]:
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.name != MANIFEST and not (p.name.startswith(TMP_PREFIX) and p.name.endswith(TMP_SUFFIX))
    )


def claim_folder(folder: PathLike, command: str, flag: str) -> OutputFolder:
    """Claim ``folder`` for ``command`` (created when missing), or raise
    :class:`OwnershipError` naming what is already there and how to proceed."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OwnershipError(f"{flag} {folder}: is a file, not a folder; give a folder path")
    manifest = read_manifest(folder) if folder.is_dir() else None
    if manifest is not None:
        owner, owned = manifest
        if owner != command:
            raise OwnershipError(f"{flag} {folder}: holds the outputs of {owner}, not of {command}; choose another folder")
        return OutputFolder(folder, command, flag, owned)
    if folder.is_dir():
        foreign = _foreign_entries(folder)
        if foreign:
            raise OwnershipError(
                f"{flag} {folder}: holds files {command} did not write ({_listing(foreign)}); "
                "choose a new or empty folder (nothing there is changed)"
            )
    return OutputFolder(folder, command, flag, set())


def check_replaceable(
    path: PathLike, flag: str, is_own_kind: Callable[[Path], bool], kind: str, inputs: Iterable[PathLike] = ()
) -> Path:
    """Allow writing ``path`` only when it does not exist or already holds a file of the
    kind this command writes (``is_own_kind``), and is none of ``inputs``."""
    path = Path(path)
    for source in inputs:
        if source is not None and Path(source).exists() and path.exists() and path.samefile(source):
            raise OwnershipError(f"{flag} {path}: is the input file; write the output under another name")
    if path.is_dir():
        raise OwnershipError(f"{flag} {path}: is a folder; give a file name")
    if path.exists() and not is_own_kind(path):
        raise OwnershipError(
            f"{flag} {path}: exists and is not {kind}; it is left as it is — choose another name or move it away"
        )
    return path
