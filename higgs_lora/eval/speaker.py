"""Pluggable speaker encoders and SIM, the cosine similarity of two clips' speaker embeddings.

An encoder is anything with `name` and `embed(wav, sr) -> 1-D float array`. `load_speaker_encoder(spec)`:

    resemblyzer             GE2E d-vector (Resemblyzer); its weights ship inside the wheel, so it works offline
    wavlm[:MODEL]           transformers' WavLMForXVector, MODEL a hub id or local folder
                            (default microsoft/wavlm-base-plus-sv; the first use downloads it)
    none                    no SIM

Seed-TTS-eval reports SIM with a WavLM-large model fine-tuned for verification; numbers from different
encoders are not comparable with each other, only within one report.
"""

from __future__ import annotations

import numpy as np

from .asr import missing

DEFAULT_WAVLM = "microsoft/wavlm-base-plus-sv"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    if denom == 0:
        return float("nan")
    return float(a @ b / denom)


class ResemblyzerEncoder:
    name = "resemblyzer"

    def __init__(self, device: str = "cpu"):
        try:
            from resemblyzer import VoiceEncoder, preprocess_wav
        except ImportError as err:
            raise missing(
                "resemblyzer",
                "the default speaker encoder",
                "pip install webrtcvad-wheels 'scipy<2' && pip install --no-deps resemblyzer==0.1.4"
                f" [import failed: {err}]",
            ) from None
        self._preprocess = preprocess_wav
        self._encoder = VoiceEncoder(device=device, verbose=False)

    def embed(self, wav: np.ndarray, sr: int) -> np.ndarray:
        # preprocess_wav resamples to 16 kHz, normalises loudness and cuts long pauses (webrtcvad).
        processed = self._preprocess(np.asarray(wav, dtype=np.float32), source_sr=sr)
        if processed.size < 160:  # under 10 ms of voiced audio: no speaker to embed
            return np.zeros(256, dtype=np.float32)
        return self._encoder.embed_utterance(processed)


class WavLMEncoder:
    """x-vector head on WavLM (transformers); any `*ForXVector` checkpoint with a feature extractor works."""

    sampling_rate = 16000

    def __init__(self, model: str = DEFAULT_WAVLM, device: str = "cpu"):
        import torch
        from transformers import AutoFeatureExtractor, WavLMForXVector

        self.name = f"wavlm:{model}"
        self._torch = torch
        self._device = device
        self._features = AutoFeatureExtractor.from_pretrained(model)
        self._model = WavLMForXVector.from_pretrained(model).to(device).eval()

    def embed(self, wav: np.ndarray, sr: int) -> np.ndarray:
        from ..data.audio import resample

        audio = resample(np.asarray(wav, dtype=np.float32), sr, self.sampling_rate)
        inputs = self._features(audio, sampling_rate=self.sampling_rate, return_tensors="pt")
        with self._torch.inference_mode():
            out = self._model(**{k: v.to(self._device) for k, v in inputs.items()})
        return out.embeddings[0].float().cpu().numpy()


def load_speaker_encoder(spec: str | None, device: str = "cpu"):
    """`resemblyzer`, `wavlm[:MODEL]`, or `none`/None (returns None)."""
    if spec is None or spec == "none":
        return None
    name, _, arg = spec.partition(":")
    if name == "resemblyzer":
        return ResemblyzerEncoder(device=device)
    if name == "wavlm":
        return WavLMEncoder(arg or DEFAULT_WAVLM, device=device)
    raise ValueError(f"unknown speaker encoder {spec!r}: use resemblyzer, wavlm[:MODEL] or none")
