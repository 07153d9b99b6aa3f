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
    (run / RUN_CONFIG).write_text(
        json.dumps(
            {
                "base_model": "my/base",
                "audio_tokenizer": "my/codec",
                "system_prompt": "",
                "text_normalization": "whitespace,strip_diacritics",
            }
        )
    )
    cfg = resolve_settings(EvalConfig(data="d", model_path=None, output_dir="o", lora_path=str(run)))
    assert (cfg.model_path, cfg.audio_tokenizer, cfg.system_prompt, cfg.text_normalization) == (
        "my/base",
        "my/codec",
        "",
        "whitespace,strip_diacritics",
    )
    assert resolve_baseline(cfg) == "my/base"
    assert "settings from the training run" in capsys.readouterr().err
    given = resolve_settings(
        EvalConfig(
            data="d",
            model_path="tiny",
            output_dir="o",
            lora_path=str(run),
            audio_tokenizer="tiny",
            system_prompt="Speak.",
            text_normalization="none",
        )
    )
    assert (given.model_path, given.audio_tokenizer, given.system_prompt, given.text_normalization) == (
        "tiny",
        "tiny",
        "Speak.",
        "none",
    )
    plain = resolve_settings(EvalConfig(data="d", model_path=None, output_dir="o"))
    assert (plain.model_path, plain.audio_tokenizer, plain.system_prompt) == (
        BASE_MODEL,
        AUDIO_TOKENIZER,
        DEFAULT_SYSTEM_PROMPT,
    )


@pytest.fixture(scope="module")
def random_adapter(tmp_path_factory):
    """A LoRA adapter on the tiny model whose B matrices are not zero, so it changes what the model says."""
    import torch

    from higgs_lora.model.load import apply_lora, load_model

    model = apply_lora(load_model("tiny", device="cpu", dtype="fp32"), r=4, alpha=8, dropout=0.0)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    folder = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(folder)
    return folder


def test_eval_scores_the_adapter_against_the_model_under_it(
    sample_data_path, tmp_path, monkeypatch, fakes, random_adapter
):
    """Bugs caught: the baseline generated with the adapter applied (or the fine-tuned system without it), so both
    systems are one model; scores or the paired comparison attached to the wrong system; the comparison left
    empty when scorers ran. Stand-in scorers (conftest) keep it offline and fast."""
    from higgs_lora.eval import metrics

    FakeEncoder, FakeASR = fakes
    monkeypatch.setattr(metrics.Scorers, "load", classmethod(lambda cls, *a, **k: cls(FakeEncoder(), FakeASR())))
    out = tmp_path / "eval"
    rc = main(
        [
            "eval",
            "--data",
            str(sample_data_path),
            "--model_path",
            "tiny",
            "--lora_path",
            str(random_adapter),
            "--audio_tokenizer",
            "tiny",
            "--output_dir",
            str(out),
            "--max_samples",
            "2",
            "--max_new_tokens",
            "24",
        ]
    )
    assert rc == 0
    with (out / "results.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["system"] for r in rows] == ["ground_truth", "fine_tuned", "baseline"] * 2
    by = {(r["index"], r["system"]): r for r in rows}
    assert any(
        (out / by[(i, "fine_tuned")]["wav"]).read_bytes() != (out / by[(i, "baseline")]["wav"]).read_bytes()
        for i in ("0", "1")
    )
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["settings"]["baseline_model"] == "tiny"
    pair = summary["fine_tuned_vs_baseline"]["sim"]
    diffs = [float(by[(i, "fine_tuned")]["sim"]) - float(by[(i, "baseline")]["sim"]) for i in ("0", "1")]
    assert pair["samples"] == 2 and pair["mean_difference"] == pytest.approx(sum(diffs) / 2, abs=1e-3)
    gt = [r for r in rows if r["system"] == "ground_truth"]
    assert all(float(r["duration_ratio"]) == 1.0 and r["stopped_at_eos"] == "" for r in gt)
    assert all(int(by[(i, s)]["max_new_tokens"]) <= 24 for i in ("0", "1") for s in ("fine_tuned", "baseline"))
    assert (out / "report.md").is_file() and (out / "metrics.png").is_file()


def test_missing_data_is_a_one_line_error(tmp_path, capsys):
    rc = main(
        [
            "eval",
            "--data",
            str(tmp_path / "nope.json"),
            "--model_path",
            "tiny",
            "--audio_tokenizer",
            "tiny",
            "--output_dir",
            str(tmp_path / "o"),
            "--speaker_encoder",
            "none",
            "--asr",
            "none",
        ]
    )
    assert rc == 2
    assert "nope.json" in capsys.readouterr().err


def test_data_without_targets_is_refused(tmp_path):
    data = tmp_path / "d.json"
    data.write_text(json.dumps([{"ref_text": "a", "ref_audio": "r.wav", "target_text": "b"}]))
    with pytest.raises(ValueError):
        evaluate(
            EvalConfig(
                data=str(data), model_path="tiny", output_dir=str(tmp_path / "o"), speaker_encoder="none", asr="none"
            )
        )
