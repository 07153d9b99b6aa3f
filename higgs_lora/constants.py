"""Facts and formulas several stages read: one place each, importable without torch or numpy.

The bottom of the import order (tests/test_imports.py): this module imports nothing from the package.
"""

from __future__ import annotations

import math

# Higgs audio tokenizer: 25 code columns per second of audio, so one new token is 40 ms of speech.
FRAMES_PER_SECOND = 25

# Label of a position the loss skips (torch's cross_entropy default; boson's collator writes it too).
IGNORE_INDEX = -100

# Two different silence facts, not one threshold written twice:
# - a training clip whose RMS over the whole file is below CLIP_SILENCE_DBFS is rejected as silent
#   (data/audio_check.py); quiet but real speech averages far above it, digital silence is -inf;
# - a 10 ms frame whose RMS is below FRAME_SILENCE_DBFS counts as silence when measuring a generated
#   clip's leading/trailing pauses (eval/signal.py), the level the shipped assets were trimmed at.
CLIP_SILENCE_DBFS = -60.0
FRAME_SILENCE_DBFS = -40.0

# New-token caps, so a model that never emits its stream EOS stops anyway. Inference knows only the
# text: read speech runs at 10-20 characters per second, 5 columns (0.2 s) per character is slower
# than any normal reading, and TEXT_CAP_SLACK_FRAMES (4 s) covers pauses, very short texts and the
# stream's BOS and delay-pattern columns. Evaluation knows the target clip's length.
TEXT_CAP_FRAMES_PER_CHAR = 5
TEXT_CAP_SLACK_FRAMES = 100


def _capped(cap: int, max_new_tokens: int | None) -> int:
    return min(cap, max_new_tokens) if max_new_tokens else cap


def text_token_cap(text: str, max_new_tokens: int | None = None) -> int:
    """min(max_new_tokens, 5 x characters + 100): the new-token budget of one chunk of text."""
    return _capped(TEXT_CAP_FRAMES_PER_CHAR * len(text.strip()) + TEXT_CAP_SLACK_FRAMES, max_new_tokens)


def target_token_cap(
    max_new_tokens: int, max_length_ratio: float, target_seconds: float, frames_per_second: int, num_codebooks: int
) -> int:
    """max_new_tokens, or less when the target clip is short: a model still talking after
    max_length_ratio x the target has failed to stop. The delay pattern adds num_codebooks - 1
    columns and the stream BOS/EOS two more. A ratio <= 0 turns the cap off."""
    if max_length_ratio <= 0:
        return max_new_tokens
    return min(max_new_tokens, math.ceil(max_length_ratio * target_seconds * frames_per_second) + num_codebooks + 2)


# Training FLOPs, the planner's convention (train/step_estimate.py), which gpu-check's MFU now shares so the
# two figures compare: a multiply-add is 2 FLOPs, so a forward costs 2 x the active parameters per
# token (+ attention scores where counted), and a training step 3 x the forward (the backward counted
# as twice the forward), plus one more forward of the layers under gradient checkpointing.
FLOPS_PER_MULTIPLY_ADD = 2
TRAIN_FLOPS_PER_FORWARD_FLOP = 3


def training_flops(forward_flops: float, recomputed_forward_flops: float = 0.0) -> float:
    """FLOPs of one training step from its forward's FLOPs (and the forward recomputed by checkpointing)."""
    return TRAIN_FLOPS_PER_FORWARD_FLOP * forward_flops + recomputed_forward_flops


# Dense bf16 tensor peak with fp32 accumulation (what torch uses), without sparsity, in FLOP/s, keyed by
# the model as it appears in torch.cuda.get_device_properties().name.
GPU_PEAK_FLOPS = {
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "A10": 125e12,
    "L4": 121e12,
    "RTX 4090": 165e12,
    "RTX 5090": 209e12,
}


def peak_flops_for(device_name: str) -> float | None:
    """The card's peak from its device name; the longest matching key wins ("L40S" over "L4"); None if unknown."""
    matches = [k for k in GPU_PEAK_FLOPS if k in device_name]
    return GPU_PEAK_FLOPS[max(matches, key=len)] if matches else None
