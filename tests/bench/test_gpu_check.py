"""gpu-check: the shipped released configuration, the FLOP accounting, and a full `--shape small` run on CPU."""

import json

import pytest
import torch

from higgs_lora.bench.gpu_check import active_params_per_token, build_config, build_model, parameter_groups
from higgs_lora.cli import main
from higgs_lora.cli.gpu_check import one_visible_gpu
from higgs_lora.model import tiny


def test_shipped_config_builds_the_released_architecture():
    config = build_config("released")
    model = build_model(config, "meta", torch.bfloat16)  # no memory: shapes only
    groups = parameter_groups(model)
    assert groups["total"] == 5_771_283_456  # the released model's parameter count
    assert config.audio_num_codebooks == 8 and config.use_delay_pattern and config.skip_audio_tower
    assert config.text_config.num_hidden_layers == 28 and len(config.audio_dual_ffn_layers) == 28
    # the special ids point into the tiny tokenizer, so its prompts drive the full-size model
    assert config.audio_out_token_idx == tiny.special_id("<|AUDIO_OUT|>")
    assert config.pad_token_id == tiny.special_id("<|end_of_text|>")
    # text tokens take the text MLP, audio tokens the audio MLP: the active count moves between them
    text_only, audio_only = active_params_per_token(groups, 0.0), active_params_per_token(groups, 1.0)
    assert 2.5e9 < text_only < 4e9 and audio_only - text_only == (
        groups["audio_mlp"] + groups["audio_head"] - groups["text_mlp"])
    # the text head is its own matrix (not tied, whatever the config says) and counted exactly once
    head = model.audio_decoder_proj.text_lm_head.weight
    assert head is not model.embed_tokens.weight and "tied_text_head" not in groups
    attention = sum(p.numel() for n, p in model.named_parameters() if ".self_attn." in n)
    norms = sum(p.numel() for n, p in model.named_parameters() if "norm" in n)
    assert active_params_per_token(groups, 0.0) == attention + norms + head.numel() + groups["text_mlp"]


def test_unknown_shape_and_released_on_cpu_are_usage_errors(capsys, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # gpu-check narrows it; restored after the test
    with pytest.raises(SystemExit) as info:
        main(["gpu-check", "--shape", "huge"])
    assert info.value.code == 2
    if not torch.cuda.is_available():
        assert main(["gpu-check", "--shape", "released"]) == 2
        assert "needs a CUDA GPU" in capsys.readouterr().err


def test_small_shape_runs_every_phase_and_writes_the_report(tmp_path):
    out = tmp_path / "r.json"
    rc = main(["gpu-check", "--shape", "small", "--steps", "2", "--device", "cpu", "--output", str(out)])
    report = json.loads(out.read_text(encoding="utf-8"))
    assert rc == 0
    assert set(report) >= {"train", "infer", "alignment", "device", "flop_formula", "parameters"}
    assert report["device"]["name"] == "cpu" and report["precision"] == "no"
    assert [r["phase"] for r in report["train"]] == ["batch4", "batch4_checkpointing", "long_pair_checkpointing"]
    for row in report["train"]:
        assert row["steps"] == 2 and row["median_step_s"] > 0 and row["tokens_per_s"] > 0
        assert 0 < row["audio_share"] < 1 and row["mfu"] is None  # no peak FLOP/s for a CPU
        assert row["tflops"] == pytest.approx(4 * row["active_params"] * row["tokens_per_s"] / 1e12, rel=0.01, abs=0.01)
    long, normal = report["train"][2], report["train"][0]
    assert long["tokens_per_step"] / 2 > normal["tokens_per_step"] / 4  # the long pair is longer per sample
    infer = report["infer"]
    assert infer["generated_columns"] > 0 and infer["columns_per_s"] > 0
    assert infer["realtime_factor"] == pytest.approx(infer["generated_columns"] / 25 / infer["seconds"], rel=0.01)
    align = report["alignment"]
    assert align["ok"] is True and align["settings"]["mode"] == "teacher_forced"
    assert list(align["checks"]) == ["prompt_parity", "label_audit", "overfit_teacher_forced"]


def test_only_the_measured_gpu_is_visible():
    """Outside torchrun, Trainer spreads one process over every visible GPU (DataParallel): gpu-check shows it one."""
    env = {}
    assert one_visible_gpu(None, env) is None and env == {"CUDA_VISIBLE_DEVICES": "0"}
    env = {}
    assert one_visible_gpu("cuda:3", env) == "cuda" and env == {"CUDA_VISIBLE_DEVICES": "3"}
    env = {"CUDA_VISIBLE_DEVICES": "4, 5"}
    assert one_visible_gpu("cuda:1", env) == "cuda" and env == {"CUDA_VISIBLE_DEVICES": "5"}
    env = {"CUDA_VISIBLE_DEVICES": "4,5"}
    assert one_visible_gpu("cuda", env) == "cuda" and env == {"CUDA_VISIBLE_DEVICES": "4"}
    env = {"CUDA_VISIBLE_DEVICES": "4,5"}
    assert one_visible_gpu("cpu", env) == "cpu" and env == {"CUDA_VISIBLE_DEVICES": "4,5"}
    with pytest.raises(ValueError, match="shows 2 GPU"):
        one_visible_gpu("cuda:2", {"CUDA_VISIBLE_DEVICES": "4,5"})
