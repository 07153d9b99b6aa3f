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


# Whisper's language, task and control tokens, as the real multilingual tokenizer names them.
WHISPER_SPECIALS = [
    "<|startoftranscript|>",
    "<|en|>",
    "<|ar|>",
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nocaptions|>",
    "<|notimestamps|>",
]


def build_tiny_whisper(folder):
    """A random-weight Whisper saved as transformers saves the real one (config, generation config,
    feature extractor, tokenizer, weights), built offline.

    The real multilingual tokenizer's files cannot be fetched here, so the tokenizer is Whisper's own
    class over a byte-level vocabulary with no merges (one token per UTF-8 byte, so any Arabic text
    round-trips) plus the special tokens above; the generation config maps languages and tasks to them
    as the released generation_config.json does. It transcribes nonsense, through the real code path.
    """
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )
    from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(
        json.dumps({c: i for i, c in enumerate(bytes_to_unicode().values())}), encoding="utf-8"
    )
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    end = "<|endoftext|>"
    tokenizer = WhisperTokenizer(
        str(folder / "vocab.json"),
        str(folder / "merges.txt"),
        unk_token=end,
        bos_token=end,
        eos_token=end,
        pad_token=end,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": WHISPER_SPECIALS})
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in [end] + WHISPER_SPECIALS}
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_source_positions=1500,
        max_target_positions=32,
        pad_token_id=ids[end],
        bos_token_id=ids[end],
        eos_token_id=ids[end],
        decoder_start_token_id=ids["<|startoftranscript|>"],
        suppress_tokens=None,
        begin_suppress_tokens=None,
        init_std=0.5,
    )  # large random weights: the output depends on the forced language
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"],
        eos_token_id=ids[end],
        pad_token_id=ids[end],
        bos_token_id=ids[end],
        is_multilingual=True,
        no_timestamps_token_id=ids["<|notimestamps|>"],
        lang_to_id={"<|en|>": ids["<|en|>"], "<|ar|>": ids["<|ar|>"]},
        task_to_id={"translate": ids["<|translate|>"], "transcribe": ids["<|transcribe|>"]},
        max_length=32,
    )
    model.save_pretrained(folder)
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80), tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_whisper(tmp_path_factory):
    """Folder of a tiny random-weight transformers Whisper (see build_tiny_whisper)."""
    return build_tiny_whisper(tmp_path_factory.mktemp("tiny_whisper"))
