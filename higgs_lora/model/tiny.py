"""The offline tiny kit: a random-weight Higgs Audio model of the released shape, and its tokenizer.

The model is the real `HiggsAudioModel` class with the released configuration's structure
(`dual_ffn_fast_forward` on every layer, delay pattern, no audio tower, 8 codebooks of 1024 with
stream BOS/EOS = 1024/1025, audio-in as discrete codes) at toy sizes. The tokenizer is byte level,
so any text (Arabic included) round-trips, and carries the Llama-3 special tokens Higgs Audio uses,
laid out in the real order after the 256 byte tokens (real id 128000 + k becomes 256 + k).

Built once, deterministically, into a cache folder that `from_pretrained` loads like any model.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

TINY = "tiny"
_KIT_VERSION = "v1"
_BYTE_VOCAB = 256
_SPECIAL_BASE = _BYTE_VOCAB

# Llama-3 special tokens from id 128000 on, as in Higgs Audio's tokenizer (audio tokens reuse reserved slots).
SPECIAL_TOKENS = [
    "<|begin_of_text|>",  # 128000
    "<|end_of_text|>",  # 128001, also the pad id
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|reserved_special_token_2|>",
    "<|start_header_id|>",  # 128006
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",  # 128009
    "<|python_tag|>",
    "<|audio_bos|>",  # 128011
    "<|audio_eos|>",  # 128012
    "<|audio_out_bos|>",  # 128013
    "<|reserved_special_token_6|>",
    "<|AUDIO|>",  # 128015
    "<|AUDIO_OUT|>",  # 128016
    "<|recipient|>",
]
# Vocabulary = tokenizer length exactly, so generate() can never sample an id the tokenizer lacks.
VOCAB_SIZE = 288
SPECIAL_TOKENS += [
    f"<|reserved_special_token_{i}|>" for i in range(100, 100 + VOCAB_SIZE - _SPECIAL_BASE - len(SPECIAL_TOKENS))
]

SIZES = dict(hidden=64, intermediate=128, layers=2, heads=4, kv_heads=2)


def special_id(token: str) -> int:
    return _SPECIAL_BASE + SPECIAL_TOKENS.index(token)


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import PreTrainedTokenizerFast

    alphabet = ByteLevel.alphabet()  # the 256 printable stand-ins for raw bytes
    byte_chars = sorted(alphabet, key=lambda ch: _byte_of(ch))
    vocab = {ch: i for i, ch in enumerate(byte_chars)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|begin_of_text|>",
        eos_token="<|end_of_text|>",
        clean_up_tokenization_spaces=False,
    )
    fast.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[2:]})
    assert len(fast) == VOCAB_SIZE and fast.convert_tokens_to_ids("<|AUDIO_OUT|>") == special_id("<|AUDIO_OUT|>")
    return fast


def _byte_of(ch: str) -> int:
    # Inverse of GPT-2's bytes_to_unicode: printable latin-1 maps to itself, the rest to 256 + k.
    from tokenizers.pre_tokenizers import ByteLevel

    table = {}
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    k = 0
    for b in range(256):
        if b in printable:
            table[chr(b)] = b
        else:
            table[chr(256 + k)] = b
            k += 1
    assert set(table) == set(ByteLevel.alphabet())
    return table[ch]


def build_config():
    from boson_multimodal.model.higgs_audio import HiggsAudioConfig
    from transformers import LlamaConfig

    s = SIZES
    text = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=s["hidden"],
        intermediate_size=s["intermediate"],
        num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"],
        num_key_value_heads=s["kv_heads"],
        head_dim=s["hidden"] // s["heads"],
        max_position_embeddings=131072,
        rms_norm_eps=1e-5,
        rope_theta=500000.0,
        rope_scaling={
            "factor": 32.0,
            "high_freq_factor": 4.0,
            "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3",
        },
        bos_token_id=special_id("<|begin_of_text|>"),
        eos_token_id=special_id("<|end_of_text|>"),
        tie_word_embeddings=True,
    )
    return HiggsAudioConfig(
        text_config=text,
        hidden_size=s["hidden"],
        audio_adapter_type="dual_ffn_fast_forward",
        audio_dual_ffn_layers=list(range(s["layers"])),
        audio_ffn_hidden_size=s["hidden"],
        audio_ffn_intermediate_size=s["intermediate"],
        audio_decoder_proj_num_layers=0,
        audio_embed_avg=False,
        encode_whisper_embed=False,
        encode_audio_in_tokens=True,
        use_delay_pattern=True,
        skip_audio_tower=True,
        use_audio_out_embed_projector=False,
        use_audio_out_self_attention=False,
        audio_num_codebooks=8,
        audio_codebook_size=1024,
        audio_stream_bos_id=1024,
        audio_stream_eos_id=1025,
        audio_in_token_idx=special_id("<|AUDIO|>"),
        audio_out_token_idx=special_id("<|AUDIO_OUT|>"),
        audio_out_bos_token_id=special_id("<|audio_out_bos|>"),
        audio_eos_token_id=special_id("<|audio_eos|>"),
        pad_token_id=special_id("<|end_of_text|>"),
    )


def cache_root() -> Path:
    root = (
        os.environ.get("HIGGS_LORA_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "higgs_lora"
    )
    return Path(root)


def ensure_tiny_model(root: Path | None = None) -> Path:
    """Path of the tiny model folder (config, weights, tokenizer), building it on first use."""
    folder = (root or cache_root()) / f"tiny-higgs-audio-{_KIT_VERSION}"
    if (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file():
        return folder
    import torch
    from boson_multimodal.model.higgs_audio import HiggsAudioModel

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = HiggsAudioModel(build_config())
        model.save_pretrained(tmp, safe_serialization=True)
        build_tokenizer().save_pretrained(tmp)
        try:
            os.replace(tmp, folder)  # atomic: a concurrent builder either wins or finds it complete
        except OSError:
            if not (folder / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
