"""Loading the base model and tokenizer (`tiny`, a hub id or a folder), LoRA, activation checkpointing."""

from __future__ import annotations

import functools
import logging

import torch
import torch.utils.checkpoint

from ..defaults import ATTENTION_CHOICES, DEFAULT_LORA_TARGETS
from .peft_base import base_model
from .precision import match_audio_embedding_dtype
from .resolve import model_folder

log = logging.getLogger(__name__)


def resolve_model_path(name_or_path: str) -> str:
    """Local folder for `tiny`, a folder or a hub id (`repo@revision`; see model/refs.py), format-checked."""
    return str(model_folder(name_or_path))


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str | torch.dtype, device: str, stored: str | None = None) -> torch.dtype:
    """`auto`: fp32 on CPU; on CUDA bf16 (what the released weights are stored in), fp16 on GPUs without
    native bf16, and fp32 for weights stored in fp32 (`stored`, the config's torch_dtype: a merge saved
    with --dtype fp32 so that the adapter's update is not rounded must not be rounded when served)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    table = {
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
        "fp16": torch.float16,
        "float16": torch.float16,
        "fp32": torch.float32,
        "float32": torch.float32,
    }
    if dtype == "auto":
        if not str(device).startswith("cuda") or stored in ("float32", "fp32"):
            return torch.float32
        from .precision import _native_bf16

        return torch.bfloat16 if not torch.cuda.is_available() or _native_bf16() else torch.float16
    if dtype not in table:
        raise ValueError(f"unknown dtype {dtype!r}; use auto, bf16, fp16 or fp32")
    return table[dtype]


def check_attention(choice: str, device: str) -> str:
    """The --attn_implementation value, or a ValueError that says what is missing."""
    if choice not in ATTENTION_CHOICES:
        raise ValueError(f"--attn_implementation {choice!r}: use one of {', '.join(ATTENTION_CHOICES)}")
    if choice == "flash_attention_2":
        from transformers.utils import is_flash_attn_2_available

        if not str(device).startswith("cuda"):
            raise ValueError("--attn_implementation flash_attention_2 needs a CUDA GPU; use sdpa")
        if not is_flash_attn_2_available():
            raise ValueError(
                "--attn_implementation flash_attention_2: the flash-attn package is not installed "
                "(pip install flash-attn --no-build-isolation, built for this torch and CUDA); or use sdpa"
            )
    return choice


def load_tokenizer(name_or_path: str):
    from transformers import AutoTokenizer

    # From the resolved local folder: a hub id was fetched at its pinned revision by model_folder.
    return AutoTokenizer.from_pretrained(resolve_model_path(name_or_path))


def load_model(
    name_or_path: str,
    device: str | None = None,
    dtype: str | torch.dtype = "auto",
    attn_implementation: str | None = None,
):
    """The base `HiggsAudioModel` (`tiny`, hub id or folder) on `device` in `dtype` (see `resolve_dtype`).

    `attn_implementation` (training's --attn_implementation): None leaves transformers' choice (sdpa).
    """
    import json
    from pathlib import Path

    from boson_multimodal.model.higgs_audio import HiggsAudioModel

    device = device or default_device()
    path = resolve_model_path(name_or_path)
    stored = json.loads((Path(path) / "config.json").read_text(encoding="utf-8")).get("torch_dtype")
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = HiggsAudioModel.from_pretrained(path, torch_dtype=resolve_dtype(dtype, device, stored), **extra)
    match_audio_embedding_dtype(model)  # CUDA autocast's fp32 sum would otherwise crash the forward
    return model.to(device)


def existing_targets(model: torch.nn.Module, targets: list[str]) -> list[str]:
    names = [n for n, _ in model.named_modules()]
    found = [t for t in targets if any(n == t or n.endswith("." + t) for n in names)]
    missing = sorted(set(targets) - set(found))
    if missing:
        log.warning("LoRA targets not in this model, skipped: %s", ", ".join(missing))
    if not found:
        raise ValueError(f"none of the LoRA targets {targets} exist in the model")
    return found


def apply_lora(
    model,
    r: int = 16,
    alpha: int = 32,
    dropout: float = 0.05,
    targets: list[str] | None = None,
    modules_to_save: list[str] | None = None,
):
    """Wrap `model` in a PEFT LoRA model. No task_type: CAUSAL_LM would pass `labels=` to a forward without it."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=existing_targets(model, targets or DEFAULT_LORA_TARGETS),
        modules_to_save=modules_to_save,
    )
    return get_peft_model(model, config)


def count_parameters(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def decoder_layers(model):
    return base_model(model).layers


def enable_activation_checkpointing(model, layers: int | None = None) -> int:
    """Recompute the first `layers` decoder layers in backward (None: all), non-reentrant, patching
    forward in place; returns how many are checkpointed.

    The first ones, not any k: backward reaches them last, after the plain layers above have freed
    what they kept, so a recomputed layer never coexists with those (the planner's peak counts on it).
    Not a wrapper module: HiggsAudioModel picks each layer's code path by its class, so a wrapper
    would send DualFFN layers down the text path. `gradient_checkpointing_enable()` raises on the
    released config, and the model's own loop never checkpoints, hence this.
    """
    every = decoder_layers(model)
    count = len(every) if layers is None else layers
    if not 0 <= count <= len(every):
        raise ValueError(f"cannot checkpoint {count} of {len(every)} decoder layers")
    for layer in list(every)[:count]:
        if getattr(layer, "_higgs_lora_checkpointed", False):
            continue
        original = layer.forward

        @functools.wraps(original)
        def forward(*args, _original=original, _layer=layer, **kwargs):
            if _layer.training and torch.is_grad_enabled():
                return torch.utils.checkpoint.checkpoint(_original, *args, use_reentrant=False, **kwargs)
            return _original(*args, **kwargs)

        layer.forward = forward
        layer._higgs_lora_checkpointed = True
    return count
