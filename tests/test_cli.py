"""The higgs-lora command: help, defaults, quick test, infer, create-sample-data and validate."""

import json
from pathlib import Path

import pytest
import soundfile as sf

from higgs_lora.cli import build_parser, main
from higgs_lora.cli.train import train_config_from_args
from higgs_lora.defaults import AUDIO_TOKENIZER, BASE_MODEL
from higgs_lora.train.recipe import RUN_CONFIG, TrainConfig

HUB_MODEL = "bosonai/higgs-audio-v2-generation-3B-base"
HUB_CODEC = "bosonai/higgs-audio-v2-tokenizer"



def _help(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


# --- help ----------------------------------------------------------------------------------------


def test_top_level_help_lists_every_subcommand(capsys):
    out = _help(capsys)
    for command in ("create-sample-data", "validate", "train", "merge", "infer", "eval", "check-alignment"):
        assert command in out


@pytest.mark.parametrize("command, flags", [
    ("create-sample-data", ["out_json", "--n_samples", "--overwrite", "--system_prompt"]),
    ("validate", ["data", "--for_inference", "--system_prompt"]),
    ("train", ["--train_data", "--output_dir", "--base_model", "--audio_tokenizer", "--batch_size",
               "--gradient_accumulation_steps", "--learning_rate", "--max_steps", "--lora_r", "--lora_alpha",
               "--lora_targets", "--use_gradient_checkpointing", "--resume_from_checkpoint", "--quick_test",
               "--report_to", "--mixed_precision", "--eval_every_steps", "--eval_samples", "--eval_data",
               "--eval_max_new_tokens"]),
    ("merge", ["--base_model", "--lora_path", "--output_path", "--dtype", "--overwrite"]),
    ("infer", ["--chatml_file", "--output_dir", "--model_path", "--lora_path", "--audio_tokenizer",
               "--temperature", "--max_new_tokens", "--ras_win_len", "--seed"]),
    ("eval", ["--data", "--output_dir", "--model_path", "--lora_path", "--audio_tokenizer", "--baseline_model",
              "--speaker_encoder", "--asr", "--language", "--seed", "--max_new_tokens", "--max_length_ratio"]),
    ("check-alignment", ["--train_data", "--base_model", "--audio_tokenizer", "--report", "--skip_overfit",
                         "--max_steps"]),
])
def test_subcommand_help(capsys, command, flags):
    out = _help(capsys, command)
    missing = [f for f in flags if f not in out]
    assert not missing


def test_no_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


# --- train arguments -------------------------------------------------------------------------------


def _train_config(*argv):
    return train_config_from_args(build_parser().parse_args(["train", *argv]))


def test_train_defaults_are_the_real_model_and_the_recipe_defaults():
    assert BASE_MODEL == HUB_MODEL and AUDIO_TOKENIZER == HUB_CODEC
    cfg = _train_config("--train_data", "data.json")
    assert cfg.base_model == HUB_MODEL and cfg.audio_tokenizer == HUB_CODEC
    assert cfg.output_dir == "checkpoints/voice_cloning"
    # every flag's default is the recipe's default
    assert cfg == TrainConfig(train_data="data.json")


def test_train_flags_reach_the_config():
    cfg = _train_config("--train_data", "d.json", "--base_model", "m", "--audio_tokenizer", "c", "--output_dir", "o",
                        "--batch_size", "3", "--gradient_accumulation_steps", "5", "--learning_rate", "1e-3",
                        "--max_steps", "7", "--lora_r", "8", "--lora_alpha", "16", "--lora_dropout", "0.1",
                        "--lora_targets", "q_proj", "v_proj", "--text_loss_weight", "0.5", "--audio_loss_weight", "2",
                        "--no-mixed_precision", "--use_gradient_checkpointing", "--report_to", "none",
                        "--resume_from_checkpoint", "o/checkpoint-5", "--seed", "1")
    assert (cfg.base_model, cfg.audio_tokenizer, cfg.output_dir) == ("m", "c", "o")
    assert (cfg.batch_size, cfg.gradient_accumulation_steps, cfg.learning_rate, cfg.max_steps) == (3, 5, 1e-3, 7)
    assert (cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets) == (8, 16, 0.1, ["q_proj", "v_proj"])
    assert (cfg.text_loss_weight, cfg.audio_loss_weight) == (0.5, 2.0)
    assert cfg.mixed_precision is False and cfg.use_gradient_checkpointing is True and cfg.report_to == "none"
    assert cfg.resume_from_checkpoint == "o/checkpoint-5" and cfg.seed == 1


def test_quick_test_defaults_to_the_tiny_kit_unless_a_model_is_named(tmp_path):
    cfg = _train_config("--quick_test", "--train_data", "d.json")
    assert (cfg.base_model, cfg.audio_tokenizer, cfg.quick_test) == ("tiny", "tiny", True)
    assert cfg.output_dir == "checkpoints/quick_test"
    cfg = _train_config("--quick_test", "--train_data", "d.json", "--audio_tokenizer", "codec")
    assert (cfg.base_model, cfg.audio_tokenizer) == ("tiny", "codec")
    # naming a model means testing that model (and, by default, the real codec)
    cfg = _train_config("--quick_test", "--train_data", "d.json", "--base_model", "some/model")
    assert (cfg.base_model, cfg.audio_tokenizer) == ("some/model", HUB_CODEC)


def test_train_without_data_or_quick_test_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["train"])
    assert info.value.code != 0
    assert "--train_data" in str(info.value.code) and "--quick_test" in str(info.value.code)
    assert not list(tmp_path.iterdir())  # nothing created


