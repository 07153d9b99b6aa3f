"""THE scoring of one clip. Fine-tuned output, baseline output and the ground-truth target (the ceiling)
all go through `Scorers.score`, so the systems in a report differ only in the audio they were given."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .asr import error_rates, load_asr, supports
from .signal import signal_metrics
from .speaker import cosine, load_speaker_encoder
from .text_norm import detect_language

SCORING_SR = 16000  # every scorer here works at 16 kHz; reference files are read at that rate once

# Columns of results.csv that hold a number per clip, with the direction that is better.
METRICS = {
    "sim": "higher",
    "wer": "lower",
    "cer": "lower",
    "duration_ratio": "closer to 1",
    "leading_silence_s": "lower",
    "trailing_silence_s": "lower",
    "clipped_fraction": "lower",
}


@dataclass
class Scorers:
    speaker: object | None = None  # see speaker.py
    asr: object | None = None  # see asr.py
    language: str = "auto"  # 'auto' = from each sample's target text (text_norm.detect_language)
    _ref_cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(
        cls, speaker_encoder: str | None, asr: str | None, language: str = "auto", device: str = "cpu"
    ) -> "Scorers":
        return cls(load_speaker_encoder(speaker_encoder, device), load_asr(asr, device), language)

    def describe(self) -> dict:
        return {
            "speaker_encoder": getattr(self.speaker, "name", None),
            "asr": getattr(self.asr, "name", None),
            "language": self.language,
        }

    def language_of(self, text: str) -> str:
        return detect_language(text) if self.language == "auto" else self.language

    def reference_embedding(self, path: str) -> np.ndarray | None:
        if self.speaker is None:
            return None
        if path not in self._ref_cache:
            from ..data.audio import load_audio

            self._ref_cache[path] = self.speaker.embed(load_audio(path, SCORING_SR), SCORING_SR)
        return self._ref_cache[path]

    def score(
        self, wav: np.ndarray, sr: int, sample, target_duration: float | None = None, stopped: bool | None = None
    ) -> dict:
        """Metrics of `wav` as the rendering of `sample` (its target text in its reference voice)."""
        row = signal_metrics(wav, sr)
        language = self.language_of(sample.target_text)
        row["language"] = language
        row["stopped_at_eos"] = stopped
        row["duration_ratio"] = round(row["duration_s"] / target_duration, 4) if target_duration else None
        row["sim"] = None
        if self.speaker is not None:
            emb = self.speaker.embed(wav, sr) if len(wav) else None
            # No audio or no voiced frame: the clone failed, and 0 keeps that failure in the means.
            sim = 0.0 if emb is None else cosine(emb, self.reference_embedding(sample.ref_audio))
            row["sim"] = round(sim, 4) if np.isfinite(sim) else 0.0
        row["transcript"], row["wer"], row["cer"] = None, None, None
        if supports(self.asr, language):
            row["transcript"] = self.asr.transcribe(wav, sr, language) if len(wav) else ""
            rates = error_rates(sample.target_text, row["transcript"], language)
            row["wer"], row["cer"] = round(rates.wer, 4), round(rates.cer, 4)
            row["ref_words"], row["word_errors"] = rates.ref_words, rates.word_errors
        return row
