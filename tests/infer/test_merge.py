"""merge_adapter: the LoRA folded into a plain HiggsAudioModel folder that behaves as base + adapter."""

import json

import pytest
import torch
from safetensors.torch import load_file

from higgs_lora.data.dataset import DictCollator, build_collator
from higgs_lora.infer.merge import merge_adapter
from higgs_lora.model.load import apply_lora
from higgs_lora.train.recipe import RUN_CONFIG




@pytest.fixture(scope="module")
def adapter(tmp_path_factory, tiny_model_factory):
    """A saved PEFT adapter with non-zero lora_B (as after training), plus the run config training writes."""
    folder = tmp_path_factory.mktemp("adapter")
    model = apply_lora(tiny_model_factory(), r=4, alpha=8, dropout=0.0)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
    model.save_pretrained(folder)
    (folder / RUN_CONFIG).write_text(json.dumps({"base_model": "tiny", "audio_tokenizer": "tiny"}), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def merged(adapter, tmp_path_factory):
    out = tmp_path_factory.mktemp("merged") / "model"
    returned = merge_adapter("tiny", adapter, out)
    assert returned == out
    return out


@pytest.fixture(scope="module")
def batch(tiny_dataset, tiny_config):
    return DictCollator(build_collator(tiny_config))([tiny_dataset[0], tiny_dataset[1]])


@torch.no_grad()
def _outputs(model, batch):
    model.eval()
    out = model(**batch)
    return out.logits.float(), out.audio_logits.float()


def test_merged_folder_loads_as_a_plain_higgs_model_with_tokenizer(merged, tiny_tokenizer):
    from boson_multimodal.model.higgs_audio import HiggsAudioModel
    from transformers import AutoTokenizer

    model = HiggsAudioModel.from_pretrained(merged)
    assert type(model) is HiggsAudioModel
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert not (merged / "adapter_config.json").exists()
    assert model.config.audio_num_codebooks == 8 and model.config.use_delay_pattern
    tok = AutoTokenizer.from_pretrained(merged)
    assert len(tok) == len(tiny_tokenizer)
    assert tok.convert_tokens_to_ids("<|AUDIO_OUT|>") == model.config.audio_out_token_idx


def test_merged_weights_keep_the_stored_dtype(merged):
    weights = load_file(merged / "model.safetensors")
    assert weights and {t.dtype for t in weights.values()} == {torch.float32}  # the tiny base is stored in fp32
    assert not any("lora" in k or "base_layer" in k for k in weights)


def test_merged_model_equals_base_plus_adapter_and_differs_from_base(merged, adapter, batch, tiny_model_factory):
    from boson_multimodal.model.higgs_audio import HiggsAudioModel
    from peft import PeftModel

    logits_m, audio_m = _outputs(HiggsAudioModel.from_pretrained(merged), batch)
    logits_p, audio_p = _outputs(PeftModel.from_pretrained(tiny_model_factory(), str(adapter)), batch)
    logits_b, audio_b = _outputs(tiny_model_factory(), batch)
    torch.testing.assert_close(logits_m, logits_p, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(audio_m, audio_p, rtol=1e-4, atol=1e-4)
    # the adapter is really in the merged weights: both heads' outputs moved away from the base model's
    assert (logits_m - logits_b).abs().max() > 1e-2
    assert (audio_m - audio_b).abs().max() > 1e-2


def test_voice_cloner_load_with_lora_path_matches_the_merged_folder(merged, adapter, batch):
    from higgs_lora.infer.engine import VoiceCloner

    on_the_fly = VoiceCloner.load("tiny", lora_path=str(adapter), audio_tokenizer="tiny", device="cpu", dtype="fp32")
    from_folder = VoiceCloner.load(str(merged), audio_tokenizer="tiny", device="cpu", dtype="fp32")
    for a, b in zip(_outputs(on_the_fly.model, batch), _outputs(from_folder.model, batch)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_run_config_is_copied_and_merge_record_written(merged, adapter):
    assert json.loads((merged / RUN_CONFIG).read_text()) == json.loads((adapter / RUN_CONFIG).read_text())
    record = json.loads((merged / "higgs_lora_merge.json").read_text())
    assert record == {"base_model": "tiny", "lora_path": str(adapter)}


def test_refuses_a_non_empty_output_folder_without_overwrite(adapter, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="overwrite"):
        merge_adapter("tiny", adapter, out)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]  # nothing written
    merge_adapter("tiny", adapter, out, overwrite=True)
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()


def test_an_existing_empty_output_folder_is_fine(adapter, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    merge_adapter("tiny", adapter, out, dtype="bf16")
    weights = load_file(out / "model.safetensors")
    assert {t.dtype for t in weights.values()} == {torch.bfloat16}  # an explicit dtype wins over the stored one


def test_clear_error_without_adapter_config(tmp_path, adapter):
    not_an_adapter = tmp_path / "not_an_adapter"
    not_an_adapter.mkdir()
    (not_an_adapter / "adapter_model.safetensors").write_bytes((adapter / "adapter_model.safetensors").read_bytes())
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        merge_adapter("tiny", not_an_adapter, out)
    assert not out.exists()
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        merge_adapter("tiny", tmp_path / "missing", out)


def test_cli_merge(adapter, tmp_path, capsys):
    from higgs_lora.cli import main

    out = tmp_path / "cli_merged"
    assert main(["merge", "--base_model", "tiny", "--lora_path", str(adapter), "--output_path", str(out)]) == 0
    assert (out / "model.safetensors").is_file()
    # the same command again: a clear error (exit 2), no traceback
    assert main(["merge", "--base_model", "tiny", "--lora_path", str(adapter), "--output_path", str(out)]) == 2
    assert "overwrite" in capsys.readouterr().err
