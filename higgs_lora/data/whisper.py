"""Whisper features: whether a model conditions on them (its config), and the feature extractor that makes them.

The released Higgs Audio v2 has no audio tower and conditions on discrete codes only; a model with a tower
and `encode_whisper_embed` also takes Whisper log-mel features of each clip, at 16 kHz.
"""

from __future__ import annotations

WHISPER_SAMPLE_RATE = 16000


def encodes_whisper(config) -> bool:
    """The model conditions on Whisper features: its config asks for them and it has a tower to take them."""
    return bool(getattr(config, "encode_whisper_embed", False)) and not getattr(config, "skip_audio_tower", True)


class WhisperFeatures:
    """What the collator reads of a WhisperProcessor (`.feature_extractor`), without its tokenizer files."""

    def __init__(self, feature_extractor):
        self.feature_extractor = feature_extractor


def default_whisper_processor(config) -> WhisperFeatures:
    """Whisper's log-mel feature extractor, built offline with its default settings (16 kHz, 30 s
    windows) and as many mel bins as the model's audio tower takes (128 for whisper-large-v3)."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatures(WhisperFeatureExtractor(feature_size=int(config.audio_encoder_config.num_mel_bins)))
