"""gpu-check's infer phase: generation as users serve it, codec decode timed on its own.

The bf16 base loaded as `load_model` loads it, an unmerged LoRA adapter (r=64, kept in fp32 by PEFT)
loaded as `infer --lora_path` loads it, and `VoiceCloner` with the engine's own cache choice (static KV
cache + CUDA graphs on CUDA) unless gpu-check forces CUDA's choice on a CPU.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from ..constants import FRAMES_PER_SECOND
from .random_model import attention_implementation, load_check_model
from .timing import peak_gb, reset_peak, sync


def save_random_adapter(model, folder: Path):
    """Put a LoRA adapter (r=64, training's targets, random non-zero updates) on `model`, save it as training
    saves one, and return the bare base model again (the adapter is then loaded back as users load it)."""
    from ..model.load import apply_lora

    peft = apply_lora(model, r=64, alpha=128, dropout=0.0)
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.01)
    peft.save_pretrained(str(folder))
    base = peft.unload()
    if hasattr(base, "peft_config"):
        del base.peft_config  # left behind by unload; PEFT would take the reload for a second adapter
    return base


def codec_for(ctx: dict):
    """The real codec class (random weights) on CUDA; the tiny codec on CPU, where the real one's decoder
    would dominate the run. Either way decode is timed on its own."""
    from ..data.codes import TinyCodec
    from .random_codec import random_higgs_codec

    if ctx["device"].startswith("cuda"):
        return random_higgs_codec(device=ctx["device"])
    return TinyCodec()


def infer_phase(ctx: dict, columns: int) -> dict:
    from ..infer.adapter import load_adapter
    from ..infer.engine import VoiceCloner
    from ..infer.settings import GenerationSettings

    device, precision = ctx["device"], ctx["precision"]
    adapter = Path(ctx["workdir"]) / "adapter"
    model = load_check_model(ctx["model_dir"], device, precision.weights_dtype)
    model.config.use_cache = True
    model = save_random_adapter(model, adapter)
    model = load_adapter(model, str(adapter))  # unmerged: PEFT keeps the adapter in fp32, as `infer --lora_path`
    adapter_dtype = next(p.dtype for n, p in model.named_parameters() if "lora_" in n)
    codec = codec_for(ctx)
    cloner = VoiceCloner(model, ctx["tokenizer"], codec, cache=ctx["cache"])
    sample = ctx["short"][0]
    cloner.generate(sample, GenerationSettings(max_new_tokens=16, temperature=0.7, seed=0))  # warm-up
    reset_peak(device)
    sync(device)
    t0 = time.perf_counter()
    g = cloner.generate(sample, GenerationSettings(max_new_tokens=columns, temperature=0.7, seed=0))
    sync(device)
    dt = time.perf_counter() - t0
    n = int(g.raw_codes.shape[1])
    codes = g.codes
    if codes.shape[1] == 0:  # a random model may stop at once: decode what it would have said
        codes = g.raw_codes.clip(0, cloner.config.audio_codebook_size - 1).cpu().numpy()
    cloner.decode(codes[:, : min(codes.shape[1], 8)])  # warm-up
    sync(device)
    t1 = time.perf_counter()
    wav = cloner.decode(codes)
    sync(device)
    decode_s = time.perf_counter() - t1
    row = {
        "prompt_tokens": len(g.prompt_ids),
        "max_new_tokens": columns,
        "generated_columns": n,
        "seconds": round(dt, 3),
        "columns_per_s": round(n / dt, 1),
        "realtime_factor": round((n / FRAMES_PER_SECOND) / dt, 3),
        "stopped_at_eos": g.stopped,
        "peak_memory_gb": peak_gb(device),
        "adapter": "unmerged",
        "adapter_dtype": str(adapter_dtype).replace("torch.", ""),
        "base_dtype": str(precision.weights_dtype).replace("torch.", ""),
        "cache": cloner.cache_mode,
        "cuda_graphs": cloner.cuda_graphs,
        "attention": attention_implementation(cloner.net),
        "codec": type(codec).__name__,
        "decoded_columns": int(codes.shape[1]),
        "decode_seconds": round(decode_s, 4),
        "decoded_audio_s": round(len(wav) / codec.sampling_rate, 3),
        "note": "sampled (temperature 0.7, top-k 50, top-p 0.95, RAS 7/2); real-time factor = (columns / 25) s of "
        "audio per second of generation; decode_seconds is the codec alone",
    }
    del cloner, model
    return row
