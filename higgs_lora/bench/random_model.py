"""The model gpu-check measures: the released architecture (or a scaled-down one) with random weights,
written as a model folder and loaded back through `model.load.load_model`, exactly as `train`, `infer`
and `check-alignment` load a user's model.

Loading through `from_pretrained` matters for what is measured: transformers picks the attention
implementation there (SDPA), while a model constructed directly from the shipped config (which carries
`_attn_implementation_autoset: true`) keeps eager attention, a different kernel with different speed and
memory. The folder is a complete model (config, safetensors weights, the tiny byte-level tokenizer with
the config's special-token ids remapped onto it), so the CLI's own commands accept it as
`--base_model`/`--model_path` (gpu-check --full drives them with it).
"""

from __future__ import annotations

import gc
from pathlib import Path

import torch

from ..model import tiny

SHAPES = ("released", "small")
_DTYPE_NAMES = {torch.bfloat16: "bfloat16", torch.float16: "float16", torch.float32: "float32"}


def shipped_config() -> dict:
    from ..train.model_shape import released_config  # the one shipped copy (higgs_lora/model/configs/)

    return released_config()


def build_config(shape: str = "released"):
    """The released HiggsAudioConfig with the tiny tokenizer's special-token ids (small: scaled down)."""
    from boson_multimodal.model.higgs_audio import HiggsAudioConfig

    if shape not in SHAPES:
        raise ValueError(f"--shape {shape!r}: use one of {', '.join(SHAPES)}")
    c = shipped_config()
    c.pop("audio_encoder_config", None)  # skip_audio_tower: no Whisper tower is built
    sid = tiny.special_id
    c.update(
        audio_in_token_idx=sid("<|AUDIO|>"),
        audio_out_token_idx=sid("<|AUDIO_OUT|>"),
        audio_out_bos_token_id=sid("<|audio_out_bos|>"),
        audio_eos_token_id=sid("<|audio_eos|>"),
        pad_token_id=sid("<|end_of_text|>"),
    )
    text = c["text_config"]
    text.update(bos_token_id=sid("<|begin_of_text|>"), eos_token_id=sid("<|end_of_text|>"))
    if shape == "small":
        text.update(
            num_hidden_layers=2,
            hidden_size=128,
            intermediate_size=256,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=32,
            vocab_size=512,
        )
        c.update(
            hidden_size=128, audio_ffn_hidden_size=128, audio_ffn_intermediate_size=256, audio_dual_ffn_layers=[0, 1]
        )
    return HiggsAudioConfig(**c)


def build_meta_model(config):
    """Shapes only, no memory (parameter counts for the FLOP estimate)."""
    from boson_multimodal.model.higgs_audio import HiggsAudioModel

    with torch.device("meta"):
        return HiggsAudioModel(config)


def write_model_folder(config, folder: str | Path, device: str, dtype: torch.dtype, seed: int = 0) -> Path:
    """Random weights of `config` in `dtype`, saved as a model folder (config, safetensors, tokenizer).

    The weights are initialised on `device` (a 5.8B model initialises in seconds on a GPU, minutes on a
    CPU) and written once; every phase then loads the folder as a user's model is loaded."""
    from boson_multimodal.model.higgs_audio import HiggsAudioModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = HiggsAudioModel(config)
    finally:
        torch.set_default_dtype(previous)
    model.config.torch_dtype = _DTYPE_NAMES[dtype]
    model.save_pretrained(folder, safe_serialization=True)
    tiny.build_tokenizer().save_pretrained(folder)
    del model
    release(device)
    return folder


def load_check_model(folder: str | Path, device: str, dtype: torch.dtype):
    """The model as `load_model` gives it to `train`/`infer` (SDPA attention, audio-embedding dtype fix)."""
    from ..model.load import load_model

    release(device)
    model = load_model(str(folder), device=device, dtype=dtype)
    model.config.use_cache = False
    return model


def attention_implementation(model) -> str:
    """What the decoder's attention layers run: `sdpa`, `eager` or `flash_attention_2`."""
    config = getattr(model, "config", None)
    name = getattr(config, "_attn_implementation", None)
    text = getattr(config, "text_config", None)
    return name or getattr(text, "_attn_implementation", None) or "eager"


def release(device: str) -> None:
    gc.collect()
    if str(device).startswith("cuda"):
        torch.cuda.empty_cache()
