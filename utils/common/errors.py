"""The one base class of the errors meant for users.

Every refusal this project raises on purpose (a bad dataset folder, a weight file that
cannot be used, an output that cannot be written, a metric run that cannot be scored)
derives from :class:`FSANetError`, so the scripts catch that class and show its message
in one line; anything else is a bug and keeps its traceback. ``FSANetError`` is a
``ValueError``, so code written against the older ``ValueError`` subclasses still works.
"""

from __future__ import annotations


class FSANetError(ValueError):
    """A refusal meant for the user: the message names the file or flag and the fix."""


class ConfigError(FSANetError):
    """A flag, config value or input the code cannot use (e.g. ``--rates`` giving size 0)."""


__all__ = ["ConfigError", "FSANetError"]
