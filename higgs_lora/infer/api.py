"""The design's Python entry point, `generate_arabic_speech`, and the cloners it keeps loaded.

Where the model, adapter and codec come from: the keyword arguments, else the environment
(HIGGS_LORA_MODEL, HIGGS_LORA_LORA_PATH, HIGGS_LORA_AUDIO_TOKENIZER), else the training run's
settings (`infer.run_settings`), else `higgs_lora.defaults`. Limits: at most two cloners stay
loaded (the oldest is dropped), keyed by (model, adapter, codec, device); nothing is thread-safe.
"""

from __future__ import annotations

import os

import numpy as np

from ..data.sample import CloneSample
from ..data.text import normalize_sample
from .engine import VoiceCloner
from .inputs import check_text
from .settings import ChunkSettings, GenerationSettings

MODEL_ENV, LORA_ENV, CODEC_ENV = "HIGGS_LORA_MODEL", "HIGGS_LORA_LORA_PATH", "HIGGS_LORA_AUDIO_TOKENIZER"
_CLONERS: dict = {}


def get_cloner(model_path: str, lora_path: str | None, audio_tokenizer: str, device: str | None = None) -> VoiceCloner:
    """One VoiceCloner per (model, adapter, codec, device), loaded (and CUDA graphs captured) once."""
    key = (model_path, lora_path, audio_tokenizer, device)
    if key not in _CLONERS:
        if len(_CLONERS) >= 2:
            _CLONERS.pop(next(iter(_CLONERS)))
        _CLONERS[key] = VoiceCloner.load(model_path, lora_path, audio_tokenizer, device=device)
    return _CLONERS[key]


def generate_arabic_speech(
    ref_text: str,
    ref_audio_path: str,
    target_text: str,
    temperature: float = 0.3,
    top_k: int = 50,
    top_p: float = 0.95,
    seed: int | None = None,
    *,
    model_path: str | None = None,
    lora_path: str | None = None,
    audio_tokenizer: str | None = None,
    system_prompt: str | None = None,
    max_new_tokens: int = 2048,
    chunking: ChunkSettings | None = None,
    device: str | None = None,
    log_settings: bool = True,
) -> tuple[np.ndarray, int]:
    """The design's entry point: clone the voice of `ref_audio_path` saying `target_text`.

    The model, adapter and codec come from the keyword arguments, else the environment
    (HIGGS_LORA_MODEL, HIGGS_LORA_LORA_PATH, HIGGS_LORA_AUDIO_TOKENIZER), else the training run's
    settings next to the adapter / in the merged folder, else `higgs_lora.defaults`. Returns
    (float32 mono waveform, sample rate).
    """
    from .run_settings import resolve_inference

    check_text(target_text)
    settings = resolve_inference(
        model_path or os.environ.get(MODEL_ENV) or None,
        lora_path or os.environ.get(LORA_ENV) or None,
        audio_tokenizer or os.environ.get(CODEC_ENV) or None,
        system_prompt,
    )
    if log_settings:
        settings.report()
    cloner = get_cloner(settings["model_path"], settings["lora_path"], settings["audio_tokenizer"], device)
    # The same text front-end as training and `infer` (the run's settings, else the default).
    sample = normalize_sample(
        CloneSample(
            ref_text=ref_text,
            ref_audio=str(ref_audio_path),
            target_text=target_text,
            system_prompt=settings["system_prompt"],
        ),
        settings["text_normalization"],
    )
    wav, sr, _ = cloner.clone(
        sample,
        GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed),
        chunking,
    )
    return wav, sr
