"""The real codec architecture (boson's HiggsAudioTokenizer) with random weights, built offline and reproducibly:
what the benchmarks encode and decode with when the released weights are not needed (and the tests, offline)."""

from __future__ import annotations

import torch

from ..data.higgs_codec import (
    RELEASED_TOKENIZER_CONFIG,
    HiggsAudioCodec,
    boson_tokenizer_module,
    semantic_teacher_made_by,
)


def random_semantic_teacher() -> torch.nn.Module:
    """A randomly initialised, small HuBERT that fits where ``bosonai/hubert_base`` goes.

    The tokenizer hard-codes a 768-wide semantic model and a 320-sample hop at 16 kHz, so hidden
    size and the convolution strides stay as in HuBERT base; everything else is shrunk for speed.
    """
    from transformers import HubertConfig, HubertModel

    config = HubertConfig(
        hidden_size=768,
        num_hidden_layers=1,
        num_attention_heads=12,
        intermediate_size=256,
        conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=16,
    )
    return HubertModel(config).eval()


def offline_semantic_teacher():
    """Boson's tokenizer gets ``random_semantic_teacher()`` instead of downloading HuBERT (benchmarks, tests)."""
    return semantic_teacher_made_by(random_semantic_teacher)


def build_random_tokenizer(config: dict | None = None, device: str = "cpu", seed: int = 0) -> torch.nn.Module:
    """boson's real ``HiggsAudioTokenizer`` class with random weights, built offline and reproducibly."""
    module = boson_tokenizer_module()
    # fork_rng: seeding must not change the caller's random stream.
    with torch.random.fork_rng(devices=[]), offline_semantic_teacher():
        torch.manual_seed(seed)
        tokenizer = module.HiggsAudioTokenizer(**(config or RELEASED_TOKENIZER_CONFIG), device=device)
    return tokenizer.to(device).eval()


def random_higgs_codec(device: str = "cpu", seed: int = 0, config: dict | None = None) -> HiggsAudioCodec:
    """The real architecture with random weights, offline: for measuring, not for listening."""
    return HiggsAudioCodec(build_random_tokenizer(config, device=device, seed=seed), name="higgs-random")
