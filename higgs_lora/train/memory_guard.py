"""Memory that cannot surprise a user: decide before the first step, with the planner's estimate.

Before training, the longest batch the data can produce (the `batch_size` longest samples, all
padded to the longest; with `--max_tokens_per_batch`, the longest sample with as many others as the
token budget lets its batch hold) is estimated with `train.memory_estimate.estimate_memory`, the estimate `higgs-lora
plan` prints, against the GPU's memory. If it does not fit, activation checkpointing is turned on
(logged) for as few decoder layers as the batch needs (`memory_estimate.layers_to_checkpoint`: each checkpointed
layer runs its forward again in backward, so checkpointing all of them costs ~1.5x the step time
where a few may be enough); if it still does not fit with every layer checkpointed, training stops
before it starts with the longest samples and the `--batch_size` (or `--max_tokens_per_batch`) /
`--max_audio_seconds` values that would fit. `--max_audio_seconds` drops samples whose reference +
target audio is longer, listing every one.

The decision (`decide_memory`) is a pure function of sizes and a capacity, so it is tested with
small capacities on CPU; `HIGGS_LORA_GPU_MEMORY_GB` overrides the capacity (tests, shared GPUs).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Sequence

from ..constants import FRAMES_PER_SECOND
from .memory_estimate import GIB, USABLE_FRACTION, MemoryEstimate, estimate_memory, fits, layers_to_checkpoint
from .model_shape import ModelShape
from .step_estimate import estimate_step

log = logging.getLogger(__name__)

CAPACITY_ENV = "HIGGS_LORA_GPU_MEMORY_GB"  # GiB the check plans for, instead of the GPU's own memory
SHOWN = 5  # longest samples named in the message


@dataclass(frozen=True)
class SampleSize:
    index: int  # position in the training data file
    speaker: str | None
    seconds: float  # reference + target audio
    length: int  # positions the model sees (VoiceCloningDataset.lengths())

    def describe(self) -> str:
        return (
            f"#{self.index} (speaker {self.speaker or '?'}, {self.seconds:.1f} s of audio, {self.length:,} positions)"
        )


@dataclass(frozen=True)
class MemoryDecision:
    fits: bool
    checkpointed_layers: int  # what training should use: the first k decoder layers (0: none)
    turned_on_checkpointing: bool
    estimate: MemoryEstimate  # of the longest batch, with `checkpointed_layers`
    capacity: float
    message: str

    @property
    def checkpointing(self) -> bool:
        return self.checkpointed_layers > 0


def longest_batch(sizes: Sequence[SampleSize], batch_size: int, max_tokens: int = 0) -> tuple[int, int]:
    """(samples, padded length) of the longest batch the data can produce.

    `max_tokens` > 0: token-budget batches (`data.sampler`, batch_size ignored). The batch that holds the
    longest sample has at most max_tokens // its length samples (at least itself); any other batch has
    no more padded positions and a shorter length, hence less activation and attention memory.
    """
    lengths = sorted((s.length for s in sizes), reverse=True)
    if max_tokens > 0:
        return min(len(lengths), max(1, max_tokens // lengths[0])), lengths[0]
    lengths = lengths[:batch_size]
    return len(lengths), lengths[0]


def decide_memory(
    shape: ModelShape,
    sizes: Sequence[SampleSize],
    batch_size: int,
    capacity_bytes: float,
    lora_r: int = 64,
    targets: list[str] | None = None,
    checkpointing: bool = False,
    weight_bytes: int = 2,
    max_tokens: int = 0,
) -> MemoryDecision:
    """`max_tokens` > 0: token-budget batches (--max_tokens_per_batch), `batch_size` is then ignored."""
    if not sizes:
        raise ValueError("no training samples")
    kw = dict(lora_r=lora_r, targets=targets, weight_bytes=weight_bytes)

    def estimate(samples, batch, ckpt, budget=max_tokens):
        b, length = longest_batch(samples, batch, budget)
        return estimate_memory(shape, b, length, checkpointing=ckpt, **kw)

    usable = f"{USABLE_FRACTION * capacity_bytes / GIB:.1f} GiB usable of {capacity_bytes / GIB:.1f} GiB"
    b, length = longest_batch(sizes, batch_size, max_tokens)
    first = estimate(sizes, batch_size, checkpointing)
    if fits(first, capacity_bytes):
        return MemoryDecision(
            True,
            first.checkpointed_layers,
            False,
            first,
            capacity_bytes,
            f"memory check: longest batch ({b} x {length:,} positions) needs ~{first.total / GIB:.1f} GiB; {usable}",
        )
    if not checkpointing:
        k = layers_to_checkpoint(shape, b, length, capacity_bytes, **kw)
        if k is not None:
            ckpt = estimate(sizes, batch_size, k)
            slower = (
                estimate_step(shape, b, length, lora_r, targets, k).flops
                / estimate_step(shape, b, length, lora_r, targets, 0).flops
            )
            return MemoryDecision(
                True,
                k,
                True,
                ckpt,
                capacity_bytes,
                f"memory check: the longest batch ({b} x {length:,} positions) needs ~{first.total / GIB:.1f} GiB "
                f"without activation checkpointing ({usable}); turning activation checkpointing ON for "
                f"{k} of {shape.layers} decoder layers (~{ckpt.total / GIB:.1f} GiB; the planner's FLOP "
                f"count puts steps ~{slower:.2f}x slower; all layers measured ~1.5x on an H200)",
            )
    worst = estimate(sizes, batch_size, True)
    longest = sorted(sizes, key=lambda s: s.length, reverse=True)[: max(b, SHOWN)]
    fixes = []
    if max_tokens > 0:  # a smaller budget: fewer samples beside the longest one
        budget = next(
            (
                n * length
                for n in range(b - 1, 0, -1)
                if fits(estimate(sizes, batch_size, True, n * length), capacity_bytes)
            ),
            None,
        )
        if budget:
            fixes.append(f"--max_tokens_per_batch {budget}")
    else:
        fitting_batch = next(
            (n for n in range(batch_size - 1, 0, -1) if fits(estimate(sizes, n, True), capacity_bytes)), None
        )
        if fitting_batch:
            fixes.append(f"--batch_size {fitting_batch}")
    limit = max_audio_seconds_that_fits(sizes, batch_size, capacity_bytes, lambda s, n: estimate(s, n, True))
    if limit is not None:
        dropped = sum(s.seconds > limit for s in sizes)
        fixes.append(f"--max_audio_seconds {limit:g} (drops {dropped} of {len(sizes)} samples)")
    advice = (
        "Settings that fit (with activation checkpointing): " + " or ".join(fixes)
        if fixes
        else "No batch size or audio limit fits: use a GPU with more memory."
    )
    message = (
        f"the longest batch ({b} x {length:,} positions) does not fit in GPU memory even with activation "
        f"checkpointing: ~{worst.total / GIB:.1f} GiB estimated, {usable}. Longest samples: "
        + "; ".join(s.describe() for s in longest)
        + f". {advice}"
    )
    return MemoryDecision(False, shape.layers, not checkpointing, worst, capacity_bytes, message)


def max_audio_seconds_that_fits(sizes, batch_size, capacity_bytes, estimate) -> float | None:
    """The largest audio limit (0.1 s steps) whose remaining samples' longest batch fits, or None."""
    for limit in sorted({s.seconds for s in sizes}, reverse=True):
        kept = [s for s in sizes if s.seconds <= limit]
        if fits(estimate(kept, batch_size), capacity_bytes):
            # round down to 0.1 s but never below the longest sample kept
            rounded = math.floor(limit * 10) / 10
            return rounded if all(s.seconds <= rounded for s in kept) else limit
    return None


