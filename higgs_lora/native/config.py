"""Config fields between boson's `higgs_audio` config (nested Llama `text_config`) and native `higgs_audio_v2`.

The native model can express one boson shape only: DualFFN on every layer with the audio MLP the size
of the text MLP (`dual_ffn_fast_forward`, what the released model is), audio in as discrete codes, no
Whisper tower, no audio-out self-attention, delay pattern on. `check_exportable` refuses anything else.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

# Native counts stream BOS and EOS inside its codebook (1024 codes + 2).
STREAM_SPECIALS = 2
DELAY_TOKEN = "<|reserved_special_token_6|>"  # what the native processor uses for delay-pattern positions

RELEASED_CONFIG = Path(__file__).resolve().parents[1] / "model" / "configs" / "released_config.json"


class NotExportable(ValueError):
    pass


def check_exportable(boson: dict) -> None:
    text = boson["text_config"]
    layers = text["num_hidden_layers"]
    problems = []
    if boson.get("audio_adapter_type") != "dual_ffn_fast_forward":
        problems.append(
            f"audio_adapter_type {boson.get('audio_adapter_type')!r} (native has dual_ffn_fast_forward only)"
        )
    if sorted(boson.get("audio_dual_ffn_layers") or []) != list(range(layers)):
        problems.append("DualFFN not on every layer")
    if not boson.get("use_delay_pattern", False):
        problems.append("no delay pattern")
    if boson.get("use_audio_out_self_attention") or boson.get("use_audio_out_embed_projector"):
        problems.append("audio-out self-attention / embedding projector")
    if boson.get("encode_whisper_embed") or not boson.get("skip_audio_tower", True):
        problems.append("a Whisper audio tower")
    if boson.get("audio_decoder_proj_num_layers", 0):
        problems.append("decoder projection layers")
    if problems:
        raise NotExportable("this model has no transformers-native equivalent: " + "; ".join(problems))


def to_native(boson: dict, token_ids: dict[str, int], dtype: str | None = None) -> dict:
    """Native config.json from boson's config; `token_ids`: the tokenizer's ids of the special tokens used."""
    check_exportable(boson)
    text = boson["text_config"]
    rope = dict(text.get("rope_scaling") or {"rope_type": "default"})
    rope["rope_theta"] = text.get("rope_theta", 10000.0)
    heads = text["num_attention_heads"]
    native = {
        "architectures": ["HiggsAudioV2ForConditionalGeneration"],
        "model_type": "higgs_audio_v2",
        "vocab_size": text["vocab_size"],
        "hidden_size": text["hidden_size"],
        "intermediate_size": text["intermediate_size"],
        "num_hidden_layers": text["num_hidden_layers"],
        "num_attention_heads": heads,
        "num_key_value_heads": text.get("num_key_value_heads") or heads,
        "head_dim": text.get("head_dim") or text["hidden_size"] // heads,
        "hidden_act": text.get("hidden_act", "silu"),
        "max_position_embeddings": text["max_position_embeddings"],
        "initializer_range": text.get("initializer_range", 0.02),
        "rms_norm_eps": text["rms_norm_eps"],
        "attention_bias": text.get("attention_bias", False),
        "attention_dropout": text.get("attention_dropout", 0.0),
        "mlp_bias": text.get("mlp_bias", False),
        "pretraining_tp": text.get("pretraining_tp", 1),
        "rope_parameters": rope,
        # boson keeps a separate text head (its config's tie flag is not what its weights do).
        "tie_word_embeddings": False,
        "pad_token_id": boson["pad_token_id"],
        "bos_token_id": token_ids["<|begin_of_text|>"],
        "eos_token_id": token_ids["<|eot_id|>"],
        "num_codebooks": boson["audio_num_codebooks"],
        "codebook_size": boson["audio_codebook_size"] + STREAM_SPECIALS,
        "audio_token_id": boson["audio_out_token_idx"],
        "audio_bos_token_id": boson["audio_out_bos_token_id"],
        "audio_delay_token_id": token_ids[DELAY_TOKEN],
        "audio_stream_bos_id": boson["audio_stream_bos_id"],
        "audio_stream_eos_id": boson["audio_stream_eos_id"],
        "use_cache": True,
    }
    if dtype:
        native["dtype"] = dtype
    return native


def to_boson(native: dict, token_ids: dict[str, int]) -> dict:
    """boson config.json for a native config: the released config's structure with the native dimensions."""
    if native.get("model_type") != "higgs_audio_v2":
        raise ValueError(f"config.json says model_type {native.get('model_type')!r}, not 'higgs_audio_v2'")
    boson = json.loads(RELEASED_CONFIG.read_text(encoding="utf-8"))
    text = boson["text_config"]
    layers = native["num_hidden_layers"]
    heads = native["num_attention_heads"]
    rope = dict(native.get("rope_parameters") or {})
    theta = rope.pop("rope_theta", 10000.0)
    text.update(
        {
            "vocab_size": native["vocab_size"],
            "hidden_size": native["hidden_size"],
            "intermediate_size": native["intermediate_size"],
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "num_key_value_heads": native.get("num_key_value_heads") or heads,
            "head_dim": native.get("head_dim") or native["hidden_size"] // heads,
            "hidden_act": native.get("hidden_act", "silu"),
            "max_position_embeddings": native["max_position_embeddings"],
            "rms_norm_eps": native["rms_norm_eps"],
            "rope_theta": theta,
            "rope_scaling": rope if rope.get("rope_type", "default") != "default" else None,
            "attention_bias": native.get("attention_bias", False),
            "mlp_bias": native.get("mlp_bias", False),
            "bos_token_id": native.get("bos_token_id"),
            "torch_dtype": native.get("dtype") or native.get("torch_dtype") or text.get("torch_dtype"),
        }
    )
    boson.update(
        {
            "hidden_size": native["hidden_size"],
            "audio_dual_ffn_layers": list(range(layers)),
            "audio_ffn_hidden_size": native["hidden_size"],
            "audio_ffn_intermediate_size": native["intermediate_size"],
            "audio_num_codebooks": native["num_codebooks"],
            "audio_codebook_size": native["codebook_size"] - STREAM_SPECIALS,
            "audio_stream_bos_id": native.get("audio_stream_bos_id", 1024),
            "audio_stream_eos_id": native.get("audio_stream_eos_id", 1025),
            "audio_out_token_idx": native["audio_token_id"],
            "audio_out_bos_token_id": native["audio_bos_token_id"],
            "audio_in_token_idx": token_ids["<|AUDIO|>"],
            "audio_eos_token_id": token_ids["<|audio_eos|>"],
            "pad_token_id": native.get("pad_token_id", 128001),
            "torch_dtype": text["torch_dtype"],
        }
    )
    return copy.deepcopy(boson)
