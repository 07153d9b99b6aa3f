"""gpu-check: usage errors, a `--shape small` run on CPU through every phase, and the one GPU it measures."""

import json
import re

import pytest
import torch

from higgs_lora.cli import main
from higgs_lora.cli.gpu_check import one_visible_gpu


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
