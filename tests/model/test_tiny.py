"""The offline tiny kit: released structure at toy sizes, a byte-level tokenizer with the real special tokens."""

import pytest
import torch

from higgs_lora.model import tiny
from higgs_lora.model.tiny import build_config, build_tokenizer, cache_root, ensure_tiny_model, special_id


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A tiny kit built from scratch into a fresh root (not the shared cache)."""
    root = tmp_path_factory.mktemp("kit_root")
    return root, ensure_tiny_model(root)


def test_config_has_the_released_structure(tiny_config):
    c = tiny_config
    assert c.audio_adapter_type == "dual_ffn_fast_forward"
    assert list(c.audio_dual_ffn_layers) == list(range(c.text_config.num_hidden_layers))
    assert c.use_delay_pattern is True
    assert c.skip_audio_tower is True
    assert c.audio_num_codebooks == 8
    assert c.audio_codebook_size == 1024
    assert (c.audio_stream_bos_id, c.audio_stream_eos_id) == (1024, 1025)
    assert c.encode_audio_in_tokens is True
    assert c.encode_whisper_embed is False
    assert not c.use_audio_out_self_attention


def test_model_modules_match_the_released_layout(tiny_model_factory):
    model = tiny_model_factory()
    names = {n for n, _ in model.named_modules()}
    assert all(type(layer).__name__ == "HiggsAudioDualFFNDecoderLayer" for layer in model.layers)
    for suffix in (
        "self_attn.q_proj",
        "mlp.gate_proj",
        "audio_mlp.down_proj",
        "audio_decoder_proj.text_lm_head",
        "audio_decoder_proj.audio_lm_head",
        "audio_codebook_embeddings",
    ):
        assert any(n.endswith(suffix) for n in names), suffix
    for absent in ("audio_tower", "audio_encoder_proj", "audio_attn"):
        assert not any(absent in n for n in names), absent
    # one head row per (codebook, code incl. stream BOS/EOS)
    assert model.audio_decoder_proj.audio_lm_head.out_features == 8 * 1026


@pytest.mark.parametrize(
    "token,attr",
    [
        ("<|AUDIO|>", "audio_in_token_idx"),
        ("<|AUDIO_OUT|>", "audio_out_token_idx"),
        ("<|audio_out_bos|>", "audio_out_bos_token_id"),
        ("<|audio_eos|>", "audio_eos_token_id"),
        ("<|end_of_text|>", "pad_token_id"),
    ],
)
def test_special_token_ids_match_the_config(tiny_tokenizer, tiny_config, token, attr):
    assert tiny_tokenizer.convert_tokens_to_ids(token) == getattr(tiny_config, attr)
    # a special token is one id, not a sequence of bytes
    assert tiny_tokenizer.encode(token, add_special_tokens=False) == [getattr(tiny_config, attr)]


def test_special_tokens_keep_the_llama3_order(tiny_tokenizer):
    real = {
        "<|begin_of_text|>": 128000,
        "<|end_of_text|>": 128001,
        "<|start_header_id|>": 128006,
        "<|end_header_id|>": 128007,
        "<|eot_id|>": 128009,
        "<|audio_bos|>": 128011,
        "<|audio_eos|>": 128012,
        "<|audio_out_bos|>": 128013,
        "<|AUDIO|>": 128015,
        "<|AUDIO_OUT|>": 128016,
    }
    for token, real_id in real.items():
        assert tiny_tokenizer.convert_tokens_to_ids(token) == real_id - 128000 + 256 == special_id(token)


def test_vocab_size_equals_tokenizer_length(tiny_tokenizer, tiny_config, tiny_model_factory):
    assert tiny_config.text_config.vocab_size == len(tiny_tokenizer)
    model = tiny_model_factory()
    assert model.embed_tokens.num_embeddings == len(tiny_tokenizer)
    assert model.audio_decoder_proj.text_lm_head.out_features == len(tiny_tokenizer)


@pytest.mark.parametrize(
    "text", ["plain ascii", "مرحبا بالعالم، كيف حالك؟", "emoji 😀🎤 mixed عربي", "tabs\tand\nnewlines  "]
)
def test_byte_level_round_trip(tiny_tokenizer, text):
    ids = tiny_tokenizer.encode(text, add_special_tokens=False)
    assert len(ids) == len(text.encode("utf-8"))  # one token per byte
    assert max(ids) < 256
    assert tiny_tokenizer.decode(ids) == text


def test_fresh_tokenizer_matches_the_saved_one(tiny_tokenizer):
    fresh = build_tokenizer()
    text = "<|start_header_id|>user<|end_header_id|>\n\nسلام<|eot_id|>"
    assert fresh.encode(text, add_special_tokens=False) == tiny_tokenizer.encode(text, add_special_tokens=False)
    assert len(fresh) == len(tiny_tokenizer) == tiny.VOCAB_SIZE


def test_build_config_ids_stay_inside_the_vocabulary():
    c = build_config()
    for attr in (
        "audio_in_token_idx",
        "audio_out_token_idx",
        "audio_out_bos_token_id",
        "audio_eos_token_id",
        "pad_token_id",
    ):
        assert 256 <= getattr(c, attr) < c.text_config.vocab_size


def test_ensure_builds_into_the_given_root(built):
    root, folder = built
    assert folder.parent == root
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (folder / name).is_file()
    # the temporary build folder was renamed away, nothing else is left in the root
    assert list(root.iterdir()) == [folder]


def test_ensure_is_idempotent(built):
    root, folder = built
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = ensure_tiny_model(root)
    assert again == folder
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    assert list(root.iterdir()) == [folder]


def test_built_folder_loads_with_from_pretrained_and_autotokenizer(built, tiny_tokenizer):
    from boson_multimodal.model.higgs_audio import HiggsAudioModel
    from transformers import AutoTokenizer

    _, folder = built
    model = HiggsAudioModel.from_pretrained(folder, torch_dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(folder)
    assert model.config.audio_num_codebooks == 8
    assert len(tok) == model.config.text_config.vocab_size
    assert tok.convert_tokens_to_ids("<|AUDIO_OUT|>") == model.config.audio_out_token_idx
    assert tok.pad_token is None or tok.pad_token_id == model.config.pad_token_id


def test_build_is_seeded_and_matches_the_cached_kit(built):
    """Two builds of one kit version hold identical weights (a mismatch means a stale cache: bump _KIT_VERSION)."""
    from safetensors.torch import load_file

    _, folder = built
    fresh = load_file(str(folder / "model.safetensors"))
    cached = load_file(str(ensure_tiny_model() / "model.safetensors"))
    assert fresh.keys() == cached.keys()
    assert all(torch.equal(fresh[k], cached[k]) for k in fresh)


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HIGGS_LORA_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv("HIGGS_LORA_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "higgs_lora"
