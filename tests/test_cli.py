"""The higgs-lora command: help, defaults, quick test, infer, create-sample-data and validate."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from higgs_lora.cli import build_parser, main
from higgs_lora.cli.train import train_config_from_args
from higgs_lora.defaults import AUDIO_TOKENIZER, BASE_MODEL, DEFAULT_SYSTEM_PROMPT
from higgs_lora.train.recipe import RUN_CONFIG, TrainConfig

# The defaults are pinned to the last revisions boson_multimodal 0.1.1 reads (Boson's 2026-04 rewrite).
HUB_MODEL = "bosonai/higgs-audio-v2-generation-3B-base@10840182ca4ad5d9d9113b60b9bb3c1ef1ba3f84"
HUB_CODEC = "bosonai/higgs-audio-v2-tokenizer@9d4988fbd4ad07b4cac3a5fa462741a41810dbec"


def _help(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


# --- help ----------------------------------------------------------------------------------------


def test_top_level_help_lists_every_subcommand(capsys):
    out = _help(capsys)
    for command in (
        "download",
        "create-sample-data",
        "convert",
        "validate",
        "plan",
        "train",
        "merge",
        "infer",
        "eval",
        "clone",
        "check-alignment",
        "gpu-check",
    ):
        assert command in out


@pytest.mark.parametrize(
    "command, flags",
    [
        ("create-sample-data", ["out_json", "--n_samples", "--overwrite", "--system_prompt"]),
        ("validate", ["data", "--for_inference", "--system_prompt"]),
        (
            "plan",
            [
                "--base_model",
                "--batch_size",
                "--seq_len",
                "--lora_r",
                "--gpus",
                "--gpu",
                "--use_gradient_checkpointing",
            ],
        ),
        (
            "train",
            [
                "--train_data",
                "--output_dir",
                "--base_model",
                "--audio_tokenizer",
                "--batch_size",
                "--gradient_accumulation_steps",
                "--learning_rate",
                "--max_steps",
                "--lora_r",
                "--lora_alpha",
                "--lora_targets",
                "--use_gradient_checkpointing",
                "--resume_from_checkpoint",
                "--quick_test",
                "--report_to",
                "--mixed_precision",
                "--consistency_loss_weight",
                "--eval_data",
                "--eval_split",
                "--eval_steps",
                "--deepspeed",
                "--fsdp",
                "--eval_every_steps",
                "--eval_samples",
                "--eval_max_new_tokens",
            ],
        ),
        ("merge", ["--base_model", "--lora_path", "--output_path", "--dtype", "--overwrite"]),
        (
            "infer",
            [
                "--chatml_file",
                "--output_dir",
                "--model_path",
                "--lora_path",
                "--audio_tokenizer",
                "--temperature",
                "--top_k",
                "--top_p",
                "--max_new_tokens",
                "--ras_win_len",
                "--seed",
                "--chunk_max_chars",
                "--context_chunks",
                "--crossfade",
                "--cache",
                "--system_prompt",
            ],
        ),
        (
            "clone",
            [
                "--ref_audio",
                "--ref_text",
                "--text",
                "--output",
                "--model_path",
                "--lora_path",
                "--audio_tokenizer",
                "--temperature",
                "--seed",
                "--max_new_tokens",
                "--chunk_max_chars",
            ],
        ),
        (
            "eval",
            [
                "--data",
                "--output_dir",
                "--model_path",
                "--lora_path",
                "--audio_tokenizer",
                "--baseline_model",
                "--speaker_encoder",
                "--asr",
                "--language",
                "--seed",
                "--max_new_tokens",
                "--max_length_ratio",
            ],
        ),
        (
            "check-alignment",
            ["--train_data", "--base_model", "--audio_tokenizer", "--report", "--skip_overfit", "--max_steps"],
        ),
    ],
)
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


def test_gradient_checkpointing_is_auto_unless_asked():
    assert _train_config("--train_data", "d.json").use_gradient_checkpointing == "auto"
    for value in ("auto", "on", "off"):
        assert (
            _train_config("--train_data", "d.json", "--use_gradient_checkpointing", value).use_gradient_checkpointing
            == value
        )


def test_train_flags_reach_the_config():
    cfg = _train_config(
        "--train_data",
        "d.json",
        "--base_model",
        "m",
        "--audio_tokenizer",
        "c",
        "--output_dir",
        "o",
        "--batch_size",
        "3",
        "--gradient_accumulation_steps",
        "5",
        "--learning_rate",
        "1e-3",
        "--max_steps",
        "7",
        "--lora_r",
        "8",
        "--lora_alpha",
        "16",
        "--lora_dropout",
        "0.1",
        "--lora_targets",
        "q_proj",
        "v_proj",
        "--text_loss_weight",
        "0.5",
        "--audio_loss_weight",
        "2",
        "--no-mixed_precision",
        "--use_gradient_checkpointing",
        "--report_to",
        "none",
        "--resume_from_checkpoint",
        "o/checkpoint-5",
        "--seed",
        "1",
    )
    assert (cfg.base_model, cfg.audio_tokenizer, cfg.output_dir) == ("m", "c", "o")
    assert (cfg.batch_size, cfg.gradient_accumulation_steps, cfg.learning_rate, cfg.max_steps) == (3, 5, 1e-3, 7)
    assert (cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets) == (8, 16, 0.1, ["q_proj", "v_proj"])
    assert (cfg.text_loss_weight, cfg.audio_loss_weight) == (0.5, 2.0)
    # the design's bare flag still means on
    assert cfg.mixed_precision == "no" and cfg.use_gradient_checkpointing == "on" and cfg.report_to == "none"
    assert cfg.resume_from_checkpoint == "o/checkpoint-5" and cfg.seed == 1


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], "auto"),
        (["--mixed_precision"], "bf16"),
        (["--mixed_precision", "bf16"], "bf16"),
        (["--mixed_precision", "fp16"], "fp16"),
        (["--mixed_precision", "no"], "no"),
        (["--no-mixed_precision"], "no"),
    ],
)
def test_mixed_precision_values(argv, expected):
    assert _train_config("--train_data", "d.json", *argv).mixed_precision == expected


def test_mixed_precision_rejects_unknown_values(capsys):
    with pytest.raises(SystemExit) as info:
        _train_config("--train_data", "d.json", "--mixed_precision", "fp8")
    assert info.value.code == 2 and "fp8" in capsys.readouterr().err


def test_quick_test_defaults_to_the_tiny_kit_unless_a_model_is_named(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    cfg = _train_config("--quick_test", "--train_data", "d.json")
    assert (cfg.base_model, cfg.audio_tokenizer, cfg.quick_test) == ("tiny", "tiny", True)
    # a fresh temporary folder, not ./checkpoints
    assert Path(cfg.output_dir).parent == tmp_path and Path(cfg.output_dir).name.startswith("higgs_lora_quick_test_")
    assert _train_config("--quick_test", "--train_data", "d.json").output_dir != cfg.output_dir
    assert _train_config("--quick_test", "--train_data", "d.json", "--output_dir", "o").output_dir == "o"
    cfg = _train_config("--quick_test", "--train_data", "d.json", "--audio_tokenizer", "codec")
    assert (cfg.base_model, cfg.audio_tokenizer) == ("tiny", "codec")
    # naming a model means testing that model (and, by default, the real codec)
    cfg = _train_config("--quick_test", "--train_data", "d.json", "--base_model", "some/model")
    assert (cfg.base_model, cfg.audio_tokenizer) == ("some/model", HUB_CODEC)


def test_train_without_data_or_quick_test_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["train"])
    assert info.value.code == 2  # a usage mistake, refused by the parser
    err = capsys.readouterr().err
    assert "--train_data" in err and "--quick_test" in err
    assert not list(tmp_path.iterdir())  # nothing created


def test_quick_test_without_model_or_data_trains_the_tiny_kit(tmp_path, capsys):
    out = tmp_path / "quick"
    assert main(["train", "--quick_test", "--output_dir", str(out), "--report_to", "none"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("environment OK")
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


def test_quick_test_without_output_dir_writes_only_under_a_temporary_folder(tmp_path, monkeypatch, capsys):
    import tempfile

    work, temp = tmp_path / "cwd", tmp_path / "tmp"
    work.mkdir(), temp.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    assert main(["train", "--quick_test", "--report_to", "none"]) == 0
    assert not list(work.iterdir())  # nothing in the current folder
    (made,) = temp.iterdir()
    assert (made / "adapter_model.safetensors").is_file()
    out = capsys.readouterr().out
    assert "environment OK" in out and str(made) in out


def _failing_stage(tmp_path, capsys, *argv):
    rc = main(["train", "--quick_test", "--output_dir", str(tmp_path / "q"), "--report_to", "none", *argv])
    err = capsys.readouterr()
    assert rc != 0 and "environment OK" not in err.out
    line = [x for x in err.err.splitlines() if "quick test FAILED" in x]  # may follow a progress bar
    assert len(line) == 1, err.err
    return line[0]


def test_quick_test_names_the_failing_stage(tmp_path, capsys, monkeypatch):
    from higgs_lora.train import recipe, trainer

    assert "stage: data:" in _failing_stage(tmp_path / "1", capsys, "--train_data", str(tmp_path / "none.json"))
    assert "stage: model:" in _failing_stage(
        tmp_path / "2", capsys, "--base_model", str(tmp_path / "no_model"), "--audio_tokenizer", "tiny"
    )
    assert "stage: codec:" in _failing_stage(tmp_path / "3", capsys, "--audio_tokenizer", str(tmp_path / "no_codec"))

    def broken_loss(*args, **kwargs):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(trainer, "compute_loss", broken_loss)
    assert "stage: training step: RuntimeError: kernel exploded" in _failing_stage(tmp_path / "4", capsys)
    monkeypatch.undo()

    real_save = recipe.HiggsAudioTrainer.save_model

    def broken_save(self, output_dir=None, _internal_call=False):
        if _internal_call:  # Trainer's own checkpoint at the last step: part of the training stage
            return real_save(self, output_dir, _internal_call)
        raise OSError("read-only file system")

    monkeypatch.setattr(recipe.HiggsAudioTrainer, "save_model", broken_save)
    assert "stage: save: OSError: read-only file system" in _failing_stage(tmp_path / "5", capsys)


# --- infer -----------------------------------------------------------------------------------------


def _inference_file(tmp_path) -> tuple[Path, list[dict]]:
    """Inference-only input: no target audio; flat and ChatML records, with and without a speaker."""
    from higgs_lora.data.sample_data import create_sample_data

    data = create_sample_data(tmp_path / "src.json", n_samples=2)
    train_records = json.loads(data.read_text(encoding="utf-8"))
    ref = train_records[0]["messages"]
    flat = {
        "ref_text": ref[1]["content"],
        "ref_audio": str(tmp_path / ref[2]["content"]["audio_url"]),
        "target_text": ref[3]["content"],
        "speaker": train_records[0]["speaker"],
        "id": "first-clip",
    }
    chatml = {"messages": train_records[1]["messages"][:4]}  # system, user, assistant(ref audio), user(target)
    path = tmp_path / "infer.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in (flat, chatml)) + "\n", encoding="utf-8")
    return path, [flat, chatml]


GREEDY_FLAGS = ["--temperature", "0", "--ras_win_len", "0"]  # RAS resamples at random even at temperature 0


def test_infer_writes_one_wav_per_sample_and_results_json(tmp_path, capsys):
    chatml_file, records = _inference_file(tmp_path)
    out = tmp_path / "gen"
    rc = main(
        [
            "infer",
            "--chatml_file",
            str(chatml_file),
            "--output_dir",
            str(out),
            "--model_path",
            "tiny",
            "--audio_tokenizer",
            "tiny",
            "--max_new_tokens",
            "30",
            *GREEDY_FLAGS,
        ]
    )
    assert rc == 0
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert set(document) >= {"settings", "samples", "summary"}
    settings = document["settings"]
    assert settings["model"] == "tiny" and settings["lora_path"] is None and settings["audio_tokenizer"] == "tiny"
    assert settings["system_prompt"] == DEFAULT_SYSTEM_PROMPT and settings["cache"] == "dynamic"  # CPU
    assert settings["sampling"]["temperature"] == 0 and settings["sampling"]["max_new_tokens"] == 30
    results = document["samples"]
    assert len(results) == 2
    for index, (result, record) in enumerate(zip(results, records)):
        assert set(result) >= {
            "id",
            "target_text",
            "output",
            "duration_s",
            "frames",
            "chunks",
            "stopped",
            "seconds",
            "realtime_factor",
        }
        assert result["index"] == index and result["chunks"] == 1
        expected_text = record["target_text"] if "target_text" in record else record["messages"][3]["content"]
        assert result["target_text"] == expected_text
        assert Path(result["reference_audio"]).is_file()
        assert isinstance(result["stopped"], bool)
        assert 0 < result["frames"] < 30  # one frame per new token at most, BOS/EOS columns stripped
        wav, sr = sf.read(out / result["output"], dtype="float32")
        assert sr == 24000 and wav.ndim == 1
        assert len(wav) == result["frames"] * 960
        assert result["duration_s"] == pytest.approx(len(wav) / 24000, abs=1e-3)
        assert result["realtime_factor"] == pytest.approx(result["duration_s"] / result["seconds"], rel=0.01)
    # named by id where the record has one, else by index
    assert results[0]["id"] == "first-clip" and results[0]["output"] == "first-clip.wav"
    assert results[1]["id"] == "0001" and results[1]["output"] == "0001.wav"
    assert sorted(p.name for p in out.glob("*.wav")) == sorted(r["output"] for r in results)
    summary = document["summary"]
    assert summary["generated"] == 2 and summary["skipped"] == 0 and summary["chunks"] == 2
    assert summary["audio_s"] == pytest.approx(sum(r["duration_s"] for r in results), abs=1e-3)
    assert "2 of 2 samples cloned" in capsys.readouterr().out


def test_infer_skips_a_bad_sample_and_goes_on(tmp_path, capsys, monkeypatch):
    chatml_file, records = _inference_file(tmp_path)
    bad_text = dict(records[0], target_text="   ", id="blank")  # refused by validation: empty_text
    broken = dict(records[0], id="broken", target_text="x y z")  # fails during generation
    lines = [json.dumps(r, ensure_ascii=False) for r in (records[0], bad_text, broken, records[1])]
    chatml_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    from higgs_lora.infer.engine import VoiceCloner

    real_clone = VoiceCloner.clone

    def clone(self, sample, *a, **kw):
        if sample.target_text == "x y z":
            raise RuntimeError("codec exploded")
        return real_clone(self, sample, *a, **kw)

    monkeypatch.setattr(VoiceCloner, "clone", clone)
    out = tmp_path / "gen"
    assert (
        main(
            [
                "infer",
                "--chatml_file",
                str(chatml_file),
                "--output_dir",
                str(out),
                "--model_path",
                "tiny",
                "--audio_tokenizer",
                "tiny",
                "--max_new_tokens",
                "20",
                *GREEDY_FLAGS,
            ]
        )
        == 0
    )
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert [r["index"] for r in document["samples"]] == [0, 3]
    skipped = {s["index"]: s for s in document["skipped"]}
    assert skipped[1]["reason"] == "empty_text" and skipped[2]["reason"] == "generation_failed"
    assert "codec exploded" in skipped[2]["error"]
    assert document["summary"]["skipped"] == 2 and document["summary"]["generated"] == 2
    assert not (out / "broken.wav").exists()
    err = capsys.readouterr().err
    assert "skipping sample 1" in err and "skipping sample 2" in err


def test_infer_long_text_is_generated_in_chunks(tmp_path):
    chatml_file, records = _inference_file(tmp_path)
    long = dict(records[0], id="long", target_text="الْجَوُّ جَمِيلٌ الْيَوْمَ. " * 6)
    chatml_file.write_text(json.dumps(long, ensure_ascii=False) + "\n", encoding="utf-8")
    out = tmp_path / "gen"
    assert (
        main(
            [
                "infer",
                "--chatml_file",
                str(chatml_file),
                "--output_dir",
                str(out),
                "--model_path",
                "tiny",
                "--audio_tokenizer",
                "tiny",
                "--chunk_max_chars",
                "60",
                "--context_chunks",
                "1",
                "--crossfade",
                "0",
                *GREEDY_FLAGS,
            ]
        )
        == 0
    )
    document = json.loads((out / "results.json").read_text(encoding="utf-8"))
    (result,) = document["samples"]
    assert result["chunks"] == len(result["chunk_texts"]) >= 3
    assert all(len(t) <= 60 for t in result["chunk_texts"])
    assert " ".join(result["chunk_texts"]).split() == long["target_text"].split()
    assert result["frames"] == sum(result["chunk_frames"])
    wav, _ = sf.read(out / result["output"], dtype="float32")
    assert len(wav) == result["frames"] * 960  # no crossfade: the chunks' audio end to end
    # each chunk's budget is capped by its own text length (documented formula)
    from higgs_lora.constants import text_token_cap

    assert result["chunk_max_new_tokens"] == [text_token_cap(t, 2048) for t in result["chunk_texts"]]
    assert document["settings"]["chunking"] == {"max_chars": 60, "context_chunks": 1, "crossfade_s": 0.0}


def test_infer_missing_input_is_a_clear_error(tmp_path, capsys):
    rc = main(
        [
            "infer",
            "--chatml_file",
            str(tmp_path / "nope.json"),
            "--output_dir",
            str(tmp_path / "o"),
            "--model_path",
            "tiny",
            "--audio_tokenizer",
            "tiny",
        ]
    )
    assert rc == 2
    assert "nope.json" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_infer_missing_model_folder_is_a_clear_error(tmp_path, capsys):
    chatml_file, _ = _inference_file(tmp_path)
    rc = main(
        [
            "infer",
            "--chatml_file",
            str(chatml_file),
            "--output_dir",
            str(tmp_path / "o"),
            "--model_path",
            str(tmp_path / "no_such_model"),
            "--audio_tokenizer",
            "tiny",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err
    assert "no_such_model" in err and "Traceback" not in err


# --- the training run's settings read back -------------------------------------------------------


def test_run_settings_reach_merge_and_infer(tmp_path, capsys, monkeypatch):
    """Train with --system_prompt "": merge without --base_model uses the run's base (tiny), and infer
    without --system_prompt/--audio_tokenizer builds prompts without a system turn and uses the run's codec."""
    from higgs_lora.data.sample_data import create_sample_data
    from higgs_lora.infer.engine import VoiceCloner

    data = create_sample_data(tmp_path / "data.json", n_samples=2)
    run_dir = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--train_data",
                str(data),
                "--output_dir",
                str(run_dir),
                "--base_model",
                "tiny",
                "--audio_tokenizer",
                "tiny",
                "--system_prompt",
                "",
                "--max_steps",
                "1",
                "--batch_size",
                "1",
                "--gradient_accumulation_steps",
                "1",
                "--report_to",
                "none",
                "--dataloader_num_workers",
                "0",
                "--no-mixed_precision",
            ]
        )
        == 0
    )
    assert json.loads((run_dir / RUN_CONFIG).read_text())["system_prompt"] == ""
    merged = tmp_path / "merged"
    capsys.readouterr()
    assert main(["merge", "--lora_path", str(run_dir), "--output_path", str(merged), "--dtype", "fp32"]) == 0
    assert "base model 'tiny'" in capsys.readouterr().err
    assert json.loads((merged / "higgs_lora_merge.json").read_text())["base_model"] == "tiny"

    seen = []
    real_generate = VoiceCloner.generate

    def generate(self, sample, *a, **kw):
        result = real_generate(self, sample, *a, **kw)
        seen.append((sample.system_prompt, self.tokenizer.decode(result.prompt_ids)))
        return result

    monkeypatch.setattr(VoiceCloner, "generate", generate)
    flat = tmp_path / "flat.jsonl"  # records without a system message take the run's system prompt
    record = json.loads(data.read_text())[0]["messages"]
    flat.write_text(
        json.dumps(
            {
                "ref_text": record[1]["content"],
                "target_text": record[3]["content"],
                "ref_audio": str(tmp_path / record[2]["content"]["audio_url"]),
            }
        )
        + "\n"
    )
    for model_flags in (["--lora_path", str(run_dir)], ["--model_path", str(merged)]):
        seen.clear()
        out = tmp_path / ("gen_" + model_flags[0].strip("-"))
        assert (
            main(
                [
                    "infer",
                    "--chatml_file",
                    str(flat),
                    "--output_dir",
                    str(out),
                    *model_flags,
                    "--max_new_tokens",
                    "12",
                    *GREEDY_FLAGS,
                ]
            )
            == 0
        )
        settings = json.loads((out / "results.json").read_text())["settings"]
        assert settings["system_prompt"] == "" and settings["audio_tokenizer"] == "tiny"
        assert settings["model"] == ("tiny" if "--lora_path" in model_flags else str(merged))
        assert settings["sources"]["system_prompt"] == "run"
        assert seen and all(sp == "" and "system<|end_header_id|>" not in text for sp, text in seen)
        assert "user<|end_header_id|>" in seen[0][1]
        assert "settings from the training run" in capsys.readouterr().err
    # a flag that contradicts the run wins, with a warning
    seen.clear()
    assert (
        main(
            [
                "infer",
                "--chatml_file",
                str(flat),
                "--output_dir",
                str(tmp_path / "g3"),
                "--lora_path",
                str(run_dir),
                "--system_prompt",
                "Speak.",
                "--max_new_tokens",
                "12",
                *GREEDY_FLAGS,
            ]
        )
        == 0
    )
    assert seen[0][0] == "Speak." and "system<|end_header_id|>" in seen[0][1]
    assert "warning: --system_prompt 'Speak.' differs from the training run's ''" in capsys.readouterr().err


