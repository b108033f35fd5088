"""The web app's limits, by name (no torch or gradio imported: ``app.py -h`` shows them)."""

from __future__ import annotations

#: the default upper bound on an upload's pixels (a 12-megapixel photo is 12e6; app.py --max_pixels)
MAX_PIXELS = 60_000_000
#: how long an upload's result files are kept (seconds; app.py --keep_results)
KEEP_RESULTS_S = 3600.0
