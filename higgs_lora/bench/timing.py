"""Synchronised wall time and peak CUDA memory for gpu-check's phases (no-ops off CUDA)."""

from __future__ import annotations

import time

import torch


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_gb(device: str):
    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def step_timer(device: str):
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Wall time of every optimizer step (synchronised), the peak memory over the steps, and the
        dataset the run trained on.

        The peak counter is reset when training begins (model, optimizer state and data are in place)
        and read after every step; the maximum of those reads is the steps' peak whatever else happens
        in between (logging, evaluation) as long as nothing resets the counter, which training's own
        memory log no longer does."""

        def __init__(self):
            self.times, self.dataset, self.peak_bytes = [], None, None

        def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
            self.dataset = getattr(train_dataloader, "dataset", None)
            reset_peak(device)

        def on_step_begin(self, *args, **kwargs):
            sync(device)
            self._t = time.perf_counter()

        def on_step_end(self, *args, **kwargs):
            sync(device)
            self.times.append(time.perf_counter() - self._t)
            if device.startswith("cuda"):
                self.peak_bytes = max(self.peak_bytes or 0, torch.cuda.max_memory_allocated())

        @property
        def peak_gb(self):
            return None if self.peak_bytes is None else round(self.peak_bytes / 2**30, 2)

    return StepTimer()
