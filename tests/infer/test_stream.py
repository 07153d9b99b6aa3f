"""The generated audio stream -> plain codes: delay reverted, stream BOS/EOS stripped, stray ids clipped."""

import copy

import torch
from stream_layout import EOS, C, with_stream_tokens

from higgs_lora.infer.stream import strip_stream_tokens


def test_strip_stream_tokens_inverts_the_delay_pattern(tiny_config):
    gen = torch.Generator().manual_seed(0)
    for frames in (1, 5, 40):
        codes = torch.randint(0, 1024, (C, frames), generator=gen)
        stream = with_stream_tokens(codes)
        assert stream.shape == (C, frames + C + 1)
        assert torch.equal(strip_stream_tokens(stream, tiny_config), codes)


def test_strip_stream_tokens_without_delay_pattern(tiny_config):
    config = copy.deepcopy(tiny_config)
    config.use_delay_pattern = False
    codes = torch.randint(0, 1024, (C, 6), generator=torch.Generator().manual_seed(1))
    assert torch.equal(strip_stream_tokens(with_stream_tokens(codes, delay=False), config), codes)


def test_strip_stream_tokens_clips_stray_stream_ids(tiny_config):
    codes = torch.randint(0, 1024, (C, 4), generator=torch.Generator().manual_seed(2))
    stream = with_stream_tokens(codes)
    stream[3, 5] = EOS  # a stream token inside the codes (a cut or odd stream) must not reach the codec
    stripped = strip_stream_tokens(stream, tiny_config)
    assert stripped.max() <= 1023 and stripped.min() >= 0