# --- clone -----------------------------------------------------------------------------------------


def test_clone_writes_one_wav(tmp_path, capsys, sample_samples):
    sample = sample_samples[0]
    out = tmp_path / "sub" / "out.wav"
    assert (
        main(
            [
                "clone",
                "--ref_audio",
                sample.ref_audio,
                "--ref_text",
                sample.ref_text,
                "--text",
                sample.target_text,
                "--output",
                str(out),
                "--model_path",
                "tiny",
                "--audio_tokenizer",
                "tiny",
                "--max_new_tokens",
                "11",
                *GREEDY_FLAGS,
            ]
        )
        == 0
    )
    wav, sr = sf.read(out, dtype="float32")
    assert sr == 24000 and len(wav) > 0 and len(wav) % 960 == 0
    assert f"wrote {out}" in capsys.readouterr().out
    # through the same prompt builder and engine as infer: identical audio for the same sample
    from higgs_lora.infer.engine import VoiceCloner
    from higgs_lora.infer.settings import GenerationSettings

    cloner = VoiceCloner.load("tiny", audio_tokenizer="tiny", device="cpu")
    expected, _, _ = cloner.clone(sample, GenerationSettings(max_new_tokens=11, temperature=0, ras_win_len=0))
    np.testing.assert_allclose(wav, expected, atol=1 / 32768)  # PCM_16 file


