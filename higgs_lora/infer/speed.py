"""Generation speed in audio columns per second: what the GPU check calls.

One new token is one audio column (40 ms at 25 frames/s), so columns/s over 25 is the real-time
factor. `measure` times `VoiceCloner.generate` on one sample (after warm-up calls, which also
absorb CUDA-graph and allocator start-up); `compare_cache_paths` measures the dynamic-cache path
and the static-cache (+ CUDA graphs on CUDA) path on the same loaded model and checks that they
give the same codes under greedy decoding.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch

from ..data.sample import CloneSample
from .engine import GenerationSettings, VoiceCloner

COLUMNS_PER_SECOND_OF_AUDIO = 25


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(cloner: VoiceCloner, sample: CloneSample, settings: GenerationSettings | None = None,
            repeats: int = 3, warmup: int = 1) -> dict:
    """Columns/s of `cloner.generate` (no text-length cap, so a long budget really runs)."""
    settings = replace(settings or GenerationSettings(max_new_tokens=512), cap_by_text=False)
    codes = cloner.prepare_inputs.reference_codes(sample)  # encode once: time the model, not the codec
    for _ in range(warmup):
        cloner.generate(sample, settings, codes=codes)
    runs = []
    last = None
    for _ in range(repeats):
        _sync(cloner.device)
        t0 = time.perf_counter()
        last = cloner.generate(sample, settings, codes=codes)
        _sync(cloner.device)
        seconds = time.perf_counter() - t0
        runs.append({"columns": int(last.raw_codes.shape[1]), "seconds": seconds})
    columns = sum(r["columns"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    cps = columns / seconds if seconds > 0 else float("nan")
    return {"cache": cloner.cache_mode, "cuda_graphs": cloner.cuda_graphs, "device": str(cloner.device),
            "columns_per_s": cps, "realtime_factor": cps / COLUMNS_PER_SECOND_OF_AUDIO,
            "runs": runs, "prompt_tokens": len(last.prompt_ids), "last_codes": last.raw_codes}


def compare_cache_paths(model, tokenizer, codec, sample: CloneSample, max_new_tokens: int = 512,
                        repeats: int = 3, cache_lengths=None) -> dict:
    """Dynamic vs static(+graphs) on one loaded model (or PeftModel), greedy, RAS off.

    Returns both measurements (without the codes), the speed-up, and whether the codes agree.
    """
    greedy = GenerationSettings(max_new_tokens=max_new_tokens, temperature=0.0, ras_win_len=0)
    dynamic = measure(VoiceCloner(model, tokenizer, codec, cache="dynamic"), sample, greedy, repeats)
    kwargs = {"cache_lengths": cache_lengths} if cache_lengths else {}
    static = measure(VoiceCloner(model, tokenizer, codec, cache="static", **kwargs), sample, greedy, repeats)
    a, b = dynamic.pop("last_codes"), static.pop("last_codes")
    return {"dynamic": dynamic, "static": static, "speedup": static["columns_per_s"] / dynamic["columns_per_s"],
            "same_codes": bool(a.shape == b.shape and np.array_equal(a, b))}
