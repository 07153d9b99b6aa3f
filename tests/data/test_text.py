"""The Arabic text front-end: each option on Arabic strings, spec round trips, the speaking-rate warning."""

import json

import pytest

from higgs_lora.data.sample import CloneSample
from higgs_lora.data.text import (
    DEFAULT_TEXT_NORMALIZATION,
    TextNormalizer,
    implausible_speaking_rate,
    normalize_sample,
    speaking_rate,
    spoken_chars,
)

VOCALISED = "السَّلَامُ عَلَيْكُمْ"


def n(spec, text):
    return TextNormalizer.from_config(spec)(text)


def test_default_removes_tatweel_and_extra_whitespace_but_keeps_diacritics():
    text = "\u200f  مرحـــبا\u00a0\u00a0بِكُم\t\n في   الدرس ٣ "
    assert n(None, text) == "مرحبا بِكُم في الدرس ٣"
    assert TextNormalizer.from_config(None) == TextNormalizer.from_config(DEFAULT_TEXT_NORMALIZATION)
    assert n(None, VOCALISED) == VOCALISED


def test_strip_diacritics_removes_harakat_shadda_tanwin_and_dagger_alif():
    assert n("strip_diacritics", VOCALISED) == "السلام عليكم"
    assert n("strip_diacritics", "كتابٌ هٰذا") == "كتاب هذا"
    assert n("strip_diacritics", "hello") == "hello"


def test_digits_both_ways_arabic_and_persian():
    assert n("digits=western", "العام ٢٠٢٤ والرقم ۱۲۳") == "العام 2024 والرقم 123"
    assert n("digits=arabic", "2024 و ۴۵") == "٢٠٢٤ و ٤٥"


def test_punctuation_both_ways_and_unified_quotes():
    assert n("whitespace,punct=arabic", "قال: «نعم» , حقا ?") == 'قال: "نعم"، حقا؟'
    assert n("punct=latin", "نعم، لا؛ لماذا؟ …") == "نعم, لا; لماذا? ..."


def test_nfkc_maps_presentation_forms_to_letters():
    assert n("nfkc", "\ufefb") == "لا"  # lam-alef ligature form
    assert n("none", "\ufefb") == "\ufefb"


def test_none_keeps_text_exactly():
    text = "  مرحـــبا  "
    assert n("none", text) == text and n("", text) == text


def test_spec_round_trips_and_is_json_serialisable():
    spec = "whitespace,tatweel,strip_diacritics,digits=western,punct=arabic"
    norm = TextNormalizer.from_config(spec)
    assert TextNormalizer.from_config(norm.to_config()) == norm
    assert TextNormalizer.from_config(json.loads(json.dumps(norm.to_config()))) == norm
    assert TextNormalizer.from_config({"tatweel": True, "digits": "western"}).to_config() == "tatweel,digits=western"
    assert TextNormalizer.from_config("none").to_config() == "none"
    assert TextNormalizer.from_config("default,nfkc") == TextNormalizer(whitespace=True, tatweel=True, nfkc=True)


@pytest.mark.parametrize("bad", ["shout", "digits=roman", {"loud": True}, 3])
def test_unknown_options_are_refused_with_the_known_ones(bad):
    with pytest.raises(ValueError, match="text normalization"):
        TextNormalizer.from_config(bad)


def test_normalize_sample_touches_transcripts_only():
    s = CloneSample("مرحـبا  يا", "r.wav", "كيـف  الحال", "t.wav", system_prompt="Speak  ـ now.", speaker="s")
    out = normalize_sample(s, "default")
    assert (out.ref_text, out.target_text, out.system_prompt) == ("مرحبا يا", "كيف الحال", "Speak  ـ now.")
    assert (out.ref_audio, out.target_audio, out.speaker) == ("r.wav", "t.wav", "s")


def test_speaking_rate_counts_letters_and_digits_not_diacritics_or_spaces():
    assert spoken_chars(VOCALISED) == spoken_chars("السلام عليكم") == 11
    assert speaking_rate("ab cd", 2.0) == 2.0
    assert implausible_speaking_rate("السلام عليكم", 1.0) is None  # 11 chars/s
    too_fast = implausible_speaking_rate("السلام عليكم " * 10, 1.0)
    assert too_fast and "110.0 chars/s" in too_fast
    assert implausible_speaking_rate("نعم", 10.0)  # 0.3 chars/s: likely the wrong clip
    assert implausible_speaking_rate("نعم", 10.0, min_cps=0.1) is None


def test_every_command_that_reads_transcripts_takes_the_same_flag_and_train_stores_it():
    from dataclasses import asdict

    from higgs_lora.cli import build_parser
    from higgs_lora.cli.train import train_config_from_args
    from higgs_lora.train.config import TrainConfig

    parser = build_parser()
    for argv in (
        ["validate", "d.json"],
        ["infer", "--chatml_file", "d.json", "--output_dir", "o"],
        ["check-alignment", "--train_data", "d.json"],
        ["train", "--train_data", "d.json"],
    ):
        args = parser.parse_args(argv + ["--text_normalization", "tatweel,digits=western"])
        assert args.text_normalization == "tatweel,digits=western"
    args = parser.parse_args(["train", "--train_data", "d.json", "--text_normalization", "none"])
    assert train_config_from_args(args).text_normalization == "none"
    cfg = train_config_from_args(parser.parse_args(["train", "--train_data", "d.json"]))
    assert cfg.text_normalization == TrainConfig(train_data="").text_normalization == DEFAULT_TEXT_NORMALIZATION
    assert json.loads(json.dumps(asdict(cfg)))["text_normalization"] == DEFAULT_TEXT_NORMALIZATION