# ---------------------------------------------------------------------------------------------
# The recipe's side


def drop_long_samples(
    samples: list, max_audio_seconds: float | None, indices: list[int] | None = None
) -> tuple[list, list[int]]:
    """Samples whose reference + target audio is at most `max_audio_seconds` (from the file headers),
    and their indices in the data file (`indices`: those of `samples`, default 0..n-1). Each dropped
    sample is listed in the log, never silently."""
    indices = list(indices) if indices is not None else list(range(len(samples)))
    if max_audio_seconds is None:
        return list(samples), indices
    if max_audio_seconds <= 0:
        raise ValueError(f"--max_audio_seconds must be positive, got {max_audio_seconds}")
    from ..data.audio import audio_duration

    kept, kept_indices, dropped = [], [], []
    for index, sample in zip(indices, samples):
        seconds = audio_duration(sample.ref_audio) + (
            audio_duration(sample.target_audio) if sample.target_audio else 0.0
        )
        if seconds > max_audio_seconds:
            dropped.append(f"#{index} (speaker {sample.speaker or '?'}, {seconds:.1f} s)")
        else:
            kept.append(sample)
            kept_indices.append(index)
    if dropped:
        log.warning(
            "--max_audio_seconds %g: dropped %d of %d samples with longer reference + target audio: %s",
            max_audio_seconds,
            len(dropped),
            len(samples),
            ", ".join(dropped),
        )
    if not kept:
        raise ValueError(f"--max_audio_seconds {max_audio_seconds:g} drops every sample ({len(samples)})")
    return kept, kept_indices


