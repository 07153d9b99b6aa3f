"""Weight names between boson's `HiggsAudioModel` and native `HiggsAudioV2ForConditionalGeneration`.

Renaming only, tensors untouched (so boson -> native -> boson is bit-identical). The same three rules
transformers' own converter applies: the codebook embeddings move under `model.embed_audio_tokens`,
the Llama backbone under `model.`, and the heads lose their `audio_decoder_proj.` prefix. The text head
is kept (`text_lm_head.weight`): native loads it with `use_text_head=True`, so text logits still match.
"""

from __future__ import annotations

import re

# boson -> native, applied in order; `_TO_BOSON` inverts them.
_TO_NATIVE = [
    (re.compile(r"^audio_codebook_embeddings\."), "model.embed_audio_tokens.embed_audio_tokens."),
    (re.compile(r"^(embed_tokens|layers|norm)\."), r"model.\1."),
    (re.compile(r"^audio_decoder_proj\.(audio_lm_head|text_lm_head)\."), r"\1."),
]
_TO_BOSON = [
    (re.compile(r"^model\.embed_audio_tokens\.embed_audio_tokens\."), "audio_codebook_embeddings."),
    (re.compile(r"^model\.(embed_tokens|layers|norm)\."), r"\1."),
    (re.compile(r"^(audio_lm_head|text_lm_head)\."), r"audio_decoder_proj.\1."),
]
# Computed buffers some checkpoints carry; neither side loads them.
_DROP = re.compile(r"(rotary_emb\.(inv_freq|original_inv_freq)|audio_codebook_weights)$")


def _rename(name: str, rules) -> str | None:
    if _DROP.search(name):
        return None
    for pattern, replacement in rules:
        new, n = pattern.subn(replacement, name)
        if n:
            return new
    raise KeyError(f"weight {name!r} has no counterpart in the other layout")


def native_name(boson_name: str) -> str | None:
    return _rename(boson_name, _TO_NATIVE)


def boson_name(native_name_: str) -> str | None:
    return _rename(native_name_, _TO_BOSON)


def rename(state: dict, to: str) -> dict:
    """A state dict (or any name -> value mapping) with every name in the `to` ("native"/"boson") layout."""
    fn = native_name if to == "native" else boson_name
    out = {}
    for name, value in state.items():
        new = fn(name)
        if new is not None:
            out[new] = value
    return out
