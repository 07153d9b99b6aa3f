import sys
import types

import numpy as np
import pytest

from higgs_lora.data.audio import load_audio
from higgs_lora.eval.asr import (
    AutoASR,
    MissingScorerError,
    PocketSphinxASR,
    WhisperASR,
    error_rates,
    load_asr,
    supports,
)
from higgs_lora.eval.text_norm import detect_language


def test_error_rates_count_substitutions_insertions_deletions():
    r = error_rates("a b c", "a x c d", "en")  # one substitution, one insertion
    assert (r.word_errors, r.ref_words, r.wer) == (2, 3, pytest.approx(2 / 3))
    r = error_rates("kitten", "sitting", "en")  # the textbook 3 edits, over 6 characters
    assert (r.char_errors, r.ref_chars, r.cer) == (3, 6, pytest.approx(0.5))
    r = error_rates("a b", "", "en")  # nothing recognised: every word deleted
    assert (r.word_errors, r.wer, r.cer) == (2, 1.0, 1.0)
    assert error_rates("a b", "a b c d e", "en").wer == pytest.approx(1.5)  # insertions may exceed 100%
    assert error_rates("a b", "ab", "en").cer == pytest.approx(1 / 3)  # the space counts as a character


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
    mismatched = [
        error_rates(english[j][1], h, "en").wer for i, h in enumerate(hyps) for j in range(len(english)) if j != i
    ]
    assert min(matched) <= 0.2, hyps
    assert np.mean(matched) < np.mean(mismatched) - 0.2, (matched, hyps)
    # Silence is not speech.
    assert error_rates("please call me back", asr.transcribe(np.zeros(16000), 16000), "en").wer >= 0.75


def test_missing_optional_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pocketsphinx", None)
    with pytest.raises(MissingScorerError, match="pip install pocketsphinx"):
        PocketSphinxASR()
    monkeypatch.setitem(sys.modules, "faster_whisper", None)
    with pytest.raises(MissingScorerError, match="faster-whisper") as err:
        load_asr("faster-whisper:large-v3")
    # faster-whisper comes with the [whisper] extra; [eval] does not install it.
    assert "higgs-lora[whisper]" in str(err.value) and "[eval]" not in str(err.value)
    with pytest.raises(ValueError, match="unknown ASR backend"):
        load_asr("kaldi")
    assert load_asr("none") is None


def test_faster_whisper_backend_plumbing_with_a_stand_in_model(monkeypatch):
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
    asr = load_asr("faster-whisper:large-v3")
    assert asr.name == "faster-whisper:large-v3" and supports(asr, "ar")
    text = asr.transcribe(np.zeros(24000, dtype=np.float32), 24000, "ar")
    assert text == "مرحبا كيف حالك"
    assert seen == {"model": "large-v3", "n": 16000, "dtype": np.float32, "language": "ar"}


@pytest.fixture()
def empty_hub_cache(monkeypatch, tmp_path):
    """No hub cache and no network: what an offline machine that never fetched Whisper sees."""
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)


def test_whisper_that_cannot_be_had_is_one_line_naming_the_model_and_the_ways_out(empty_hub_cache):
    with pytest.raises(MissingScorerError) as err:
        load_asr("whisper:large-v3")
    message = str(err.value)
    assert "\n" not in message
    assert "openai/whisper-large-v3@06f233fe06e710322aca913c1bc4249a0d71fce1" in message
    assert "--asr whisper:FOLDER" in message and "--asr none" in message


def _greedy(model, processor, audio, prefix):
    """Whisper decoding written out by hand: the forced prefix, then the most likely token until end of text."""
    import torch

    features = processor.feature_extractor(audio, sampling_rate=16000, return_tensors="pt").input_features
    ids = [processor.tokenizer.convert_tokens_to_ids(t) for t in prefix]
    eos = processor.tokenizer.eos_token_id
    with torch.no_grad():
        encoded = model.get_encoder()(features).last_hidden_state
        while len(ids) < model.config.max_target_positions:
            logits = model(encoder_outputs=(encoded,), decoder_input_ids=torch.tensor([ids])).logits
            ids.append(int(logits[0, -1].argmax()))
            if ids[-1] == eos:
                break
    return processor.tokenizer.decode(ids, skip_special_tokens=True).strip()


