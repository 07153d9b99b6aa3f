"""Export and import without the native runtime: renaming, config mapping, round trip, hub snapshots, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from higgs_lora.cli import main
from higgs_lora.model import resolve
from higgs_lora.model.load import load_model, load_tokenizer
from higgs_lora.model.tiny import ensure_tiny_model
from higgs_lora.native import codec as native_codec
from higgs_lora.native import config as native_config
from higgs_lora.native import weights
from higgs_lora.native.export import EXPORT_RECORD, export
from higgs_lora.native.imports import MARKER, to_boson_folder


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return export("tiny", tmp_path_factory.mktemp("export") / "native").output_dir


def _strip_record(folder: Path, root: Path) -> Path:
    """A native folder as Boson's hub holds it: no record of ours, so the config is rebuilt from native fields."""
    copy = root / "hub-like"
    shutil.copytree(folder, copy)
    (copy / EXPORT_RECORD).unlink()
    return copy


def test_export_writes_the_native_layout(exported):
    config = json.loads((exported / "config.json").read_text())
    assert config["model_type"] == "higgs_audio_v2" and config["codebook_size"] == 1026
    assert config["tie_word_embeddings"] is False and config["rope_parameters"]["rope_type"] == "llama3"
    tokenizer = load_tokenizer("tiny")
    assert config["audio_delay_token_id"] == tokenizer.convert_tokens_to_ids("<|reserved_special_token_6|>")
    names = set(load_file(str(exported / "model.safetensors")))
    assert {
        "text_lm_head.weight",
        "audio_lm_head.weight",
        "model.embed_audio_tokens.embed_audio_tokens.weight",
        "model.layers.0.audio_mlp.up_proj.weight",
        "model.norm.weight",
    } <= names
    assert not any(n.startswith(("audio_decoder_proj.", "layers.", "audio_codebook")) for n in names)
    assert (exported / "chat_template.jinja").is_file() and (exported / "processor_config.json").is_file()


@pytest.mark.parametrize("with_record", [True, False])
def test_round_trip_is_bit_identical(exported, tmp_path, with_record, caplog):
    native = exported if with_record else _strip_record(exported, tmp_path)
    if with_record:  # the converted folder goes next to the source: keep the fixture's folder clean
        native = tmp_path / "copy"
        shutil.copytree(exported, native)
    with caplog.at_level("WARNING"):
        boson = to_boson_folder(native)
    assert boson == native.parent / (native.name + ".boson")
    assert any("converted it once" in r.getMessage() for r in caplog.records)
    original = load_file(str(ensure_tiny_model() / "model.safetensors"))
    back = load_file(str(boson / "model.safetensors"))
    assert set(back) == set(original)
    assert all(torch.equal(back[k], original[k]) and back[k].dtype == original[k].dtype for k in original)
    model = load_model(str(boson), device="cpu", dtype="fp32")
    tiny = load_model("tiny", device="cpu", dtype="fp32")
    for key in (
        "audio_num_codebooks",
        "audio_codebook_size",
        "audio_out_token_idx",
        "audio_in_token_idx",
        "audio_eos_token_id",
        "audio_out_bos_token_id",
        "pad_token_id",
        "use_delay_pattern",
    ):
        assert getattr(model.config, key) == getattr(tiny.config, key), key
    assert model.config.text_config.rope_scaling == tiny.config.text_config.rope_scaling
    assert load_tokenizer(str(boson)).encode("مرحبا <|AUDIO_OUT|>") == load_tokenizer("tiny").encode(
        "مرحبا <|AUDIO_OUT|>"
    )
    # once: the second call reuses the folder without converting again
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert to_boson_folder(native) == boson
    assert not caplog.records


def test_released_config_maps_both_ways():
    released = json.loads(native_config.RELEASED_CONFIG.read_text())
    ids = {
        "<|begin_of_text|>": 128000,
        "<|eot_id|>": 128009,
        "<|AUDIO|>": 128015,
        "<|audio_eos|>": 128012,
        native_config.DELAY_TOKEN: 128014,
    }
    native = native_config.to_native(released, ids)
    assert (
        native["hidden_size"],
        native["num_hidden_layers"],
        native["num_key_value_heads"],
        native["vocab_size"],
    ) == (3072, 28, 8, 128256)
    assert native["codebook_size"] == 1026 and native["audio_token_id"] == 128016
    assert native["rope_parameters"] == {**released["text_config"]["rope_scaling"], "rope_theta": 500000.0}
    back = native_config.to_boson(native, ids)
    for key in (
        "audio_num_codebooks",
        "audio_codebook_size",
        "audio_out_token_idx",
        "audio_in_token_idx",
        "audio_eos_token_id",
        "audio_out_bos_token_id",
        "audio_dual_ffn_layers",
        "audio_adapter_type",
        "use_delay_pattern",
        "skip_audio_tower",
        "encode_audio_in_tokens",
    ):
        assert back[key] == released[key], key
    for key in (
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "head_dim",
        "vocab_size",
        "rope_theta",
        "rope_scaling",
        "rms_norm_eps",
        "max_position_embeddings",
    ):
        assert back["text_config"][key] == released["text_config"][key], key


