"""Shared pieces of the eval tests: the shipped clips by speaker, and cheap stand-in scorers."""

import json

import numpy as np
import pytest

from higgs_lora.data.sample_data import ASSETS


@pytest.fixture(scope="session")
def shipped_clips():
    """[(path, speaker, language, transcript)] of the clips in higgs_lora/data/assets."""
    manifest = json.loads(ASSETS.joinpath("manifest.json").read_text(encoding="utf-8"))
    return [(str(ASSETS.joinpath(c["file"])), c["speaker"], c["language"], c["transcript"]) for c in manifest["clips"]]


class FakeEncoder:
    """Embeds a clip by loudness statistics: deterministic, instant, different for different audio."""

    name = "fake-encoder"

    def __init__(self):
        self.calls = 0

    def embed(self, wav, sr):
        self.calls += 1
        wav = np.asarray(wav, dtype=np.float64)
        return np.array([np.abs(wav).mean(), wav.std(), (np.diff(np.sign(wav)) != 0).mean(), 1.0])


class FakeASR:
    """Returns the same transcript for every clip, in every language."""

    name = "fake-asr"
    languages = None

    def __init__(self, text="the weather is lovely"):
        self.text = text
        self.calls = []

    def transcribe(self, wav, sr, language=None):
        self.calls.append((len(wav), sr, language))
        return self.text


@pytest.fixture()
def fakes():
    """The stand-in scorer classes: (FakeEncoder, FakeASR)."""
    return FakeEncoder, FakeASR
