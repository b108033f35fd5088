"""Which files a command wrote: a manifest in each output folder, so that no command
overwrites, deletes or mixes into files it did not write; and one writer per folder.

A command *claims* its output folder before any work: it takes the folder's lock
(:mod:`utils.common.folder_lock`: a second writer is refused, the first one named) and
reads the manifest. When it records what it will write, a new or empty folder gets a
manifest (``.fsanet-outputs``, JSON lines: ``{"format": "fsanet-outputs", "version": 2,
"command": …}``, then one JSON string per file). A folder that holds anything else, or
another command's manifest, is refused with the files named. In a claimed folder only files
listed in the manifest may be replaced, so a user's own file dropped in there is never
touched.

Names are recorded **relative to the folder**, resolved once when it is claimed: the same
folder spelled relatively, absolutely, from another working directory or through a symbolic
link has the same manifest. JSON escapes any name, a newline or a byte that is not UTF-8
included (``os.fsdecode``'s surrogates round-trip). Manifests of version 1 (a plain
list, written by 1.1.0) are still read.

Single output files (an ONNX export, a converted checkpoint) are recognised by their
content instead: :func:`check_replaceable` lets a command replace a file of the kind
it writes and refuses anything else; :func:`hold_file_lock` keeps a second writer off it.
"""

from __future__ import annotations

import atexit
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Set, Tuple, Union

from utils.common import folder_lock
from utils.common.fileio import TMP_PREFIX, TMP_SUFFIX, OutputError, atomic_write_text

PathLike = Union[str, os.PathLike]

MANIFEST = ".fsanet-outputs"
#: the lock file of a claimed folder (present while a command writes there)
LOCK = ".fsanet-outputs.lock"
FORMAT, VERSION = "fsanet-outputs", 2
_HEADER_V1 = "fsanet-outputs v1"


class OwnershipError(OutputError):
    """An output would replace, delete or mix into files its command did not write."""


def _listing(names: List[str], limit: int = 4) -> str:
    shown = [repr(n) if not n.isprintable() else n for n in names[:limit]]
    return ", ".join(shown) + (f" … ({len(names)} in all)" if len(names) > limit else "")


def read_manifest(folder: PathLike) -> Optional[Tuple[str, Set[str]]]:
    """``(command, {folder-relative names})`` of ``folder``'s manifest, or None when it has none."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    lines = path.read_text(encoding="utf-8", errors="surrogateescape").split("\n")
    if lines and lines[0].startswith(_HEADER_V1):  # 1.1.0's plain list
        return lines[0][len(_HEADER_V1) :].strip(), {line for line in lines[1:] if line}
    try:
        header = json.loads(lines[0])
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            return None
        names = {json.loads(line) for line in lines[1:] if line.strip()}
    except ValueError:
        return None
    return str(header.get("command", "")), {n for n in names if isinstance(n, str)}


def _write_manifest(root: Path, command: str, owned: Set[str]) -> None:
    header = json.dumps({"format": FORMAT, "version": VERSION, "command": command})
    lines = [header, *(json.dumps(name) for name in sorted(owned))]  # ASCII: any name, escaped
    atomic_write_text(root / MANIFEST, "\n".join(lines) + "\n")


def _resolved(path: Path) -> Path:
    """An absolute ``path`` with its folders' links resolved (the file itself is not
    followed: its own name is what the manifest records)."""
    absolute = Path(os.path.abspath(path))
    return absolute.parent.resolve() / absolute.name


class OutputFolder:
    """An output folder claimed by one command (see the module docstring).

    Paths given to :meth:`check`, :meth:`record` and :meth:`path` are absolute or relative
    **to the folder** (never to the working directory: a command that builds its paths from
    a relative folder passes them through :func:`os.path.abspath` first). Use as a context
    manager (or call :meth:`release`) to give the folder's lock back."""

    def __init__(
        self, folder: Path, command: str, flag: str, owned: Set[str], lock: Optional[Path] = None, created: bool = False
    ) -> None:
        self.folder, self.command, self.flag, self.owned = folder, command, flag, owned
        self.root = folder.resolve()  # resolved once: every name is relative to this
        self.lock, self.created = lock, created

    def name_of(self, path: PathLike) -> str:
        """The folder-relative name of ``path`` (POSIX separators), or an error if it lies outside."""
        path = Path(path)
        try:
            return _resolved(path if path.is_absolute() else self.root / path).relative_to(self.root).as_posix()
        except ValueError:
            raise OwnershipError(f"{self.flag} {self.folder}: {path} lies outside the output folder") from None

    def _check_names(self, names: List[str]) -> List[str]:
        foreign = sorted(n for n in names if n not in self.owned and os.path.lexists(self.root / n))
        if foreign:
            raise OwnershipError(
                f"{self.flag} {self.folder}: would overwrite {_listing(foreign)}, which {self.command} did not "
                "write; move them away or choose another folder"
            )
        return names

    def check(self, paths: Iterable[PathLike]) -> List[str]:
        """Raise naming every path that exists but was not written by this command."""
        return self._check_names([self.name_of(p) for p in paths])

    def _record_names(self, names: List[str]) -> None:
        new = set(self._check_names(names)) - self.owned
        if new or not (self.root / MANIFEST).is_file():
            self.owned |= new
            _write_manifest(self.root, self.command, self.owned)

    def record(self, paths: Iterable[PathLike]) -> None:
        """Check ``paths`` and list them in the manifest (before they are written)."""
        self._record_names([self.name_of(p) for p in paths])

    def path(self, relative: PathLike) -> Path:
        """The path of one output file (relative to the folder), checked and recorded."""
        self.record([relative])
        return self.folder / relative

    def release(self) -> None:
        """Give the folder's lock back (idempotent); a folder the claim created and nothing
        was written into is removed again."""
        folder_lock.release_lock(self.lock)
        self.lock = None
        if self.created:
            self.created = False
            try:
                self.root.rmdir()  # only when empty
            except OSError:
                pass

    def __enter__(self) -> "OutputFolder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _foreign_entries(folder: Path) -> List[str]:
    return sorted(
        os.fsdecode(p.name)
        for p in folder.iterdir()
        if p.name not in (MANIFEST, LOCK) and not (p.name.startswith(TMP_PREFIX) and p.name.endswith(TMP_SUFFIX))
    )


