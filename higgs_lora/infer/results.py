"""What generation returns: one audio segment (`Generation`) and a whole chunked text (`CloneResult`).

Containers of numpy arrays and the facts about how each segment ended; no model, no torch. Codes
here are already plain (C, T) codec codes (see `infer.stream`); the waveform is not kept here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Generation:
    codes: np.ndarray  # (num_codebooks, T): delay reverted, stream BOS/EOS removed
    raw_codes: np.ndarray  # (num_codebooks, T + num_codebooks + 1): as generated, BOS column first
    text: str
    stopped: bool  # the model closed the stream with its EOS (not cut by max_new_tokens)
    prompt_ids: list[int]
    prompt_audio_segments: int = 1  # the reference + context chunks in the prompt
    max_new_tokens: int = 0  # the budget this call had (the flag, capped by the text length)


@dataclass
class CloneResult:
    """A whole target text: its chunks' generations in order."""

    chunks: list[Generation]
    texts: list[str]
    seconds: float = 0.0  # wall-clock time of generation + decoding

    @property
    def codes(self) -> np.ndarray:
        return np.concatenate([g.codes for g in self.chunks], axis=1)

    @property
    def frames(self) -> int:
        return int(sum(g.codes.shape[1] for g in self.chunks))

    @property
    def stopped(self) -> bool:
        """Every chunk ended at its stream EOS (none was cut by its token budget)."""
        return all(g.stopped for g in self.chunks)
