"""`higgs-lora download`: pinned folders staged and verified, all an offline machine needs."""

import pytest
from hub_fakes import old_model_snapshot

from higgs_lora.cli import main
from higgs_lora.defaults import MODEL_REPO, MODEL_REVISION, TOKENIZER_REPO, TOKENIZER_REVISION
from higgs_lora.model.load import load_model
from higgs_lora.model.refs import SEMANTIC_TEACHER_REPO as TEACHER_REPO


def test_download_stages_verifies_and_prints_the_folders(tmp_path, codec_state, fake_hub, capsys):
    fake = fake_hub(
        {
            MODEL_REPO: old_model_snapshot(tmp_path),
            TOKENIZER_REPO: codec_state["old"],
            TEACHER_REPO: codec_state["teacher"],
        }
    )
    out = tmp_path / "weights"
    assert main(["download", "--output_dir", str(out)]) == 0
    model_dir, codec_dir = out / MODEL_REPO.split("/")[1], out / TOKENIZER_REPO.split("/")[1]
    text = capsys.readouterr().out
    assert str(model_dir) in text and str(codec_dir) in text
    assert (model_dir / "model.safetensors").is_file() and not (model_dir / "demo.wav").exists()
    assert (codec_dir / "model.pth").is_file() and (codec_dir / "semantic_teacher" / "config.json").is_file()
    assert {(c["repo_id"], c["revision"]) for c in fake.calls} >= {
        (MODEL_REPO, MODEL_REVISION),
        (TOKENIZER_REPO, TOKENIZER_REVISION),
    }
    # The staged folders are all an offline machine needs: the hub is gone now.
    fake_hub({})
    from higgs_lora.data.codes import load_codec

    assert load_model(str(model_dir), device="cpu", dtype="fp32").config.audio_num_codebooks == 8
    assert load_codec(str(codec_dir), device="cpu").num_codebooks == 8


def test_download_refuses_a_broken_snapshot(tmp_path, codec_state, fake_hub, capsys):
    broken = old_model_snapshot(tmp_path)
    (broken / "model.safetensors").write_bytes(b"\xff" * 64)  # a truncated/corrupt download
    fake_hub({MODEL_REPO: broken, TOKENIZER_REPO: codec_state["old"], TEACHER_REPO: codec_state["teacher"]})
    assert main(["download", "--output_dir", str(tmp_path / "w")]) == 2
    assert "safetensors header" in capsys.readouterr().err


def test_download_help_documents_staging(capsys):
    with pytest.raises(SystemExit):
        main(["download", "--help"])
    text = capsys.readouterr().out
    assert "offline" in text and "--output_dir" in text and "--audio_tokenizer" in text
