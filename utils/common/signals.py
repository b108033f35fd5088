"""Ctrl-C and SIGTERM (what SLURM, Kubernetes and ``timeout`` send) as one clean stop.

:func:`install_stop_handlers` makes both signals raise :class:`Stopped` (a
``KeyboardInterrupt``), so every script's Ctrl-C path also handles SIGTERM. Two
things a plain ``KeyboardInterrupt`` gets wrong are fixed:

* inside :func:`critical` (a checkpoint being written, and the log lines about it) the
  stop is deferred to the end of the section, so a save is never cut in half and never
  turns into a ``RuntimeError`` from torch's zip writer;
* a stop Python swallows (raised inside a callback whose exceptions are ignored, e.g. the
  after-fork hook of ``logging`` when a DataLoader starts its workers) is not lost: it
  stays pending and :func:`check_stop` raises it at the next step.
"""

from __future__ import annotations

import re
import signal
import threading
from contextlib import contextmanager
from typing import Iterable, Iterator, Optional

_pending: Optional[int] = None
_depth = 0


class Stopped(KeyboardInterrupt):
    """A stop asked for by a signal; ``signal_name`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signal_name = signal.Signals(signum).name


def _handler(signum: int, frame: object) -> None:
    global _pending
    _pending = signum
    if _depth == 0:
        raise Stopped(signum)


def install_stop_handlers() -> bool:
    """Route SIGINT and SIGTERM through :func:`_handler` (main thread only; else False)."""
    global _pending
    if threading.current_thread() is not threading.main_thread():
        return False
    _pending = None
    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    return True


@contextmanager
def stop_handlers() -> Iterator[None]:
    """:func:`install_stop_handlers` for the duration of a ``with`` block; the previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    install_stop_handlers()
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def stop_pending() -> Optional[str]:
    """The name of a signal received and not yet acted on, or None."""
    return signal.Signals(_pending).name if _pending is not None else None


#: the stop signals by the name ``strsignal`` gives them ("Terminated", "Interrupt", "Hangup")
_STOP_SIGNALS = {signal.strsignal(s): s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP) if signal.strsignal(s)}


def stop_behind(error: BaseException) -> Optional[Stopped]:
    """The stop an error really is, or None: a worker process killed by SIGTERM, SIGINT or
    SIGHUP (``timeout``, SLURM's ``scancel`` and a terminal's Ctrl-C signal the whole process
    group, so a DataLoader worker can die of the signal before this process acts on it), or
    any error raised while a stop signal is pending here."""
    if _pending is not None:
        return Stopped(_pending)
    match = re.search(r"killed by signal: ([A-Za-z ]+)", str(error))
    if match and match.group(1).strip() in _STOP_SIGNALS:
        return Stopped(_STOP_SIGNALS[match.group(1).strip()])
    return None


def check_stop() -> None:
    """Raise :class:`Stopped` if a signal arrived that has not stopped the program yet."""
    global _pending
    if _pending is not None and _depth == 0:
        signum, _pending = _pending, None
        raise Stopped(signum)


@contextmanager
def critical() -> Iterator[None]:
    """A section a stop must not cut: a signal received inside is raised when it ends."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
    check_stop()


def start_iterating(iterable: Iterable) -> Iterator:
    """``iter(iterable)`` with stops deferred until it is built: a DataLoader with workers
    that is stopped while it starts them is left half-built, and its clean-up then prints a
    traceback ("'_MultiProcessingDataLoaderIter' object has no attribute '_shutdown'")."""
    with critical():
        return iter(iterable)


__all__ = [
    "Stopped",
    "check_stop",
    "critical",
    "install_stop_handlers",
    "start_iterating",
    "stop_behind",
    "stop_handlers",
    "stop_pending",
]
