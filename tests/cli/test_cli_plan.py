"""`higgs-lora plan`: offline counts from a config, a fitting plan exits 0, a non-fitting one warns and exits 1."""

import json

import pytest

from higgs_lora.cli import main
from higgs_lora.train.memory_estimate import GIB, estimate_memory
from higgs_lora.train.model_shape import ModelShape, released_config


def test_plan_for_the_default_model_prints_exact_counts_offline(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rc = main(
        [
            "plan",
            "--batch_size",
            "4",
            "--seq_len",
            "1070",
            "--lora_r",
            "64",
            "--gpus",
            "8",
            "--gpu",
            "h200",
            "--use_gradient_checkpointing",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "total 5,938,221,056 (base 5,771,283,456 + LoRA 166,937,600)" in out
    assert "fits" in out and "WARNING" not in out
    expected = estimate_memory(ModelShape.from_config(released_config()), 4, 1070, 64, checkpointing=True)
    assert f"{expected.total / GIB:8.2f} GiB" in out
    assert "8 GPU(s)" in out


def test_plan_that_does_not_fit_warns_and_exits_1(capsys):
    rc = main(["plan", "--batch_size", "2", "--seq_len", "2564", "--gpu", "h100"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "WARNING: does not fit" in out and "--use_gradient_checkpointing" in out


def test_plan_reads_a_folder_config_and_counts_the_tiny_model(tmp_path, capsys, tiny_model_factory):
    from higgs_lora.model.load import apply_lora

    model = apply_lora(tiny_model_factory(), r=8, alpha=16)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    (tmp_path / "config.json").write_text(json.dumps(model.config.to_dict()))
    assert main(["plan", "--base_model", str(tmp_path), "--lora_r", "8", "--batch_size", "2", "--seq_len", "64"]) == 0
    out = capsys.readouterr().out
    assert f"total {total:,} " in out and f"trainable:  {trainable:,} " in out


@pytest.mark.parametrize("argv", [["--base_model", "/no/such/folder"], ["--batch_size", "0"], ["--gpus", "0"]])
def test_plan_bad_input_is_a_clear_error(capsys, argv):
    assert main(["plan", *argv]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_plan_imports_no_torch():
    import subprocess
    import sys

    code = (
        "import sys; from higgs_lora.cli import main; rc = main(['plan']); "
        "heavy = [m for m in ('torch', 'transformers', 'numpy') if m in sys.modules]; "
        "assert not heavy, heavy; sys.exit(rc)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "parameters: total" in result.stdout
