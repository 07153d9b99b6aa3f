"""merge_adapter: the LoRA folded into a plain HiggsAudioModel folder that behaves as base + adapter."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from higgs_lora.data.collator import DictCollator, build_collator
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
    report = merge_adapter("tiny", adapter, out, dtype="fp32")
    assert report.output_path == out and report.dtype == "float32"
    assert report.adapted_weights > 0 and report.update_error < 1e-5  # fp32 keeps the update
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
    # the fp32 merged folder behaves as base + unmerged adapter within 1e-5
    torch.testing.assert_close(logits_m, logits_p, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(audio_m, audio_p, rtol=1e-5, atol=1e-5)
    # the adapter is really in the merged weights: both heads' outputs moved away from the base model's
    assert (logits_m - logits_b).abs().max() > 1e-2
    assert (audio_m - audio_b).abs().max() > 1e-2


def test_voice_cloner_load_with_lora_path_matches_the_merged_folder(merged, adapter, batch):
    from peft import PeftModel

    from higgs_lora.infer.engine import VoiceCloner

    on_the_fly = VoiceCloner.load("tiny", lora_path=str(adapter), audio_tokenizer="tiny", device="cpu", dtype="fp32")
    assert isinstance(on_the_fly.model, PeftModel)  # served unmerged: the adapter is never folded in
    assert any("lora_A" in n for n, _ in on_the_fly.net.named_parameters())
    from_folder = VoiceCloner.load(str(merged), audio_tokenizer="tiny", device="cpu", dtype="fp32")
    for a, b in zip(_outputs(on_the_fly.model, batch), _outputs(from_folder.model, batch)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_bf16_merge_reports_the_rounding_of_the_update(adapter, tmp_path):
    report = merge_adapter("tiny", adapter, tmp_path / "bf16", dtype="bf16")
    assert report.dtype == "bfloat16"
    # bf16 keeps 8 mantissa bits: a small update on a larger weight loses a visible part
    assert 1e-3 < report.update_error < 1.0
    # measured independently for one adapted weight: cast(W + dW) - W against dW
    from peft import PeftModel

    from higgs_lora.model.load import load_model

    peft_model = PeftModel.from_pretrained(load_model("tiny", device="cpu", dtype="fp32"), str(adapter))
    layer = peft_model.base_model.model.layers[0].self_attn.q_proj
    w, dw = layer.get_base_layer().weight.detach(), layer.get_delta_weight("default").detach()
    one = float(((w + dw).bfloat16().float() - w - dw).norm() / dw.norm())
    assert one > 1e-3
    record = json.loads((tmp_path / "bf16" / "higgs_lora_merge.json").read_text())
    assert record["adapter_update_relative_error"] == pytest.approx(report.update_error)


def test_run_config_is_copied_and_merge_record_written(merged, adapter):
    assert json.loads((merged / RUN_CONFIG).read_text()) == json.loads((adapter / RUN_CONFIG).read_text())
    record = json.loads((merged / "higgs_lora_merge.json").read_text())
    assert record["base_model"] == "tiny" and record["lora_path"] == str(adapter)
    assert record["dtype"] == "float32" and record["merged_in"] == "float32"
    assert record["adapter"]["r"] == 4 and record["adapter"]["lora_alpha"] == 8


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
    assert (
        main(
            ["merge", "--base_model", "tiny", "--lora_path", str(adapter), "--output_path", str(out), "--dtype", "bf16"]
        )
        == 0
    )
    assert (out / "model.safetensors").is_file()
    printed = capsys.readouterr()
    assert "saved as bfloat16" in printed.out and "adapter's update by" in printed.out
    # the same command again: a clear error (exit 2), no traceback
    assert main(["merge", "--base_model", "tiny", "--lora_path", str(adapter), "--output_path", str(out)]) == 2
    assert "overwrite" in capsys.readouterr().err


def test_cli_merge_without_base_model_uses_the_runs_base(adapter, tmp_path, capsys, monkeypatch):
    # The run says base_model "tiny": without --base_model the merge must not go to the hub default.
    import higgs_lora.infer.merge as merge_module

    seen = []
    real = merge_module.load_model
    monkeypatch.setattr(merge_module, "load_model", lambda name, **kw: seen.append(name) or real(name, **kw))
    from higgs_lora.cli import main

    out = tmp_path / "from_run"
    assert main(["merge", "--lora_path", str(adapter), "--output_path", str(out)]) == 0
    assert seen == ["tiny"]
    assert "settings from the training run" in capsys.readouterr().err
    # a contradicting flag wins, with a warning
    monkeypatch.setattr(merge_module, "load_model", lambda name, **kw: seen.append(name) or real("tiny", **kw))
    monkeypatch.setattr(
        merge_module,
        "load_tokenizer",
        lambda name: __import__("higgs_lora.model.load", fromlist=["x"]).load_tokenizer("tiny"),
    )
    monkeypatch.setattr(merge_module, "_stored_dtype", lambda name: "float32")
    assert (
        main(
            ["merge", "--lora_path", str(adapter), "--output_path", str(tmp_path / "o2"), "--base_model", "other/base"]
        )
        == 0
    )
    assert seen[-1] == "other/base"
    assert "warning: --base_model 'other/base' differs from the training run's 'tiny'" in capsys.readouterr().err


def test_merged_folder_serves_in_boson_serve_engine_with_the_codes_of_base_plus_adapter(
    merged, adapter, sample_samples, monkeypatch
):
    """What a user shipping the merged folder gets: boson's own serve engine (static caches on CPU)
    samples the same codes, seed for seed, as our engine with the base model + unmerged adapter."""
    from higgs_lora.model.compat import ensure_audio_tokenizer_importable

    ensure_audio_tokenizer_importable()  # the serve engine imports boson's audio tokenizer module
    from boson_multimodal.serve import serve_engine

    from higgs_lora.data.codes import TinyCodec
    from higgs_lora.data.sample import inference_chatml
    from higgs_lora.infer.engine import VoiceCloner
    from higgs_lora.infer.settings import GenerationSettings
    from higgs_lora.infer.stream import STOP_STRINGS

    # The serve engine insists on boson's real audio tokenizer (a hub download): plug in the tiny codec.
    monkeypatch.setattr(serve_engine, "load_higgs_audio_tokenizer", lambda *a, **kw: TinyCodec())
    engine = serve_engine.HiggsAudioServeEngine(
        str(merged), "tiny", device="cpu", torch_dtype=torch.float32, kv_cache_lengths=[512, 2048]
    )
    sample = sample_samples[0]
    ours = VoiceCloner.load("tiny", lora_path=str(adapter), audio_tokenizer="tiny", device="cpu", dtype="fp32")
    base = VoiceCloner.load("tiny", audio_tokenizer="tiny", device="cpu", dtype="fp32")
    sampling = dict(temperature=0.8, top_k=50, top_p=0.95, ras_win_len=7, seed=5)
    ref = ours.generate(sample, GenerationSettings(max_new_tokens=40, cap_by_text=False, **sampling))
    response = engine.generate(
        inference_chatml(sample), max_new_tokens=40, force_audio_gen=True, stop_strings=STOP_STRINGS, **sampling
    )
    assert response.generated_audio_tokens.shape == ref.raw_codes.shape
    assert np.array_equal(response.generated_audio_tokens, ref.raw_codes)
    # ... and the adapter matters: the base model alone samples something else from the same seed
    plain = base.generate(sample, GenerationSettings(max_new_tokens=40, cap_by_text=False, **sampling))
    assert plain.raw_codes.shape != ref.raw_codes.shape or not np.array_equal(plain.raw_codes, ref.raw_codes)


def test_unmerged_adapter_on_a_bf16_base_keeps_its_weights_in_fp32(adapter):
    """What `infer --lora_path` serves on CUDA (bf16 base): the update is computed from fp32 adapter
    weights at run time, never rounded into the bf16 base weights."""
    from higgs_lora.infer.engine import VoiceCloner

    cloner = VoiceCloner.load("tiny", lora_path=str(adapter), audio_tokenizer="tiny", device="cpu", dtype="bf16")
    dtypes = {n: p.dtype for n, p in cloner.net.named_parameters()}
    assert {d for n, d in dtypes.items() if "lora_" in n} == {torch.float32}
    base = [d for n, d in dtypes.items() if n.endswith("q_proj.base_layer.weight")]
    assert base and set(base) == {torch.bfloat16}


def test_sharded_merged_folder_loads_and_carries_its_notes(adapter, merged, tmp_path):
    from boson_multimodal.model.higgs_audio import HiggsAudioModel

    out = tmp_path / "sharded"
    merge_adapter("tiny", adapter, out, dtype="fp32", max_shard_size="1MB")
    shards = sorted(p.name for p in out.glob("model-*.safetensors"))
    assert len(shards) >= 2 and (out / "model.safetensors.index.json").is_file()
    assert {"config.json", "tokenizer_config.json", RUN_CONFIG, "higgs_lora_merge.json"} <= {
        p.name for p in out.iterdir()
    }
    a = HiggsAudioModel.from_pretrained(out).state_dict()
    b = HiggsAudioModel.from_pretrained(merged).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