def test_transformers_whisper_transcribes_as_a_hand_written_greedy_decode(tiny_whisper, shipped_clips):
    """The whole Whisper path (files -> feature extractor -> generate with the language forced -> decode)
    against Whisper's decoding written out by hand, on a tiny random-weight model built offline."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    asr = load_asr(f"whisper:{tiny_whisper}", device="cpu")
    assert isinstance(asr, WhisperASR) and supports(asr, "ar") and supports(asr, "en")
    model = WhisperForConditionalGeneration.from_pretrained(tiny_whisper).eval()
    processor = WhisperProcessor.from_pretrained(tiny_whisper)
    path = next(p for p, _, lang, _ in shipped_clips if lang == "ar")
    audio = load_audio(path, 16000)
    by_hand = {
        lang: _greedy(
            model, processor, audio, ["<|startoftranscript|>", f"<|{lang}|>", "<|transcribe|>", "<|notimestamps|>"]
        )
        for lang in ("ar", "en")
    }
    assert by_hand["ar"] != by_hand["en"]  # the forced language matters, so the comparison below can see it
    assert asr.transcribe(load_audio(path, 24000), 24000, "ar") == by_hand["ar"]
    assert asr.transcribe(audio, 16000, "en") == by_hand["en"]


def test_whisper_cuts_audio_over_30_seconds_into_windows(tiny_whisper):
    asr = load_asr(f"whisper:{tiny_whisper}", device="cpu")
    audio = (np.random.default_rng(0).standard_normal(16000 * 35) * 0.1).astype(np.float32)
    whole = asr.transcribe(audio, 16000, "ar")
    parts = [asr.transcribe(audio[: 16000 * 30], 16000, "ar"), asr.transcribe(audio[16000 * 30 :], 16000, "ar")]
    assert whole == " ".join(p for p in parts if p)


def test_whisper_in_the_gpus_fp16_runs_on_fp32_features(tiny_whisper, monkeypatch):
    """On CUDA the model loads in fp16 while the feature extractor gives fp32: forced here on CPU, the
    features must be cast to the model's dtype or the first convolution refuses them."""
    import torch

    import higgs_lora.eval.asr as asr_module

    monkeypatch.setattr(asr_module, "whisper_dtype", lambda device: torch.float16)
    asr = load_asr(f"whisper:{tiny_whisper}", device="cpu")
    text = asr.transcribe(np.zeros(16000, dtype=np.float32), 16000, "ar")
    assert asr._model.dtype == torch.float16 and isinstance(text, str) and text


def test_auto_routes_english_to_pocketsphinx_and_arabic_to_whisper(tiny_whisper):
    from higgs_lora.cli import build_parser

    assert build_parser().parse_args(["eval", "--data", "d", "--output_dir", "o"]).asr == "auto"
    auto = AutoASR(device="cpu", whisper=str(tiny_whisper))
    assert isinstance(auto.backend("en"), PocketSphinxASR) and isinstance(auto.backend("ar"), WhisperASR)
    assert auto.backend("other") is auto.whisper and supports(auto, "ar") and supports(auto, "other")
    assert "pocketsphinx" in auto.name and str(tiny_whisper) in auto.name


def test_auto_without_whisper_warns_once_and_leaves_arabic_unscored(empty_hub_cache, caplog):
    with caplog.at_level("WARNING", logger="higgs_lora.eval.asr"):
        auto = load_asr("auto")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "Arabic" in warnings[0] and "--asr none" in warnings[0]
    assert supports(auto, "en") and not supports(auto, "ar")


def test_eval_scores_arabic_through_whisper_end_to_end(tiny_whisper, sample_data_path, tmp_path):
    """`higgs-lora eval --asr whisper:FOLDER` on the tiny kit: every Arabic row, ground truth included,
    gets a transcript and a WER computed from it, and the report names the recogniser."""
    import csv
    import json

    from higgs_lora.cli import main

    samples = json.loads(sample_data_path.read_text(encoding="utf-8"))
    arabic = [s for s in samples if detect_language(s["messages"][3]["content"]) == "ar"][:2]
    for sample in arabic:  # the audio paths are relative to the data file, which moves
        for message in sample["messages"][2::2]:
            message["content"]["audio_url"] = str(sample_data_path.parent / message["content"]["audio_url"])
    data = tmp_path / "ar.json"
    data.write_text(json.dumps(arabic, ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "eval"
    assert (
        main(
            [
                "eval",
                "--data",
                str(data),
                "--model_path",
                "tiny",
                "--audio_tokenizer",
                "tiny",
                "--baseline_model",
                "none",
                "--output_dir",
                str(out),
                "--speaker_encoder",
                "none",
                "--asr",
                f"whisper:{tiny_whisper}",
                "--max_new_tokens",
                "24",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    with (out / "results.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {r["language"] for r in rows} == {"ar"}
    for row in rows:
        sample = arabic[int(row["index"])]
        expected = error_rates(sample["messages"][3]["content"], row["transcript"], "ar")
        assert float(row["wer"]) == pytest.approx(round(expected.wer, 4))
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["settings"]["asr"] == f"whisper:{tiny_whisper}"
