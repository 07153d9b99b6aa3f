"""run_checks and the check-alignment command: every check, in order, on the real pipeline and on data
laid out differently; extra parity checks count; the command's flags and report.
"""

import json
from pathlib import Path

import numpy as np
from alignment_kit import NAMES, check_alignment_tiny

from higgs_lora.checks.result import CheckResult
from higgs_lora.checks.run import run_checks


def test_real_pipeline_passes_all_three_checks(real_report):
    assert [c.name for c in real_report.checks] == NAMES
    failed = [f"{c.name}: {c.summary}" for c in real_report.checks if not c.ok]
    assert real_report.ok and not failed


def test_an_extra_parity_check_runs_on_the_inference_samples_and_counts(
    samples, tiny_tokenizer, tiny_codec, tiny_config
):
    seen = []

    def native(infer_samples, tokenizer, codec, config, infer_inputs):
        seen.append(len(infer_samples))
        return CheckResult("prompt_parity_native", False, "differs")

    report = run_checks(
        samples,
        None,
        tiny_tokenizer,
        tiny_codec,
        overfit=False,
        config=tiny_config,
        log=lambda *a: None,
        parity_checks=(native,),
    )
    assert [c.name for c in report.checks] == ["prompt_parity", "prompt_parity_native", "label_audit"]
    assert seen == [2] and not report.ok


def test_cli_check_alignment_passes_and_writes_the_report(cli_data, tmp_path):
    report = tmp_path / "report.json"
    rc = check_alignment_tiny(cli_data, "--report", str(report), "--max_steps", "150")
    data = json.loads(report.read_text(encoding="utf-8"))
    assert rc == 0 and data["ok"] is True
    assert list(data["checks"]) == NAMES and data["samples"] == 3
    assert data["base_model"] == "tiny" and data["overfit"]["via"] == "train.recipe"


def test_cli_check_alignment_skip_overfit(cli_data, tmp_path):
    report = tmp_path / "report.json"
    rc = check_alignment_tiny(cli_data, "--report", str(report), "--skip_overfit", "--max_samples", "2")
    data = json.loads(report.read_text(encoding="utf-8"))
    assert rc == 0 and data["ok"] is True
    assert list(data["checks"]) == NAMES[:2] and data["samples"] == 2
    assert "overfit" not in data


def test_cli_skip_overfit_loads_no_weights(cli_data, tmp_path, monkeypatch):
    from boson_multimodal.model.higgs_audio import HiggsAudioModel

    def refuse(*args, **kwargs):
        raise AssertionError("--skip_overfit loaded model weights")

    monkeypatch.setattr(HiggsAudioModel, "from_pretrained", refuse)
    monkeypatch.setattr("higgs_lora.model.load.load_model", refuse)
    rc = check_alignment_tiny(cli_data, "--skip_overfit", "--report", str(tmp_path / "r.json"))
    assert rc == 0 and json.loads((tmp_path / "r.json").read_text())["ok"] is True


def test_cli_teacher_forced_reports_its_settings(cli_data, tmp_path):
    report = tmp_path / "report.json"
    rc = check_alignment_tiny(
        cli_data,
        "--report",
        str(report),
        "--overfit_mode",
        "teacher_forced",
        "--max_steps",
        "60",
        "--check_every",
        "10",
        "--max_samples",
        "2",
    )
    data = json.loads(report.read_text(encoding="utf-8"))
    assert rc == 0 and data["ok"] is True
    assert data["overfit"] == {
        "mode": "teacher_forced",
        "learning_rate": 3e-3,
        "max_steps": 60,
        "check_every": 10,
        "lora_r": 64,
        "lora_alpha": 128,
        "precision": "no",
        "via": "train.recipe",
    }
    assert "overfit_teacher_forced" in data["checks"]


def test_check_alignment_passes_on_data_laid_out_differently(tmp_path):
    """Data this project did not write: JSON Lines, absolute paths, no system message, list/dict
    contents, 16 kHz stereo FLAC. The CLI must read it and pass every check."""
    import soundfile as sf
    import soxr

    from higgs_lora.data.sample_data import ASSETS, load_manifest

    clips = [c for c in load_manifest()["clips"] if c["speaker"] == "spk2"]
    paths = []
    for clip in clips:
        wav, sr = sf.read(str(ASSETS.joinpath(clip["file"])), dtype="float32")
        wav = soxr.resample(wav, sr, 16000)
        path = tmp_path / (Path(clip["file"]).stem + ".flac")
        sf.write(path, np.stack([wav, 0.5 * wav], axis=1), 16000)
        paths.append(path.resolve())
    records = [
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": clips[a]["transcript"]}]},
                {"role": "assistant", "content": [{"type": "audio", "audio_url": str(paths[a])}]},
                {"role": "user", "content": {"type": "text", "text": clips[b]["transcript"]}},
                {"role": "assistant", "content": {"type": "audio", "audio_url": str(paths[b])}},
            ],
            "speaker": "outside",
            "start_index": 3,
        }
        for a, b in ((0, 1), (1, 2))
    ]
    data = tmp_path / "outside.jsonl"
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records), encoding="utf-8")
    report = tmp_path / "report.json"
    rc = check_alignment_tiny(data, "--system_prompt", "", "--max_steps", "150", "--report", str(report))
    body = json.loads(report.read_text(encoding="utf-8"))
    assert rc == 0 and body["ok"] is True, body
    assert body["checks"]["prompt_parity"]["details"][0]["prompt_tokens"] > 0


def test_overfit_params_is_gone_with_a_clear_message(cli_data, capsys):
    rc = check_alignment_tiny(cli_data, "--overfit_params", "full")
    err = capsys.readouterr().err
    assert rc == 2 and "--overfit_params full: removed" in err and "LoRA" in err
