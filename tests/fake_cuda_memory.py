"""A stand-in for CUDA's allocator counters (`torch.cuda.max_memory_allocated` and friends) on a CPU.

One process-wide peak counter, as CUDA has: `allocate`/`free` move the current allocation, the peak
follows it up, and `reset_peak_memory_stats` drops the peak to what is allocated now. Tests use it to
see who reads and who resets the one counter (training logs, gpu-check's step timer).
"""

from __future__ import annotations

import torch


class FakeCudaMemory:
    def __init__(self):
        self.allocated = 0
        self.peak = 0
        self.resets = 0

    def allocate(self, n: int) -> None:
        self.allocated += n
        self.peak = max(self.peak, self.allocated)

    def free(self, n: int) -> None:
        self.allocated -= n

    def max_memory_allocated(self, device=None) -> int:
        return self.peak

    def memory_allocated(self, device=None) -> int:
        return self.allocated

    def reset_peak_memory_stats(self, device=None) -> None:
        self.resets += 1
        self.peak = self.allocated

    def install(self, monkeypatch) -> "FakeCudaMemory":
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
        for name in ("max_memory_allocated", "memory_allocated", "reset_peak_memory_stats"):
            monkeypatch.setattr(torch.cuda, name, getattr(self, name))
        return self
