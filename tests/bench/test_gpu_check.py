"""gpu-check: the shipped released configuration, the FLOP accounting, the model built as users load it,
peak memory over the timed steps, and a `--shape small` run on CPU."""

import json
import re

import pytest
import torch

from higgs_lora.bench.gpu_check import active_params_per_token, build_config, parameter_groups
from higgs_lora.bench.random_model import (
    attention_implementation,
    build_meta_model,
    load_check_model,
    write_model_folder,
)
from higgs_lora.cli import main
from higgs_lora.cli.gpu_check import one_visible_gpu
from higgs_lora.model import tiny


def test_shipped_config_builds_the_released_architecture():
    config = build_config("released")
    model = build_meta_model(config)  # no memory: shapes only
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
        groups["audio_mlp"] + groups["audio_head"] - groups["text_mlp"]
    )
    # the text head is its own matrix (not tied, whatever the config says) and counted exactly once
    head = model.audio_decoder_proj.text_lm_head.weight
    assert head is not model.embed_tokens.weight and "tied_text_head" not in groups
    attention = sum(p.numel() for n, p in model.named_parameters() if ".self_attn." in n)
    norms = sum(p.numel() for n, p in model.named_parameters() if "norm" in n)
    assert active_params_per_token(groups, 0.0) == attention + norms + head.numel() + groups["text_mlp"]
    # the step that runs applies the text head on the labelled rows only: their share scales the head alone
    assert groups["text_head"] == head.numel()
    assert active_params_per_token(groups, 0.0, 0.01) == attention + norms + 0.01 * head.numel() + groups["text_mlp"]


def test_unknown_shape_and_released_on_cpu_are_usage_errors(capsys, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # gpu-check narrows it; restored after the test
    with pytest.raises(SystemExit) as info:
        main(["gpu-check", "--shape", "huge"])
    assert info.value.code == 2
    if not torch.cuda.is_available():
        assert main(["gpu-check", "--shape", "released"]) == 2
        assert "needs a CUDA GPU" in capsys.readouterr().err


def test_small_shape_runs_every_phase_and_writes_the_report(tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(
        [
            "gpu-check",
            "--shape",
            "small",
            "--steps",
            "2",
            "--device",
            "cpu",
            "--output",
            str(out),
            "--workdir",
            str(tmp_path / "work"),
        ]
    )
    printed = capsys.readouterr().out
    report = json.loads(out.read_text(encoding="utf-8"))
    assert rc == 0
    assert set(report) >= {"train", "infer", "alignment", "device", "flop_formula", "parameters", "attention"}
    assert report["device"]["name"] == "cpu" and report["precision"] == "no"
    # the model was loaded as `load_model` loads a user's: SDPA, as `train` runs, not eager
    assert report["attention"] == "sdpa"
    assert [r["phase"] for r in report["train"]] == ["batch4", "batch4_checkpointing", "long_pair_checkpointing"]
    for row in report["train"]:
        assert row["steps"] == 2 and row["median_step_s"] > 0 and row["tokens_per_s"] > 0
        assert 0 < row["audio_share"] < 1 and row["mfu"] is None  # no peak FLOP/s for a CPU
        assert row["tflops"] == pytest.approx(6 * row["active_params"] * row["tokens_per_s"] / 1e12, rel=0.01, abs=0.01)
        assert row["attention"] == "sdpa" and row["longest_sample"] * 2 >= row["tokens_per_step"] / row["batch"]
    long, normal = report["train"][2], report["train"][0]
    assert long["tokens_per_step"] / 2 > normal["tokens_per_step"] / 4  # the long pair is longer per sample
    infer = report["infer"]
    assert infer["generated_columns"] > 0 and infer["columns_per_s"] > 0
    assert infer["realtime_factor"] == pytest.approx(infer["generated_columns"] / 25 / infer["seconds"], rel=0.01)
    # what users serve: base + an unmerged adapter kept in fp32, with codec decode timed on its own
    assert infer["adapter"] == "unmerged" and infer["adapter_dtype"] == "float32"
    assert infer["cache"] == "dynamic" and infer["cuda_graphs"] is False  # the engine's own choice on a CPU
    assert infer["decode_seconds"] > 0 and infer["decoded_columns"] > 0
    assert infer["decoded_audio_s"] == pytest.approx(infer["decoded_columns"] / 25, abs=0.05)
    align = report["alignment"]
    assert align["ok"] is True and align["settings"]["mode"] == "teacher_forced"
    assert list(align["checks"]) == ["prompt_parity", "label_audit", "overfit_teacher_forced"]
    # the commands train prints next name the model folder gpu-check trained on (kept by --workdir), which loads
    assert "--model_path random" not in printed and "--base_model random" not in printed
    model_paths = set(re.findall(r"--model_path (\S+)", printed))
    assert model_paths == {str(tmp_path / "work" / "model")}
    assert (tmp_path / "work" / "model" / "config.json").is_file()


def test_check_model_gets_the_attention_users_get(tmp_path):
    """gpu-check must time the attention `train` runs: `load_model` (from_pretrained) picks SDPA, while a
    HiggsAudioModel built directly from the shipped config (`_attn_implementation_autoset: true`) stays eager."""
    from higgs_lora.model.load import load_model

    folder = write_model_folder(build_config("small"), tmp_path / "m", "cpu", torch.float32)
    checked = load_check_model(folder, "cpu", torch.float32)
    users = load_model("tiny", device="cpu", dtype="fp32")
    assert attention_implementation(checked) == attention_implementation(users) == "sdpa"
    assert type(checked.layers[0].self_attn) is type(users.layers[0].self_attn)
    assert checked.config.use_cache is False  # training's setting; the infer phase turns it on


def test_train_peak_is_over_the_steps_whatever_the_logs_do(monkeypatch):
    """gpu-check's step timer resets CUDA's peak counter once, when training begins, and reads it after
    every step; training's memory log in between must not reset it (it did at every log)."""
    from fake_cuda_memory import FakeCudaMemory

    from higgs_lora.bench.gpu_check import step_timer
    from higgs_lora.train.metrics import memory_gb

    cuda = FakeCudaMemory().install(monkeypatch)
    cuda.allocate(2**30)  # model and optimizer state, resident
    timer = step_timer("cuda")
    timer.on_train_begin(None, None, None)
    for activations in (5, 2):  # GiB each step holds at its peak, freed after backward
        timer.on_step_begin()
        cuda.allocate(activations * 2**30)
        cuda.free(activations * 2**30)
        timer.on_step_end()
        memory_gb("cuda")  # Trainer logs every step (logging_steps=1)
    assert cuda.resets == 1  # gpu-check's own, at train begin
    assert timer.peak_gb == 6.0  # step 1's peak, not what stayed resident after the last log (1 GiB)


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
