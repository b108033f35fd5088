"""Mixed precision in one place: the ``--amp`` names and the autocast context.

``AMP_CHOICES`` needs no torch (the scripts build their ``-h`` from it); ``AMP_DTYPES`` and
:func:`autocast` import torch when first used."""

from __future__ import annotations

from typing import Any, Optional

#: the ``--amp`` names.
AMP_CHOICES = ("none", "bf16", "fp16")


def __getattr__(name: str) -> Any:
    if name == "AMP_DTYPES":  # ``--amp`` name → autocast dtype (None: full precision)
        import torch

        return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def autocast(device_type: str, dtype: Optional[Any]) -> Any:
    """``torch.autocast`` for ``dtype``, disabled (fp32) when it is None."""
    import torch

    return torch.autocast(device_type, dtype=dtype or torch.float32, enabled=dtype is not None)