def test_quick_test_without_model_or_data_trains_the_tiny_kit(tmp_path):
    out = tmp_path / "quick"
    assert main(["train", "--quick_test", "--output_dir", str(out), "--report_to", "none"]) == 0
    run = json.loads((out / RUN_CONFIG).read_text(encoding="utf-8"))
    assert run["base_model"] == "tiny" and run["audio_tokenizer"] == "tiny" and run["quick_test"] is True
    # it made its own sample data, inside the output folder
    data = out / "sample_data.json"
    assert data.is_file() and run["train_data"] == str(data)
    assert len(json.loads(data.read_text(encoding="utf-8"))) > 2
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    # two samples at batch size 2: one step per epoch (the quick test keeps only the first samples)
    assert [r["epoch"] for r in records] == pytest.approx([1.0, 2.0, 3.0])
    # no intermediate checkpoints in a quick test (Trainer may still save one at the last step)
    assert [p.name for p in out.glob("checkpoint-*")] in ([], ["checkpoint-3"])


# --- infer -----------------------------------------------------------------------------------------


def _inference_file(tmp_path) -> tuple[Path, list[dict]]:
    """Inference-only input: no target audio; flat and ChatML records, with and without a speaker."""
    from higgs_lora.data.sample_data import create_sample_data

    data = create_sample_data(tmp_path / "src.json", n_samples=2)
    train_records = json.loads(data.read_text(encoding="utf-8"))
    ref = train_records[0]["messages"]
    flat = {"ref_text": ref[1]["content"], "ref_audio": str(tmp_path / ref[2]["content"]["audio_url"]),
            "target_text": ref[3]["content"], "speaker": train_records[0]["speaker"]}
    chatml = {"messages": train_records[1]["messages"][:4]}  # system, user, assistant(ref audio), user(target)
    path = tmp_path / "infer.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in (flat, chatml)) + "\n", encoding="utf-8")
    return path, [flat, chatml]


def test_infer_writes_one_wav_per_sample_and_results_json(tmp_path):
    chatml_file, records = _inference_file(tmp_path)
    out = tmp_path / "gen"
    # --ras_win_len 0: repetition-aware sampling resamples at random even at temperature 0
    rc = main(["infer", "--chatml_file", str(chatml_file), "--output_dir", str(out), "--model_path", "tiny",
               "--audio_tokenizer", "tiny", "--max_new_tokens", "30", "--temperature", "0", "--ras_win_len", "0"])
    assert rc == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert len(results) == 2
    fields = {"index", "wav", "speaker", "target_text", "reference_audio", "frames", "seconds", "stopped_at_eos",
              "generation_seconds"}
    for index, (result, record) in enumerate(zip(results, records)):
        assert set(result) == fields
        assert result["index"] == index
        expected_text = record["target_text"] if "target_text" in record else record["messages"][3]["content"]
        assert result["target_text"] == expected_text
        assert Path(result["reference_audio"]).is_file()
        assert isinstance(result["stopped_at_eos"], bool)
        assert 0 < result["frames"] < 30  # one frame per new token at most, BOS/EOS columns stripped
        wav, sr = sf.read(out / result["wav"], dtype="float32")
        assert sr == 24000 and wav.ndim == 1
        assert len(wav) == result["frames"] * 960
        assert result["seconds"] == pytest.approx(len(wav) / 24000, abs=1e-3)
    assert results[0]["speaker"] == records[0]["speaker"] and results[0]["wav"] == f"0000_{records[0]['speaker']}.wav"
    assert results[1]["speaker"] is None and results[1]["wav"] == "0001.wav"
    assert sorted(p.name for p in out.glob("*.wav")) == sorted(r["wav"] for r in results)


def test_infer_missing_input_is_a_clear_error(tmp_path, capsys):
    rc = main(["infer", "--chatml_file", str(tmp_path / "nope.json"), "--output_dir", str(tmp_path / "o"),
               "--model_path", "tiny", "--audio_tokenizer", "tiny"])
    assert rc == 2
    assert "nope.json" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# --- data commands ---------------------------------------------------------------------------------


def test_create_sample_data_then_validate(tmp_path, capsys):
    out = tmp_path / "d.json"
    assert main(["create-sample-data", str(out), "--n_samples", "3"]) == 0
    assert len(json.loads(out.read_text(encoding="utf-8"))) == 3
    assert main(["validate", str(out)]) == 0
    assert "3 valid, 0 invalid" in capsys.readouterr().out
    # a second create without --overwrite refuses (exit 2, message, no traceback)
    assert main(["create-sample-data", str(out)]) == 2
    assert "overwrite" in capsys.readouterr().err
    assert main(["create-sample-data", str(out), "--overwrite"]) == 0


def test_validate_lists_bad_samples_and_exits_1(tmp_path, capsys):
    out = tmp_path / "d.json"
    main(["create-sample-data", str(out), "--n_samples", "3"])
    records = json.loads(out.read_text(encoding="utf-8"))
    records[1]["messages"] = records[1]["messages"][:4]  # no target audio
    out.write_text(json.dumps(records), encoding="utf-8")
    capsys.readouterr()
    assert main(["validate", str(out)]) == 1
    text = capsys.readouterr().out
    assert "2 valid, 1 invalid" in text and "sample 1" in text and "no_target_audio" in text
    # the same file is fine as inference input
    assert main(["validate", str(out), "--for_inference"]) == 0