def sample_sizes(dataset, indices: Sequence[int] | None = None) -> list[SampleSize]:
    """Per sample of a VoiceCloningDataset: file index, speaker, audio seconds and model positions."""
    indices = list(range(len(dataset))) if indices is None else list(indices)
    sizes = []
    for i, (sample, length) in enumerate(zip(dataset.samples, dataset.lengths())):
        paths = [p for p in (sample.ref_audio, sample.target_audio) if p]
        seconds = sum(dataset.frames(p) for p in paths) / FRAMES_PER_SECOND
        sizes.append(SampleSize(indices[i], sample.speaker, seconds, length))
    return sizes


def gpu_capacity(device: str | None) -> float | None:
    """Bytes this process may use: HIGGS_LORA_GPU_MEMORY_GB, else free + already reserved on `device`
    (CUDA), else None."""
    if os.environ.get(CAPACITY_ENV):
        try:
            return float(os.environ[CAPACITY_ENV]) * GIB
        except ValueError:
            raise ValueError(f"{CAPACITY_ENV}={os.environ[CAPACITY_ENV]!r} is not a number of GiB") from None
    if not device or not str(device).startswith("cuda"):
        return None
    import torch

    free, total = torch.cuda.mem_get_info(device)
    return float(min(total, free + torch.cuda.memory_reserved(device)))


CHECKPOINTING_MODES = ("auto", "on", "off")


def checkpointing_mode(value) -> str:
    """--use_gradient_checkpointing as auto | on | off. The boolean of earlier versions: True was the
    bare flag (on); False let the guard turn it on when needed (auto)."""
    if isinstance(value, bool):
        return "on" if value else "auto"
    if value not in CHECKPOINTING_MODES:
        raise ValueError(f"--use_gradient_checkpointing {value!r}: use auto, on or off")
    return value


def check_memory(
    cfg, model_config, dataset, device: str | None, weight_bytes: int, indices: Sequence[int] | None = None
) -> int:
    """The recipe's pre-flight check; returns how many decoder layers to checkpoint (the first k; 0: none)
    (`cfg.use_gradient_checkpointing`: auto = as many as the longest batch needs, on = all, off = none).
    Raises ValueError (before any step) when the longest batch cannot fit."""
    mode = checkpointing_mode(cfg.use_gradient_checkpointing)
    config = model_config.to_dict() if hasattr(model_config, "to_dict") else model_config
    every_layer = config["text_config"]["num_hidden_layers"]
    capacity = gpu_capacity(device)
    if capacity is None:
        log.debug("memory check skipped: no GPU (set %s to plan for one)", CAPACITY_ENV)
        return every_layer if mode == "on" else 0
    shape = ModelShape.from_config(config)
    decision = decide_memory(
        shape,
        sample_sizes(dataset, indices),
        cfg.batch_size,
        capacity,
        cfg.lora_r,
        cfg.lora_targets,
        mode == "on",
        weight_bytes,
        cfg.max_tokens_per_batch,
    )
    if mode == "off" and decision.checkpointing:
        raise ValueError(
            f"{decision.message.split('; turning')[0] if decision.fits else decision.message}; "
            f"--use_gradient_checkpointing off forbids the activation checkpointing it needs: "
            f"use --use_gradient_checkpointing auto (or on), or a smaller batch"
        )
    if not decision.fits:
        raise ValueError(decision.message)
    (log.warning if decision.turned_on_checkpointing else log.info)(decision.message)
    return decision.checkpointed_layers
