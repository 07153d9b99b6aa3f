"""How the code-cache build is shared across torchrun ranks: which rank encodes a path, and the barrier.

Each rank encodes the paths whose path hash falls to it (`path_owner`), then waits for the others at a
barrier on a gloo group with a long timeout (encoding a share can take hours).
"""

from __future__ import annotations

import hashlib
import os


def path_owner(path: str, world_size: int) -> int:
    """The rank that encodes `path`: a stable hash of the path, so shares are balanced and fixed."""
    return int(hashlib.sha1(path.encode("utf-8")).hexdigest()[:8], 16) % world_size


def distributed_context():
    """(rank, world_size, barrier) from torch.distributed when initialised, else (0, 1, None)."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return 0, 1, None
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return 0, 1, None
    from datetime import timedelta

    # Encoding a share can take hours; the default group's timeout (10-30 min) would kill the wait.
    group = dist.new_group(backend="gloo", timeout=timedelta(days=2))
    return dist.get_rank(), dist.get_world_size(), lambda: dist.barrier(group=group)


def start_distributed(timeout_s: int = 1800) -> None:
    """Under torchrun, start the process group now, exactly as Trainer would later (accelerate's
    PartialState, default backend, TrainingArguments' default ddp_timeout), so the cache build before
    training can be shared out; Trainer then finds it started. No-op in a single process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    from datetime import timedelta

    from accelerate import PartialState

    PartialState(timeout=timedelta(seconds=timeout_s))
