import sys
import types

import numpy as np
import pytest

from higgs_lora.data.audio import load_audio
from higgs_lora.eval.asr import (
    MissingScorerError, PocketSphinxASR, edit_distance, error_rates, load_asr, supports,
)


def test_edit_distance_counts_substitutions_insertions_deletions():
    assert edit_distance("kitten".split(), "kitten".split()) == 0
    assert edit_distance(list("kitten"), list("sitting")) == 3
    assert edit_distance("a b c".split(), "a x c d".split()) == 2
    assert edit_distance([], "a b".split()) == 2


def test_error_rates_normalise_both_sides_first():
    r = error_rates("The weather is lovely today.", "the weather is lovely today", "en")
    assert (r.wer, r.cer) == (0.0, 0.0)
    r = error_rates("The weather is lovely today.", "the weather was lovely", "en")
    assert r.wer == pytest.approx(2 / 5)
    # Fully vocalised reference against plain ASR output: no error once normalised.
    assert error_rates("الْمَاءُ بَارِدٌ جِدًّا.", "الماء بارد جدا", "ar").wer == 0.0
    with pytest.raises(ValueError, match="empty"):
        error_rates("...", "x", "en")


def test_pocketsphinx_model_ships_in_the_wheel():
    import os

    from pocketsphinx import get_model_path

    files = os.listdir(os.path.join(get_model_path(), "en-us"))
    assert {"en-us", "cmudict-en-us.dict", "en-us.lm.bin"} <= set(files)


def test_pocketsphinx_recognises_the_shipped_english_speech(shipped_clips):
    """Real (espeak-ng) speech through the offline backend: the right transcript scores far better than
    the wrong ones, and the clearest clip is recognised word for word."""
    asr = load_asr("pocketsphinx")
    assert supports(asr, "en") and not supports(asr, "ar")
    english = [(p, t) for p, _, lang, t in shipped_clips if lang == "en"]
    hyps = [asr.transcribe(load_audio(p, 24000), 24000, "en") for p, _ in english]
    matched = [error_rates(t, h, "en").wer for (_, t), h in zip(english, hyps)]
    mismatched = [error_rates(english[j][1], h, "en").wer
                  for i, h in enumerate(hyps) for j in range(len(english)) if j != i]
    assert min(matched) <= 0.2, hyps
    assert np.mean(matched) < np.mean(mismatched) - 0.2, (matched, hyps)
    # Silence is not speech.
    assert error_rates("please call me back", asr.transcribe(np.zeros(16000), 16000), "en").wer >= 0.75


def test_missing_optional_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pocketsphinx", None)
    with pytest.raises(MissingScorerError, match="pip install pocketsphinx"):
        PocketSphinxASR()
    monkeypatch.setitem(sys.modules, "faster_whisper", None)
    with pytest.raises(MissingScorerError, match="faster-whisper"):
        load_asr("whisper:large-v3")
    with pytest.raises(ValueError, match="unknown ASR backend"):
        load_asr("kaldi")
    assert load_asr("none") is None


def test_whisper_backend_plumbing_with_a_stand_in_model(monkeypatch):
    """faster-whisper cannot fetch its weights here: check what the backend hands it and returns."""
    seen = {}

    class Segment:
        def __init__(self, text):
            self.text = text

    class WhisperModel:
        def __init__(self, model, device, compute_type):
            seen["model"] = model

        def transcribe(self, audio, language, beam_size, condition_on_previous_text):
            seen.update(n=len(audio), dtype=audio.dtype, language=language)
            return iter([Segment(" مرحبا"), Segment(" كيف حالك ")]), None

    monkeypatch.setitem(sys.modules, "faster_whisper", types.SimpleNamespace(WhisperModel=WhisperModel))
    asr = load_asr("whisper:large-v3")
    assert asr.name == "whisper:large-v3" and supports(asr, "ar")
    text = asr.transcribe(np.zeros(24000, dtype=np.float32), 24000, "ar")
    assert text == "مرحبا كيف حالك"
    assert seen == {"model": "large-v3", "n": 16000, "dtype": np.float32, "language": "ar"}
