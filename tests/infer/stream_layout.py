"""Helpers for the infer tests: boson's audio-stream layout built independently of the code under test."""

import torch
from boson_multimodal.model.higgs_audio.utils import build_delay_pattern_mask

BOS, EOS, C = 1024, 1025, 8
GREEDY = dict(temperature=0.0, ras_win_len=0)  # RAS resamples at random even without temperature


def with_stream_tokens(codes: torch.Tensor, delay: bool = True) -> torch.Tensor:
    """Boson's layout of one audio segment, built independently of the code under test."""
    n = codes.shape[0]
    stream = torch.cat([torch.full((n, 1), BOS), codes, torch.full((n, 1), EOS)], dim=1)
    if delay:
        stream = build_delay_pattern_mask(stream.unsqueeze(0), bos_token_id=BOS, pad_token_id=EOS)[0].squeeze(0)
    return stream
