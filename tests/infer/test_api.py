"""The design's entry point generate_arabic_speech: model, adapter and codec from keywords or the environment."""

import numpy as np
import pytest
from stream_layout import C


def test_generate_arabic_speech_takes_model_adapter_and_codec_from_keywords(sample):
    from higgs_lora.infer import api

    wav, sr = api.generate_arabic_speech(
        sample.ref_text,
        sample.ref_audio,
        sample.target_text,
        temperature=0.0,
        model_path="tiny",
        audio_tokenizer="tiny",
        max_new_tokens=12,
    )
    assert sr == 24000 and wav.dtype == np.float32 and wav.ndim == 1
    # at most 12 columns: at most 3 frames once the BOS, delay and last columns are stripped
    assert 0 < len(wav) <= (12 - C - 1) * 960 and len(wav) % 960 == 0


@pytest.mark.parametrize("text", ["", "  \t\n"])
def test_generate_arabic_speech_refuses_empty_text_with_the_validation_reason(sample, text):
    from higgs_lora.data.formats import SampleError
    from higgs_lora.infer import api

    with pytest.raises(SampleError, match="empty_text") as info:
        api.generate_arabic_speech(sample.ref_text, sample.ref_audio, text, model_path="tiny", audio_tokenizer="tiny")
    assert info.value.reason == "empty_text"


def test_design_snippet_with_tiny_in_the_environment(sample, monkeypatch):
    """The design's test, as written there: three positional arguments, no model path."""
    import arb_inference

    monkeypatch.setenv("HIGGS_LORA_MODEL", "tiny")
    monkeypatch.setenv("HIGGS_LORA_AUDIO_TOKENIZER", "tiny")
    monkeypatch.delenv("HIGGS_LORA_LORA_PATH", raising=False)
    ref_text, ref_audio_path, target_text = sample.ref_text, sample.ref_audio, sample.target_text

    result = arb_inference.generate_arabic_speech(ref_text, ref_audio_path, target_text)

    assert result is not None
    assert len(result[0]) > 0  # Generated audio
    assert result[1] == 24000