@pytest.mark.parametrize("text", ["", "   \n "])
def test_clone_refuses_empty_text_with_the_validation_reason(tmp_path, capsys, sample_samples, text):
    sample = sample_samples[0]
    rc = main(
        [
            "clone",
            "--ref_audio",
            sample.ref_audio,
            "--ref_text",
            sample.ref_text,
            "--text",
            text,
            "--output",
            str(tmp_path / "o.wav"),
            "--model_path",
            "tiny",
            "--audio_tokenizer",
            "tiny",
        ]
    )
    assert rc == 2
    assert "empty_text" in capsys.readouterr().err
    assert not (tmp_path / "o.wav").exists()


def test_clone_missing_reference_is_a_clear_error(tmp_path, capsys):
    rc = main(
        [
            "clone",
            "--ref_audio",
            str(tmp_path / "nope.wav"),
            "--ref_text",
            "a",
            "--text",
            "b",
            "--output",
            str(tmp_path / "o.wav"),
            "--model_path",
            "tiny",
            "--audio_tokenizer",
            "tiny",
        ]
    )
    assert rc == 2 and "nope.wav" in capsys.readouterr().err


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


# --- wrappers at the design's paths ----------------------------------------------------------------


def test_check_alignment_takes_base_codec_and_prompt_from_the_run(tmp_path, capsys):
    from higgs_lora.data.sample_data import create_sample_data

    data = create_sample_data(tmp_path / "data.json", n_samples=2)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / RUN_CONFIG).write_text(
        json.dumps({"base_model": "tiny", "audio_tokenizer": "tiny", "system_prompt": ""}), encoding="utf-8"
    )
    report = tmp_path / "report.json"
    # no --base_model / --audio_tokenizer: without the run's settings this would go to the hub
    assert (
        main(
            [
                "check-alignment",
                "--train_data",
                str(data),
                "--lora_path",
                str(run_dir),
                "--skip_overfit",
                "--report",
                str(report),
            ]
        )
        == 0
    )
    written = json.loads(report.read_text(encoding="utf-8"))
    assert written["ok"] and written["base_model"] == "tiny" and written["audio_tokenizer"] == "tiny"
    assert "settings from the training run" in capsys.readouterr().err


