"""Every hub access names the pinned revision and fetches only the files it needs; an unreachable hub
names the id and the way out (all offline: tests/model/hub_fakes.py)."""

from pathlib import Path

import pytest
import torch
from hub_fakes import new_model_snapshot, old_model_snapshot

from higgs_lora.cli import main
from higgs_lora.defaults import (
    AUDIO_TOKENIZER,
    BASE_MODEL,
    MODEL_REPO,
    MODEL_REVISION,
    TOKENIZER_REPO,
    TOKENIZER_REVISION,
)
from higgs_lora.model.load import load_model, load_tokenizer
from higgs_lora.model.refs import SEMANTIC_TEACHER_REPO as TEACHER_REPO
from higgs_lora.model.refs import WeightsError


def test_model_tokenizer_and_codec_downloads_ask_for_the_pinned_revision(tmp_path, codec_state, fake_hub):
    from higgs_lora.data.codes import load_codec

    fake = fake_hub(
        {
            MODEL_REPO: old_model_snapshot(tmp_path),
            TOKENIZER_REPO: codec_state["old"],
            TEACHER_REPO: codec_state["teacher"],
        }
    )
    tokenizer = load_tokenizer(BASE_MODEL)
    model = load_model(BASE_MODEL, device="cpu", dtype="fp32")
    codec = load_codec(AUDIO_TOKENIZER, device="cpu")
    assert tokenizer.convert_tokens_to_ids("<|audio_out_bos|>") == model.config.audio_out_bos_token_id
    loaded = codec.tokenizer.state_dict()
    assert all(torch.equal(v, codec_state["state"][k]) for k, v in loaded.items())

    by_repo = {}
    for call in fake.calls:
        by_repo.setdefault(call["repo_id"], []).append(call)
    assert {c["revision"] for c in by_repo[MODEL_REPO]} == {MODEL_REVISION}
    assert {c["revision"] for c in by_repo[TOKENIZER_REPO]} == {TOKENIZER_REVISION}
    assert TEACHER_REPO in by_repo  # the codec's HuBERT comes through us, not boson's unpinned loader
    # weights and configs only: no demo media
    for call in by_repo[MODEL_REPO]:
        assert not any(Path("demo.wav").match(p) for p in call["allow_patterns"])
        assert any(Path("model.safetensors").match(p) for p in call["allow_patterns"])


def test_check_alignment_skip_overfit_fetches_no_weights(tmp_path, sample_data_path, fake_hub):
    fake = fake_hub({MODEL_REPO: old_model_snapshot(tmp_path)})
    rc = main(
        [
            "check-alignment",
            "--train_data",
            str(sample_data_path),
            "--base_model",
            BASE_MODEL,
            "--audio_tokenizer",
            "tiny",
            "--skip_overfit",
            "--max_samples",
            "2",
        ]
    )
    assert rc == 0
    model_calls = [c for c in fake.calls if c["repo_id"] == MODEL_REPO]
    assert model_calls and {c["revision"] for c in model_calls} == {MODEL_REVISION}
    for call in model_calls:
        assert not any(Path("model.safetensors").match(p) for p in call["allow_patterns"])
        assert all(any(Path(f).match(p) for p in call["allow_patterns"]) for f in ("config.json", "tokenizer.json"))


def test_broken_new_format_snapshot_is_refused_before_loading(tmp_path, fake_hub):
    fake_hub({MODEL_REPO: new_model_snapshot(tmp_path)})
    with pytest.raises(WeightsError, match="higgs_audio_v2"):
        load_model(f"{MODEL_REPO}@main", device="cpu")


def test_unreachable_hub_names_the_id_and_the_way_out(fake_hub):
    fake_hub({})
    with pytest.raises(WeightsError) as info:
        load_tokenizer(BASE_MODEL)
    message = str(info.value)
    assert BASE_MODEL in message and "local folder" in message and "tiny" in message
