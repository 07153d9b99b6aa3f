"""The training run's settings read back: flag, else run, else default; contradictions warned about."""

import json

import pytest

from higgs_lora.defaults import AUDIO_TOKENIZER, BASE_MODEL, DEFAULT_SYSTEM_PROMPT
from higgs_lora.infer.run_settings import find_run_config, resolve, resolve_inference
from higgs_lora.train.config import RUN_CONFIG

RUN = {
    "base_model": "some/base",
    "audio_tokenizer": "some/codec",
    "system_prompt": "",
    "text_normalization": {"arabic": True},
}


@pytest.fixture
def run_dir(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / RUN_CONFIG).write_text(json.dumps(RUN), encoding="utf-8")
    return folder


def test_without_flags_the_run_settings_are_used_and_said(run_dir):
    s = resolve_inference(None, str(run_dir), None, None)
    assert (s["model_path"], s["audio_tokenizer"], s["system_prompt"]) == ("some/base", "some/codec", "")
    assert s["lora_path"] == str(run_dir) and s["text_normalization"] == {"arabic": True}
    assert s.sources == {
        "system_prompt": "run",
        "audio_tokenizer": "run",
        "text_normalization": "run",
        "model_path": "run",
    }
    assert len(s.messages) == 1 and "settings from the training run" in s.messages[0] and "some/codec" in s.messages[0]


def test_a_contradicting_flag_wins_with_a_warning(run_dir):
    s = resolve_inference("other/base", str(run_dir), "some/codec", "Speak.")
    assert (s["model_path"], s["system_prompt"]) == ("other/base", "Speak.")
    warnings = [m for m in s.messages if m.startswith("warning:")]
    assert len(warnings) == 2  # the codec flag agrees with the run: no warning for it
    assert any("--model_path 'other/base'" in w and "'some/base'" in w for w in warnings)
    assert any("--system_prompt 'Speak.'" in w for w in warnings)


def test_no_run_file_means_builtin_defaults(tmp_path):
    s = resolve_inference(None, None, None, None)
    assert (s["model_path"], s["audio_tokenizer"], s["system_prompt"]) == (
        BASE_MODEL,
        AUDIO_TOKENIZER,
        DEFAULT_SYSTEM_PROMPT,
    )
    assert s.messages == [] and s.run_config_path is None


def test_a_merged_folder_supplies_codec_and_prompt_but_is_itself_the_model(run_dir):
    s = resolve_inference(str(run_dir), None, None, None)
    assert s["model_path"] == str(run_dir) and s["audio_tokenizer"] == "some/codec" and s["system_prompt"] == ""
    assert not any(m.startswith("warning:") for m in s.messages)
    # check-alignment / merge style: the folder named as the base model is no contradiction either
    r = resolve({"base_model": str(run_dir), "system_prompt": None}, None, str(run_dir))
    assert r["base_model"] == str(run_dir) and not any(m.startswith("warning:") for m in r.messages)


def test_checkpoint_folders_find_the_run_file_one_level_up(run_dir):
    checkpoint = run_dir / "checkpoint-500"
    checkpoint.mkdir()
    path, run = find_run_config(checkpoint)
    assert path == run_dir / RUN_CONFIG and run == RUN


def test_broken_run_file_is_a_clear_error(tmp_path):
    (tmp_path / RUN_CONFIG).write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=RUN_CONFIG):
        find_run_config(tmp_path)
