"""gpu-check's FLOP model: the built model's parameters by role, and the active parameters per token.

Tokens take different weights (text tokens the text MLP, audio tokens the DualFFN audio MLP and head),
so the count a position multiplies with depends on the batch's share of audio positions.
"""

from __future__ import annotations

FLOP_FORMULA = (
    "FLOPs per token = 3 x 2 x active parameters, the planner's convention (2 per multiply-add in the "
    "forward, the backward counted as twice the forward; attention scores and checkpointing's recomputed "
    "forward are left out). "
    "Active parameters: every non-embedding parameter except the FFN branch a token does not take "
    "(text tokens use the text MLP, audio tokens the DualFFN audio MLP), weighted by the batch's share "
    "of audio positions, counted on the built model; the text head only on the labelled rows the step "
    "applies it to (3 per sample, train.heads). MFU = FLOPs per token x tokens/s / GPU peak."
)


def parameter_groups(model) -> dict:
    """Exact parameter counts of the built model by role (for the FLOP estimate)."""
    groups = {"total": 0, "embeddings": 0, "text_mlp": 0, "audio_mlp": 0, "audio_head": 0, "text_head": 0}
    for name, p in model.named_parameters():
        n = p.numel()
        groups["total"] += n
        if "embed_tokens" in name or "audio_codebook_embeddings" in name:
            groups["embeddings"] += n
        elif ".audio_mlp." in name:
            groups["audio_mlp"] += n
        elif ".mlp." in name:
            groups["text_mlp"] += n
        elif "audio_lm_head" in name:
            groups["audio_head"] += n
        elif "text_lm_head" in name:
            groups["text_head"] += n
    # The config says tie_word_embeddings, yet HiggsAudioModel builds its own text_lm_head (it cannot
    # tie: get_input_embeddings raises), counted above with the per-position parameters. Only a head
    # really sharing the embedding matrix (listed once, as an embedding) is added back.
    head = getattr(getattr(model, "audio_decoder_proj", None), "text_lm_head", None)
    if head is not None and head.weight is model.embed_tokens.weight:
        groups["tied_text_head"] = head.weight.numel()
    return groups


def active_params_per_token(groups: dict, audio_share: float, text_head_share: float = 1.0) -> float:
    """Weights the mean position multiplies with: `audio_share` of positions go through the audio FFN and
    head, the rest through the text FFN; the text head runs on `text_head_share` of them (train.heads:
    the labelled rows only; 1.0 is upstream's head at every position)."""
    head = groups.get("text_head", 0) + groups.get("tied_text_head", 0)
    shared = (
        groups["total"]
        - groups["embeddings"]
        - groups["text_mlp"]
        - groups["audio_mlp"]
        - groups["audio_head"]
        - groups.get("text_head", 0)
    )
    return (
        shared
        + text_head_share * head
        + (1 - audio_share) * groups["text_mlp"]
        + audio_share * (groups["audio_mlp"] + groups["audio_head"])
    )
