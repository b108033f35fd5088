"""FSANet's network (one module per paper block) and its weights.

The project installs three top-level packages, ``lib``, ``models`` and ``utils`` (the
authors' layout). A module of your own called ``utils`` (a ``utils.py`` beside your script)
would hide this project's ``utils`` package and break its imports with an unclear error;
this check names the file instead.
"""

from __future__ import annotations

import importlib.util as _util
import os as _os

_found = _util.find_spec("utils")
_ours = _os.path.join(_os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))), "utils")
if _found is not None and not _found.submodule_search_locations:
    raise ImportError(
        f"'utils' is {_found.origin}, a module of your own, which hides FSANet's utils package ({_ours}); "
        "rename your utils.py (or move it out of the folder you run from), or install FSANet in an "
        "environment of its own"
    )
