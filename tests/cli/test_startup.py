"""The first minutes with the command: instant --help, each wrapper under its own name, no tracebacks
for user mistakes (one line, exit 2) and tracebacks back with --debug."""

import subprocess
import sys
from pathlib import Path

import pytest

from higgs_lora.cli import COMMANDS, command_module, main

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "peft", "boson_multimodal", "accelerate")


def _imported_modules(*argv) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *argv], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # importtime lines: "import time: self | cumulative | module" (nested modules are indented)
    return {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_imports_nothing_heavy(command):
    argv = ["-m", "higgs_lora.cli"] + ([command_module(command).NAME] if command else []) + ["--help"]
    modules = _imported_modules(*argv)
    assert "higgs_lora.cli" in modules  # the probe sees our own imports
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert not heavy


@pytest.mark.parametrize(
    "script, prog",
    [
        ("trainer/train.py", "train.py"),
        ("arb_inference.py", "arb_inference.py"),
        ("scripts/training/merge_lora_weights.py", "merge_lora_weights.py"),
    ],
)
def test_wrappers_show_their_own_name_and_start_light(script, prog):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", script, "--help"], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"usage: {prog}")
    assert "higgs-lora" not in proc.stdout.splitlines()[0]
    modules = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert not sorted(m for m in modules if m.split(".")[0] in HEAVY)


def test_the_design_python_entry_point_still_imports_from_arb_inference(monkeypatch):
    """`from arb_inference import generate_arabic_speech` reaches infer.api's function (loaded on first call)."""
    import higgs_lora.infer.api as api

    calls = []
    monkeypatch.setattr(api, "generate_arabic_speech", lambda *a, **k: calls.append((a, k)) or ("wav", 24000))
    monkeypatch.syspath_prepend(str(REPO))
    from arb_inference import generate_arabic_speech

    assert generate_arabic_speech("ref text", "ref.wav", "target text") == ("wav", 24000)
    assert calls and calls[0][0][:3] == ("ref text", "ref.wav", "target text")


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_missing_model_folder_is_one_line(tmp_path, sample_data_path, capsys):
    missing = tmp_path / "no_such_model"
    rc = main(
        [
            "infer",
            "--chatml_file",
            str(sample_data_path),
            "--output_dir",
            str(tmp_path / "o"),
            "--model_path",
            str(missing),
            "--audio_tokenizer",
            "tiny",
        ]
    )
    assert rc == 2
    assert "no_such_model" in _one_line_error(capsys)


def test_folder_that_is_not_a_model_is_one_line(tmp_path, sample_data_path, capsys):
    rc = main(
        [
            "infer",
            "--chatml_file",
            str(sample_data_path),
            "--output_dir",
            str(tmp_path / "o"),
            "--model_path",
            str(tmp_path),
            "--audio_tokenizer",
            "tiny",
        ]
    )
    assert rc == 2
    assert "config.json" in _one_line_error(capsys)


def test_missing_codec_folder_is_one_line(tmp_path, sample_data_path, capsys):
    rc = main(
        [
            "check-alignment",
            "--train_data",
            str(sample_data_path),
            "--base_model",
            "tiny",
            "--audio_tokenizer",
            str(tmp_path / "codec"),
            "--skip_overfit",
        ]
    )
    assert rc == 2
    assert "codec" in _one_line_error(capsys)


def test_missing_adapter_is_one_line(tmp_path, capsys):
    rc = main(
        [
            "merge",
            "--base_model",
            "tiny",
            "--lora_path",
            str(tmp_path / "run"),
            "--output_path",
            str(tmp_path / "merged"),
        ]
    )
    assert rc == 2
    assert "adapter_config.json" in _one_line_error(capsys)
    assert not (tmp_path / "merged").exists()


def test_missing_data_file_is_one_line(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.json")]) == 2
    assert "nope.json" in _one_line_error(capsys)


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises((OSError, ValueError)):
        main(["validate", str(tmp_path / "nope.json"), "--debug"])
