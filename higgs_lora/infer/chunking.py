"""Long texts: split into chunks and join the chunks' audio (each chunk's new-token cap: constants.text_token_cap).

Splitting follows upstream's examples/generation.py in spirit (sentences first, then a length cap),
with Arabic punctuation (، ؛ ؟) and the Arabic full stop (۔) understood. No torch (and no numpy at import time) here.
"""

from __future__ import annotations

import math
import re

# Sentence ends (Latin and Arabic), then clause marks used only to break an over-long sentence.
_SENTENCE_END = re.compile(r"(?<=[.!?؟۔…])\s+|\n+")
_CLAUSE_END = re.compile(r"(?<=[,;:،؛])\s+")

DEFAULT_CHUNK_MAX_CHARS = 300
DEFAULT_CONTEXT_CHUNKS = 2
DEFAULT_CROSSFADE_S = 0.05


def _split_long(piece: str, max_chars: int) -> list[str]:
    """A piece over the cap: break at clause marks, then between words, then (one huge word) hard."""
    out: list[str] = []
    for clause in (c for c in _CLAUSE_END.split(piece) if c.strip()):
        if len(clause) <= max_chars:
            out.append(clause)
            continue
        current = ""
        for word in clause.split():
            while len(word) > max_chars:
                if current:
                    out.append(current)
                    current = ""
                out.append(word[:max_chars])
                word = word[max_chars:]
            candidate = f"{current} {word}" if current else word
            if len(candidate) <= max_chars:
                current = candidate
            else:
                out.append(current)
                current = word
        if current:
            out.append(current)
    return out


def split_text(text: str, max_chars: int = DEFAULT_CHUNK_MAX_CHARS) -> list[str]:
    """Sentences packed greedily into chunks of at most `max_chars` characters (0 or less: one chunk).

    A sentence longer than the cap is broken at clause marks (, ; : ، ؛), then between words.
    Joining the chunks with spaces gives back the text's words in order.
    """
    flat = " ".join(text.split())
    if not flat:
        return []
    if max_chars <= 0 or len(flat) <= max_chars:
        return [flat]
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        sentence = " ".join(sentence.split())
        if sentence:
            pieces += [sentence] if len(sentence) <= max_chars else _split_long(sentence, max_chars)
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1]) + 1 + len(piece) <= max_chars:
            chunks[-1] = f"{chunks[-1]} {piece}"
        else:
            chunks.append(piece)
    return chunks


def crossfade_concat(waves: list, sample_rate: int, seconds: float = DEFAULT_CROSSFADE_S):
    """Join waveforms, overlapping each boundary by `seconds` with an equal-power crossfade.

    The overlap is shortened where a piece is shorter than it; 0 seconds is plain concatenation.
    """
    import numpy as np  # here, not at the top: the CLI imports this module while building `--help`

    waves = [np.asarray(w, dtype=np.float32) for w in waves if len(w)]
    if not waves:
        return np.zeros(0, dtype=np.float32)
    out = waves[0]
    for wave in waves[1:]:
        n = min(int(round(seconds * sample_rate)), len(out), len(wave))
        if n <= 0:
            out = np.concatenate([out, wave])
            continue
        t = (np.arange(n, dtype=np.float32) + 0.5) / n
        fade_out, fade_in = np.cos(t * math.pi / 2), np.sin(t * math.pi / 2)
        mixed = out[-n:] * fade_out + wave[:n] * fade_in
        out = np.concatenate([out[:-n], mixed, wave[n:]])
    return out.astype(np.float32)
