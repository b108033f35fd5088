"""Mixed precision in one place: the ``--amp`` names and the autocast context."""

from __future__ import annotations

from typing import Optional

import torch

#: ``--amp`` name → autocast dtype (None: full precision).
AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device_type: str, dtype: Optional[torch.dtype]) -> torch.autocast:
    """``torch.autocast`` for ``dtype``, disabled (fp32) when it is None."""
    return torch.autocast(device_type, dtype=dtype or torch.float32, enabled=dtype is not None)
