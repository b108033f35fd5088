"""The HCE conventions eval.py can follow, by name (no metric library imported: ``-h`` lists them)."""

from __future__ import annotations

#: the binarisation rules eval.py offers (``--hce_rule``).
HCE_RULES = ("isnet", "pysod")
#: one line per rule, for reports.
HCE_RULE_TEXT = {
    "isnet": "HCE as IS-Net's hce_metric_main.py: map > 128, mask > 128 on the raw 8-bit values",
    "pysod": "HCE as pysodmetrics' default: map min-max normalised then > 0.5, mask > 128",
}