def test_released_weight_names_rename_both_ways():
    from boson_multimodal.model.higgs_audio import HiggsAudioConfig, HiggsAudioModel

    released = json.loads(native_config.RELEASED_CONFIG.read_text())
    with torch.device("meta"):
        names = list(HiggsAudioModel(HiggsAudioConfig(**released)).state_dict())
    native = [weights.native_name(n) for n in names]
    assert None not in native and len(set(native)) == len(names)
    assert [weights.boson_name(n) for n in native] == names


def test_shapes_the_native_format_cannot_hold_are_refused():
    config = json.loads((ensure_tiny_model() / "config.json").read_text())
    config["audio_dual_ffn_layers"] = [0]
    with pytest.raises(native_config.NotExportable, match="every layer"):
        native_config.check_exportable(config)


def test_codec_names_map_both_ways_on_the_released_shape():
    from higgs_lora.bench.random_codec import offline_semantic_teacher
    from higgs_lora.data.higgs_codec import RELEASED_TOKENIZER_CONFIG, boson_tokenizer_module

    with torch.device("meta"), offline_semantic_teacher():
        state = boson_tokenizer_module().HiggsAudioTokenizer(**RELEASED_TOKENIZER_CONFIG, device="meta").state_dict()
    n = len(RELEASED_TOKENIZER_CONFIG["ratios"])
    names = [k for k in state if not k.endswith("_v")]
    native = {native_codec._to_native_name(k[:-2] if k.endswith("_g") else k, n) for k in names}
    back = {native_codec._to_boson_name(k, n) for k in native}
    assert back == {k[:-2] if k.endswith("_g") else k for k in names}
    cfg = native_codec.config_to_native(RELEASED_TOKENIZER_CONFIG, {"model_type": "hubert"}, 64, 1024)
    assert cfg["target_bandwidths"][-1] == 2  # 8 quantizers x 25 frames/s x 10 bits
    assert native_codec.config_to_boson(cfg)["n_q"] == 8


def test_native_hub_snapshot_is_converted_for_training_and_inference(exported, tmp_path, monkeypatch):
    """`owner/repo@main` in the native format: fetched, converted once, loaded by boson."""
    import huggingface_hub

    snapshot = _strip_record(exported, tmp_path)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda **kw: str(snapshot))
    resolve.fetch.cache_clear()
    try:
        folder = resolve.model_folder("bosonai/higgs-audio-v2-generation-3B-base@main")
        assert (folder / MARKER).is_file()
        assert (
            json.loads(resolve.model_config_path("bosonai/higgs-audio-v2-generation-3B-base@main").read_text())[
                "model_type"
            ]
            == "higgs_audio"
        )
        model = load_model("bosonai/higgs-audio-v2-generation-3B-base@main", device="cpu", dtype="fp32")
        assert model.config.audio_num_codebooks == 8
    finally:
        resolve.fetch.cache_clear()


def test_cli_export_with_an_adapter(tmp_path, capsys):
    from higgs_lora.model.load import apply_lora

    adapter = tmp_path / "run"
    model = apply_lora(load_model("tiny", device="cpu", dtype="fp32"), r=2, alpha=4, dropout=0.0)
    model.save_pretrained(adapter)
    (adapter / "higgs_lora_run.json").write_text(json.dumps({"base_model": "tiny", "audio_tokenizer": "tiny"}))
    out = tmp_path / "out"
    assert main(["export", "--model_path", "tiny", "--lora_path", str(adapter), "--output_dir", str(out)]) == 0
    assert "float32" in capsys.readouterr().out
    record = json.loads((out / EXPORT_RECORD).read_text())
    assert record["lora_path"] == str(adapter) and record["dtype"] == "float32"
    assert (out / "higgs_lora_run.json").is_file()
    assert main(["export", "--model_path", "tiny", "--output_dir", str(out)]) == 2  # refuses a non-empty folder
    assert main(["export", "--model_path", "tiny", "--output_dir", str(tmp_path / "bf16"), "--dtype", "bf16"]) == 0
    assert all(v.dtype == torch.bfloat16 for v in load_file(str(tmp_path / "bf16" / "model.safetensors")).values())
