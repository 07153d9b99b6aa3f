"""The audio stream `HiggsAudioModel.generate` writes: where it stops, whether it closed, and how
it becomes plain (C, T) codec codes (delay pattern reverted, stream BOS/EOS columns stripped).

Tensor functions of the model config only; they read one segment, the one the prompt's
<|audio_out_bos|> opened.
"""

from __future__ import annotations

import torch
from boson_multimodal.model.higgs_audio.utils import revert_delay_pattern

# The serve engine stops at <|end_of_text|> / <|eot_id|>. A cloning call wants exactly the one audio
# segment its prompt opened, so it also stops where that stream closes (<|audio_eos|> follows the
# all-EOS column); otherwise a model could write text and open further segments.
UPSTREAM_STOP_STRINGS = ["<|end_of_text|>", "<|eot_id|>"]
STOP_STRINGS = ["<|audio_eos|>", *UPSTREAM_STOP_STRINGS]


def stream_stopped(raw: torch.Tensor, config) -> bool:
    """generate() closes a stream by forcing EOS into codebooks 0..C-2 and ends the segment one
    column before the last codebook's own EOS would come: that last column marks a stop."""
    return bool((raw[:-1, -1] == config.audio_stream_eos_id).all())


def strip_stream_tokens(raw: torch.Tensor, config) -> torch.Tensor:
    """Delay-patterned stream (with BOS and EOS columns) -> plain (C, T) codes."""
    delay = config.audio_num_codebooks - 1 if config.use_delay_pattern else 0
    if raw.shape[1] - delay <= 2:
        # Cut before a whole frame cleared the delay: nothing but BOS/EOS (and revert would fail).
        return raw.new_zeros((raw.shape[0], 0))
    if config.use_delay_pattern:
        raw = revert_delay_pattern(raw)
    return raw.clip(0, config.audio_codebook_size - 1)[:, 1:-1]
