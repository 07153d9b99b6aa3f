"""Pluggable speech recognition and the WER/CER it feeds.

A backend is anything with `name`, `languages` (None = any) and `transcribe(wav, sr, language) -> str`.
`load_asr(spec)` builds one from a short spec:

    pocketsphinx            offline, English only: the wheel ships its acoustic model, LM and dictionary
    whisper[:MODEL]         faster-whisper (`pip install faster-whisper`), MODEL a size name, hub id or
                            local CTranslate2 folder (default large-v3; the first use downloads it)
    none                    no ASR: WER/CER are left empty

Scores use the per-language normalisation of `text_norm` on both sides and a plain Levenshtein
distance: WER over words, CER over characters (spaces included, single-spaced).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .text_norm import normalize

DEFAULT_WHISPER_MODEL = "large-v3"


class MissingScorerError(ValueError):
    """An optional scorer package is not installed; the message says what to install.

    A ValueError so the CLI reports it as a one-line `error:` (exit 2): the user fixes it with pip."""


def missing(package: str, what: str, pip_line: str) -> MissingScorerError:
    return MissingScorerError(f"{what} needs the optional package {package!r}: {pip_line} "
                              "(or `pip install 'higgs-lora[eval]'`, see the README's Evaluate section)")


def edit_distance(ref: list, hyp: list) -> int:
    """Levenshtein distance (substitutions, deletions, insertions all cost 1)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i]
        for j, h in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1]


@dataclass
class ErrorRates:
    wer: float
    cer: float
    ref_words: int
    ref_chars: int
    word_errors: int
    char_errors: int


def error_rates(reference: str, hypothesis: str, language: str) -> ErrorRates:
    """WER/CER of `hypothesis` against `reference` after normalisation. Rates may exceed 1 (insertions)."""
    ref, hyp = normalize(reference, language), normalize(hypothesis, language)
    if not ref:
        raise ValueError(f"reference text {reference!r} is empty after normalisation: WER is undefined")
    words = edit_distance(ref.split(), hyp.split())
    chars = edit_distance(list(ref), list(hyp))
    return ErrorRates(words / len(ref.split()), chars / len(ref), len(ref.split()), len(ref), words, chars)


def _pcm16(wav: np.ndarray, sr: int, target_sr: int) -> bytes:
    from ..data.audio import resample

    wav = resample(np.asarray(wav, dtype=np.float32), sr, target_sr)
    return (np.clip(wav, -1.0, 1.0) * 32767).astype("<i2").tobytes()


class PocketSphinxASR:
    """CMU PocketSphinx with the US-English model bundled in its wheel: no download, no GPU.

    A weak recogniser (a 2010s HMM with a general trigram LM): good enough to tell speech from babble
    and to rank systems on English, not to compare with published WER figures.
    """

    name = "pocketsphinx"
    languages = {"en"}
    sampling_rate = 16000

    def __init__(self):
        try:
            from pocketsphinx import Decoder
        except ImportError:
            raise missing("pocketsphinx", "the offline English ASR", "pip install pocketsphinx==5.1.1") from None
        self._decoder = Decoder(samprate=self.sampling_rate, logfn=os.devnull)

    def transcribe(self, wav: np.ndarray, sr: int, language: str = "en") -> str:
        d = self._decoder
        d.start_utt()
        d.process_raw(_pcm16(wav, sr, self.sampling_rate), full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        return hyp.hypstr if hyp is not None else ""


class FasterWhisperASR:
    """Whisper through CTranslate2 (faster-whisper); large-v3 is the usual choice for Arabic."""

    name = "whisper"
    languages = None
    sampling_rate = 16000

    def __init__(self, model: str = DEFAULT_WHISPER_MODEL, device: str = "auto", compute_type: str = "default"):
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise missing("faster-whisper", "the Whisper ASR backend", "pip install faster-whisper") from None
        self.name = f"whisper:{model}"
        self._model = WhisperModel(model, device=device, compute_type=compute_type)

    def transcribe(self, wav: np.ndarray, sr: int, language: str | None = None) -> str:
        from ..data.audio import resample

        audio = resample(np.asarray(wav, dtype=np.float32), sr, self.sampling_rate)
        lang = language if language and language != "other" else None
        segments, _ = self._model.transcribe(audio, language=lang, beam_size=5, condition_on_previous_text=False)
        return " ".join(s.text.strip() for s in segments).strip()


def load_asr(spec: str | None, device: str = "auto"):
    """`pocketsphinx`, `whisper[:MODEL]`, or `none`/None (returns None)."""
    if spec is None or spec == "none":
        return None
    name, _, arg = spec.partition(":")
    if name == "pocketsphinx":
        return PocketSphinxASR()
    if name in ("whisper", "faster-whisper"):
        return FasterWhisperASR(arg or DEFAULT_WHISPER_MODEL, device=device)
    raise ValueError(f"unknown ASR backend {spec!r}: use pocketsphinx, whisper[:MODEL] or none")


def supports(asr, language: str) -> bool:
    return asr is not None and (asr.languages is None or language in asr.languages)
