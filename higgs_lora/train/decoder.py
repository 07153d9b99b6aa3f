"""The training forward without device→host syncs: boson's decoder on the host-laid-out sequence.

`hidden_states` is `HiggsAudioModel.forward` for training (no cache, no Whisper tower) up to the final
norm, with the two parts that sync replaced by index work the collator prepared (`train.layout`):
- the merge: one gather of [zero row, token embeddings, audio-in, audio-out code embeddings] by the
  layout's `source` rows, instead of `merge_input_ids_with_audio_features` on the device;
- the DualFFN split: each layer's text and audio rows by `index_select` / `index_add` over the
  layout's row lists, instead of boolean-mask indexing (`hidden[mask]`, `residual[mask] += ...`).
Every other step is boson's own: `embed_tokens`, `_embed_audio_ids`, `_update_causal_mask`,
`rotary_emb`, the layers' norms, attention and MLPs, `norm`. The values are the same (copies and the
same row-wise ops; `tests/train/test_decoder.py` compares them with upstream's forward).

The attention mask: with more than one sample boson pads on the right, so every real position's keys
are real and plain causal attention gives them what the padded mask gives; pad positions carry no
label and no audio column. So under SDPA the mask is dropped (`is_causal`: SDPA's flash kernel can
run, where a 4-D mask forces the memory-efficient or math kernel), as upstream drops it when the
mask is all ones. A batch of one is padded on the left and keeps its mask.

Layers installed here take `routing=` (the row lists); everything else calls them as upstream does.
`install` must run before `model.load.enable_activation_checkpointing`, so a checkpointed layer
recomputes the routed forward it ran.
"""

from __future__ import annotations

import functools

import torch
from boson_multimodal.model.higgs_audio.modeling_higgs_audio import HiggsAudioDualFFNDecoderLayer

from ..model.peft_base import base_model


def inner(layer):
    """The decoder layer inside the wrappers that keep it as `._fsdp_wrapped_module` (FSDP's auto-wrap)
    or `._checkpoint_wrapped_module` (torch's checkpoint wrapper): its class picks its code path, the
    wrapper is what gets called."""
    while True:
        wrapped = getattr(layer, "_fsdp_wrapped_module", None) or getattr(layer, "_checkpoint_wrapped_module", None)
        if wrapped is None:
            return layer
        layer = wrapped


def routable(layer) -> bool:
    """DualFFN layers whose forward `routed_forward` reproduces: no fast-forward, no audio self-attention."""
    return isinstance(layer, HiggsAudioDualFFNDecoderLayer) and not layer.fast_forward and not layer.use_audio_attention


def install(model) -> None:
    """Let each routable DualFFN layer take `routing=(text_rows, audio_rows)` (idempotent)."""
    for layer in map(inner, base_model(model).layers):
        if not routable(layer) or getattr(layer, "_higgs_lora_routed", False):
            continue
        if getattr(layer, "_higgs_lora_checkpointed", False):
            raise RuntimeError("install the routed DualFFN forward before activation checkpointing wraps the layers")
        original = layer.forward

        @functools.wraps(original)
        def forward(*args, routing=None, _original=original, _layer=layer, **kwargs):
            if routing is None:
                return _original(*args, **kwargs)
            return routed_forward(_layer, *args, routing=routing, **kwargs)

        layer.forward = forward
        layer._higgs_lora_routed = True


def routed_forward(
    layer,
    hidden_states,
    attention_mask=None,
    position_ids=None,
    audio_out_mask=None,
    cache_position=None,
    position_embeddings=None,
    routing=None,
    **unused,
):
    """`HiggsAudioDualFFNDecoderLayer.forward` without a cache, text and audio FFN rows picked by index."""
    text_rows, audio_rows = routing
    residual = hidden_states
    hidden_states = torch.where(
        audio_out_mask.unsqueeze(-1),
        layer.audio_input_layernorm(hidden_states),
        layer.input_layernorm(hidden_states),
    )
    hidden_states, _, _ = layer.self_attn(
        hidden_states=hidden_states,
        **_no_cache(attention_mask, position_ids, cache_position, position_embeddings),
    )
    residual = residual + hidden_states
    B, T, H = residual.shape
    flat = residual.reshape(B * T, H)
    text = layer.mlp(layer.post_attention_layernorm(flat.index_select(0, text_rows)))
    audio = layer.audio_mlp(layer.audio_post_attention_layernorm(flat.index_select(0, audio_rows)))
    # Rows are disjoint: each output row is residual + its own FFN, as upstream's `residual[mask] += ...`.
    out = flat.index_add(0, text_rows, text.to(flat.dtype)).index_add(0, audio_rows, audio.to(flat.dtype))
    return (out.view(B, T, H),)