def _take_lock(lock: Path, flag: str, what: str, command: str) -> Path:
    def busy(host: str, pid: int, since: str) -> str:
        return (
            f"{flag} {what}: another {command} run is writing here (pid {pid} on {host}, {since}; lock file "
            f"{lock}); wait for it to finish, stop it, or choose another {flag}"
        )

    taken = folder_lock.acquire_lock(lock, OwnershipError, busy, f"{flag} {what}")
    atexit.register(folder_lock.release_lock, taken)  # a run that ends without releasing still gives it back
    return taken


def claim_folder(folder: PathLike, command: str, flag: str) -> OutputFolder:
    """Claim ``folder`` for ``command`` (created when missing) and take its lock, or raise
    :class:`OwnershipError` naming what is already there (or who writes there) and how to proceed."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OwnershipError(f"{flag} {folder}: is a file, not a folder; give a folder path")
    manifest = read_manifest(folder) if folder.is_dir() else None
    if manifest is not None and manifest[0] != command:
        raise OwnershipError(f"{flag} {folder}: holds the outputs of {manifest[0]}, not of {command}; choose another folder")
    if manifest is None and folder.is_dir():
        foreign = _foreign_entries(folder)
        if foreign:
            raise OwnershipError(
                f"{flag} {folder}: holds files {command} did not write ({_listing(foreign)}); "
                "choose a new or empty folder (nothing there is changed)"
            )
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OwnershipError(f"{flag} {folder}: cannot be created ({error.strerror or error})") from None
    lock = _take_lock(folder / LOCK, flag, str(folder), command)
    try:
        manifest = read_manifest(folder)  # read again under the lock: a writer that just finished
        if manifest is not None and manifest[0] != command:
            raise OwnershipError(
                f"{flag} {folder}: holds the outputs of {manifest[0]}, not of {command}; choose another folder"
            )
    except BaseException:
        folder_lock.release_lock(lock)
        raise
    return OutputFolder(folder, command, flag, manifest[1] if manifest else set(), lock, created)


@contextmanager
def hold_file_lock(path: PathLike, flag: str, command: str) -> Iterator[Optional[Path]]:
    """One writer of a single output file: the lock ``.<name>.lock`` beside it while it is written."""
    path = Path(path)
    if not path.parent.is_dir():  # nothing can be written there yet; the command's own check names it
        yield None
        return
    lock = _take_lock(path.parent / f".{path.name}.lock", flag, str(path), command)
    try:
        yield lock
    finally:
        folder_lock.release_lock(lock)


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
