"""Which process of a torchrun launch this is, read from the environment: usable before torch or Trainer exist."""

from __future__ import annotations

import os


def is_rank_zero() -> bool:
    """Rank 0 of a torchrun launch (or a plain single process)."""
    return int(os.environ.get("RANK", "0")) == 0