def _no_cache(attention_mask, position_ids, cache_position, position_embeddings) -> dict:
    """The keywords boson's layers and their attention take in a forward without a cache."""
    return dict(
        attention_mask=attention_mask,
        position_ids=position_ids,
        past_key_value=None,
        output_attentions=False,
        use_cache=False,
        cache_position=cache_position,
        position_embeddings=position_embeddings,
    )


def _causal_mask(base, layout: dict, hidden_states, cache_position):
    """What the layers' attention gets: None (plain causal) where that is exact for every labelled position."""
    attention_mask = layout["attention_mask"]
    every_layer_routed = all(routable(inner(layer)) for layer in base.layers)
    implementation = base.config._attn_implementation
    if implementation in ("sdpa", "flash_attention_2") and every_layer_routed:
        if layout["mask_all_ones"] or layout["right_padded"]:
            return None
        if implementation == "flash_attention_2":
            return attention_mask  # boson hands FA2 the 2-D mask when it has zeros
    return base._update_causal_mask(attention_mask, hidden_states, cache_position, None, False)


def _embed_codes(base, ids, dtype):
    if ids is None or ids.shape[-1] == 0:
        ids = torch.zeros((base.audio_num_codebooks, 0), dtype=torch.long, device=base.embed_tokens.weight.device)
    # The cast is `model.precision.match_audio_embedding_dtype`'s (CUDA autocast sums in fp32).
    return base._embed_audio_ids(ids).to(dtype)


def merged_embeddings(base, layout: dict, input_ids, audio_in_ids=None, audio_out_ids=None):
    """What boson's merge makes of the batch's embeddings (B, T, H): one gather by the layout's `source`."""
    embeds = base.embed_tokens(input_ids)
    B, S, H = embeds.shape
    table = torch.cat(
        [
            embeds.new_zeros((1, H)),
            embeds.reshape(B * S, H),
            _embed_codes(base, audio_in_ids, embeds.dtype),
            _embed_codes(base, audio_out_ids, embeds.dtype),
        ]
    )
    source = layout["source"]
    return table.index_select(0, source.flatten()).view(*source.shape, H)


def hidden_states(base, layout: dict, input_ids, audio_in_ids=None, audio_out_ids=None, **unused):
    """The normed final hidden states (B, T, H) of the merged batch, boson's layers run with `routing`."""
    hidden = merged_embeddings(base, layout, input_ids, audio_in_ids, audio_out_ids)
    cache_position = torch.arange(hidden.shape[1], device=hidden.device)
    causal_mask = _causal_mask(base, layout, hidden, cache_position)
    position_ids = layout["position_ids"]
    position_embeddings = base.rotary_emb(hidden, position_ids)
    codes_mask = layout["codes_mask"]
    routing = (layout["ffn_text_rows"], layout["ffn_audio_rows"])
    common = _no_cache(causal_mask, position_ids, cache_position, position_embeddings)
    for layer in base.layers:
        # Upstream's loop tests the class of what it calls, so a wrapped DualFFN layer would lose its
        # audio mask (every row through the text FFN): test the layer inside the wrapper.
        unwrapped = inner(layer)
        if isinstance(unwrapped, HiggsAudioDualFFNDecoderLayer):
            extra = dict(audio_out_mask=codes_mask, is_decoding_audio_token=None, is_using_cuda_graph=False)
            if getattr(unwrapped, "_higgs_lora_routed", False):
                extra["routing"] = routing
            hidden = layer(hidden, **common, **extra)[0]
        else:
            hidden = layer(hidden, **common)[0]
    return base.norm(hidden)
