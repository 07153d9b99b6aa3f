"""What one generation call is asked: the sampling settings and the long-text chunking settings.

Plain dataclasses (no torch, no numpy): the CLI builds them from its flags, the API from its
arguments, the engine (`infer.engine`) reads them. They hold numbers only and check nothing; a
setting out of range fails where the engine or upstream `generate()` uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .chunking import DEFAULT_CHUNK_MAX_CHARS, DEFAULT_CONTEXT_CHUNKS, DEFAULT_CROSSFADE_S


@dataclass
class GenerationSettings:
    """temperature 0 means greedy. RAS = repetition-aware sampling (upstream default 7 / 2; 0 disables)."""

    max_new_tokens: int = 2048  # one audio column per token: 2048 is about 80 s of audio
    temperature: float = 0.3
    top_k: int | None = 50
    top_p: float = 0.95
    ras_win_len: int = 7
    ras_win_max_num_repeat: int = 2
    seed: int | None = None
    # Also stop at a cap from the chunk's text length (constants.text_token_cap).
    cap_by_text: bool = True


@dataclass
class ChunkSettings:
    """Long text: chunks of at most `max_chars` characters (0 = never split), the last
    `context_chunks` generated chunks kept in the prompt, `crossfade_s` seconds of overlap."""

    max_chars: int = DEFAULT_CHUNK_MAX_CHARS
    context_chunks: int = DEFAULT_CONTEXT_CHUNKS
    crossfade_s: float = DEFAULT_CROSSFADE_S
