"""The KV caches generation runs on: the static/dynamic choice, the static buckets, CUDA graphs.

On CUDA, generation runs through static KV-cache buckets (one `StaticCache` per length, layers =
text layers + DualFFN layers) with CUDA graphs captured once per loaded model
(`HiggsAudioModel.capture_model`), the same mechanism as boson's serve engine; the dynamic cache
(plain `generate`) is 4-6x slower there. On CPU the dynamic cache is used (the static path works
there too and gives the same codes; the tests run it without graphs).

Limits: the caches and graphs are built at batch size 1; a call whose prompt + new tokens do not
fit the largest bucket falls back to the dynamic cache (with a warning), it is not split.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from copy import deepcopy
from typing import Sequence

import torch

log = logging.getLogger(__name__)

CACHE_MODES = ("auto", "static", "dynamic")

# The serve engine's default buckets; the sequence (prompt with its audio columns + new tokens) must
# fit the largest, or that call falls back to the dynamic cache.
DEFAULT_CACHE_LENGTHS = (1024, 4096, 8192)


def cache_mode(cache: str, device: torch.device) -> str:
    """The cache a VoiceCloner runs on: "auto" is static on CUDA, dynamic elsewhere; the others as asked."""
    if cache not in CACHE_MODES:
        raise ValueError(f"cache must be auto, static or dynamic, not {cache!r}")
    if cache == "auto":
        return "static" if device.type == "cuda" else "dynamic"
    return cache


def build_caches(config, lengths: Sequence[int], device: torch.device, dtype: torch.dtype) -> OrderedDict:
    """One batch-1 `StaticCache` per length, shortest first, sized for `config` (a HiggsAudioConfig)."""
    from transformers.cache_utils import StaticCache

    cache_config = deepcopy(config.text_config)
    # DualFFN layers keep their own key/value entries after the text layers' (as the serve engine sizes it).
    cache_config.num_hidden_layers += len(config.audio_dual_ffn_layers or [])
    return OrderedDict(
        (
            length,
            StaticCache(config=cache_config, batch_size=1, max_cache_len=length, device=device, dtype=dtype),
        )
        for length in sorted(lengths)
    )


def capture_graphs(net, caches: OrderedDict) -> None:
    """Once per loaded model: one graph per bucket for audio and for text decode steps.

    `capture_model` builds its dummy hidden states in `config.torch_dtype`, which is the dtype the
    weights are stored in, not the one they were loaded in (an fp32 merge or the fp32 tiny model
    loaded as bf16 on CUDA): capture would fail with a dtype mismatch. The config says the loaded
    dtype for the capture only.
    """
    config = net.config
    stored = config.torch_dtype
    config.torch_dtype = net.embed_tokens.weight.dtype
    try:
        net.capture_model(caches.values())
    finally:
        config.torch_dtype = stored


def merged_length(inputs: dict) -> int:
    """Positions the prompt takes in the KV cache: each audio placeholder token becomes its columns."""
    n_segments = len(inputs["audio_out_ids_start"]) if "audio_out_ids_start" in inputs else 0
    columns = inputs["audio_out_ids"].shape[1] if "audio_out_ids" in inputs else 0
    return int(inputs["input_ids"].shape[1]) - n_segments + int(columns)


def caches_for(caches: OrderedDict | None, inputs: dict, budget: int) -> OrderedDict | None:
    """The static buckets, reset, for a call of `budget` new tokens; None means the dynamic cache
    (no static caches, or the sequence would not fit the largest bucket)."""
    if caches is None:
        return None
    needed = merged_length(inputs) + budget
    largest = next(reversed(caches))
    if needed > largest:
        log.warning(
            "prompt + %d new tokens need %d cache positions, more than the largest static cache (%d): "
            "this call uses the dynamic cache",
            budget,
            needed,
            largest,
        )
        return None
    for cache in caches.values():
        cache.reset()
    return caches
