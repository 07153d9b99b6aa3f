"""Format detection: the layout boson_multimodal reads loads; native, other and codec folders without
model.pth are refused in one line that names the fix."""

import json

import pytest
from hub_fakes import new_model_snapshot, old_model_snapshot

from higgs_lora.cli import main
from higgs_lora.defaults import MODEL_REVISION, TOKENIZER_REVISION
from higgs_lora.model import resolve
from higgs_lora.model.load import load_model, load_tokenizer
from higgs_lora.model.refs import WeightsError


def test_old_layout_loads_and_a_native_folder_that_cannot_be_converted_is_refused_with_the_fix(tmp_path):
    """A complete native folder is converted (tests/native/test_convert.py); this fake has no tokenizer and
    boson-named weights, so it cannot be, and says so in one line with the pinned revision."""
    old = old_model_snapshot(tmp_path)
    assert resolve.model_folder(str(old)) == old
    model = load_model(str(old), device="cpu", dtype="fp32")
    assert model.config.audio_num_codebooks == 8

    new = new_model_snapshot(tmp_path)
    with pytest.raises(WeightsError) as info:
        load_model(str(new), device="cpu")
    message = str(info.value)
    assert "\n" not in message
    assert "higgs_audio_v2" in message and MODEL_REVISION in message and "higgs-lora download" in message
    with pytest.raises(WeightsError, match="higgs_audio_v2"):
        load_tokenizer(str(new))


def test_other_model_folders_are_refused(tmp_path):
    with pytest.raises(WeightsError, match="no config.json"):
        resolve.model_folder(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(WeightsError, match="llama"):
        resolve.model_folder(str(tmp_path))


def test_codec_folder_with_and_without_model_pth(codec_state):
    assert resolve.codec_folder(str(codec_state["old"])) == codec_state["old"]
    with pytest.raises(WeightsError) as info:
        resolve.codec_folder(str(codec_state["new"]))
    assert "model.safetensors" in str(info.value) and TOKENIZER_REVISION in str(info.value)
    assert "higgs-lora download" in str(info.value)


def test_new_format_is_one_line_and_exit_2_from_the_cli(tmp_path, sample_data_path, capsys):
    new = new_model_snapshot(tmp_path)
    rc = main(
        [
            "check-alignment",
            "--train_data",
            str(sample_data_path),
            "--base_model",
            str(new),
            "--audio_tokenizer",
            "tiny",
            "--skip_overfit",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "higgs_audio_v2" in err[0]
