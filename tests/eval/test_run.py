"""`higgs-lora eval` end to end on the tiny model: both systems, same seeds, one scoring path."""

import csv
import json

import pytest

from higgs_lora.cli import main
from higgs_lora.defaults import AUDIO_TOKENIZER, BASE_MODEL, DEFAULT_SYSTEM_PROMPT
from higgs_lora.eval.run import EvalConfig, evaluate, resolve_baseline, resolve_settings
from higgs_lora.train.config import RUN_CONFIG


def test_baseline_is_the_model_the_fine_tune_started_from(tmp_path):
    cfg = EvalConfig(data="d", model_path="tiny", output_dir="o", lora_path="adapter")
    assert resolve_baseline(cfg) == "tiny"
    merged = tmp_path / "merged"
    merged.mkdir()
    assert resolve_baseline(EvalConfig(data="d", model_path=str(merged), output_dir="o")) == BASE_MODEL
    (merged / RUN_CONFIG).write_text(json.dumps({"base_model": "my/base"}))
    assert resolve_baseline(EvalConfig(data="d", model_path=str(merged), output_dir="o")) == "my/base"
    assert resolve_baseline(EvalConfig(data="d", model_path="m", output_dir="o", baseline_model="none")) is None


def test_settings_come_from_the_training_run_unless_given(tmp_path, capsys):
    """eval builds the prompts the model was trained on: system prompt, codec, text front-end and
    base model default to the run's (as for infer); a given value wins."""
    run = tmp_path / "run"
    run.mkdir()
    (run / RUN_CONFIG).write_text(json.dumps({"base_model": "my/base", "audio_tokenizer": "my/codec", "system_prompt": "",
                                              "text_normalization": "whitespace,strip_diacritics"}))
    cfg = resolve_settings(EvalConfig(data="d", model_path=None, output_dir="o", lora_path=str(run)))
    assert (cfg.model_path, cfg.audio_tokenizer, cfg.system_prompt, cfg.text_normalization) == (
        "my/base", "my/codec", "", "whitespace,strip_diacritics")
    assert resolve_baseline(cfg) == "my/base"
    assert "settings from the training run" in capsys.readouterr().err
    given = resolve_settings(EvalConfig(data="d", model_path="tiny", output_dir="o", lora_path=str(run),
                                        audio_tokenizer="tiny", system_prompt="Speak.", text_normalization="none"))
    assert (given.model_path, given.audio_tokenizer, given.system_prompt, given.text_normalization) == (
        "tiny", "tiny", "Speak.", "none")
    plain = resolve_settings(EvalConfig(data="d", model_path=None, output_dir="o"))
    assert (plain.model_path, plain.audio_tokenizer, plain.system_prompt) == (BASE_MODEL, AUDIO_TOKENIZER,
                                                                              DEFAULT_SYSTEM_PROMPT)


def test_eval_on_tiny_model_same_model_twice_scores_identically(sample_data_path, tmp_path):
    """The baseline is the fine-tuned model itself here: same seeds and one scoring path must give
    the same audio and the same row for both systems, and a ground-truth row per sample."""
    out = tmp_path / "eval"
    rc = main(["eval", "--data", str(sample_data_path), "--model_path", "tiny", "--audio_tokenizer", "tiny",
               "--baseline_model", "tiny", "--output_dir", str(out), "--speaker_encoder", "none", "--asr", "none",
               "--max_samples", "2", "--max_new_tokens", "24"])
    assert rc == 0
    with (out / "results.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["system"] for r in rows] == ["ground_truth", "fine_tuned", "baseline"] * 2
    for i in (0, 1):
        ft, base = (next(r for r in rows if r["index"] == str(i) and r["system"] == s) for s in ("fine_tuned", "baseline"))
        assert (out / ft["wav"]).read_bytes() == (out / base["wav"]).read_bytes()
        drop = {"system", "wav", "generation_s"}
        assert {k: v for k, v in ft.items() if k not in drop} == {k: v for k, v in base.items() if k not in drop}
        assert int(ft["max_new_tokens"]) <= 24
    gt = [r for r in rows if r["system"] == "ground_truth"]
    assert all(float(r["duration_ratio"]) == 1.0 and r["stopped_at_eos"] == "" for r in gt)
    assert all((out / r["wav"]).is_file() for r in rows)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["settings"]["baseline_model"] == "tiny"
    assert summary["fine_tuned_vs_baseline"] == {}  # no SIM/WER scorer: nothing to compare per sample
    assert (out / "report.md").is_file() and (out / "metrics.png").is_file()


def test_missing_data_is_a_one_line_error(tmp_path, capsys):
    rc = main(["eval", "--data", str(tmp_path / "nope.json"), "--model_path", "tiny", "--audio_tokenizer", "tiny",
               "--output_dir", str(tmp_path / "o"), "--speaker_encoder", "none", "--asr", "none"])
    assert rc == 2
    assert "nope.json" in capsys.readouterr().err


def test_data_without_targets_is_refused(tmp_path):
    data = tmp_path / "d.json"
    data.write_text(json.dumps([{"ref_text": "a", "ref_audio": "r.wav", "target_text": "b"}]))
    with pytest.raises(ValueError):
        evaluate(EvalConfig(data=str(data), model_path="tiny", output_dir=str(tmp_path / "o"),
                            speaker_encoder="none", asr="none"))