def test_infer_unloadable_model_is_one_line_naming_it(tmp_path, capsys):
    chatml_file, _ = _inference_file(tmp_path)
    not_a_model = tmp_path / "not_a_model"  # a folder, but no config.json / weights in it
    not_a_model.mkdir()
    (not_a_model / "notes.txt").write_text("hello")
    rc = main(
        [
            "infer",
            "--chatml_file",
            str(chatml_file),
            "--output_dir",
            str(tmp_path / "o"),
            "--model_path",
            str(not_a_model),
            "--audio_tokenizer",
            "tiny",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "not_a_model" in err and "tiny" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_scale_flags_reach_the_train_config():
    p = build_parser()
    cfg = train_config_from_args(
        p.parse_args(
            [
                "train",
                "--train_data",
                "d.json",
                "--consistency_loss_weight",
                "0.1",
                "--eval_split",
                "0.05",
                "--eval_steps",
                "50",
                "--deepspeed",
                "scripts/deepspeed_zero2.json",
                "--fsdp",
                "full_shard auto_wrap",
            ]
        )
    )
    assert (cfg.consistency_loss_weight, cfg.eval_split, cfg.eval_steps) == (0.1, 0.05, 50)
    assert (cfg.deepspeed, cfg.fsdp, cfg.eval_data) == ("scripts/deepspeed_zero2.json", "full_shard auto_wrap", None)
    defaults = train_config_from_args(p.parse_args(["train", "--train_data", "d.json"]))
    assert (defaults.consistency_loss_weight, defaults.eval_split, defaults.deepspeed, defaults.fsdp) == (
        0.0,
        0.0,
        None,
        "",
    )
    # the example DeepSpeed config leaves batch, accumulation, clipping and precision to Trainer ("auto")
    example = json.loads((Path(__file__).resolve().parents[1] / "scripts" / "deepspeed_zero2.json").read_text())
    assert example["zero_optimization"]["stage"] == 2
    for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping"):
        assert example[key] == "auto"


def test_adapter_saved_line_only_on_rank_zero(monkeypatch, capsys, tmp_path):
    from higgs_lora.cli import train as train_command
    from higgs_lora.train import recipe

    monkeypatch.setattr(recipe, "train", lambda cfg, **kwargs: tmp_path)
    args = build_parser().parse_args(["train", "--train_data", "d.json"])
    monkeypatch.setenv("RANK", "1")
    assert train_command.run(args) == 0
    assert "adapter saved" not in capsys.readouterr().out
    monkeypatch.setenv("RANK", "0")
    assert train_command.run(args) == 0
    assert capsys.readouterr().out.count("adapter saved to") == 1
