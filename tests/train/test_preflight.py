"""Preflight: each resource problem is a one-line error before any weights are loaded."""

import json
import os
from collections import namedtuple
from pathlib import Path

import pytest

from higgs_lora.data.sample_data import create_sample_data
from higgs_lora.train import preflight as pf
from higgs_lora.train import recipe
from higgs_lora.train.recipe import TrainConfig, train

TINY = dict(
    base_model="tiny",
    audio_tokenizer="tiny",
    batch_size=2,
    gradient_accumulation_steps=1,
    logging_steps=1,
    dataloader_num_workers=0,
    report_to="none",
    max_steps=1,
)


@pytest.fixture
def data(tmp_path):
    return create_sample_data(tmp_path / "data" / "d.json", n_samples=2)


@pytest.fixture
def no_loading(monkeypatch):
    """Any model/tokenizer/codec load fails the test: preflight errors must come first."""

    def must_not_load(*args, **kwargs):
        raise AssertionError("weights loaded before the preflight failed")

    for name in ("load_model", "load_tokenizer", "load_codec"):
        monkeypatch.setattr(recipe, name, must_not_load)


def test_lora_parameter_estimate_is_exact_for_the_tiny_model(tiny_model_factory):
    from higgs_lora.model.load import DEFAULT_LORA_TARGETS, apply_lora, count_parameters
    from higgs_lora.model.tiny import ensure_tiny_model

    config = json.loads((ensure_tiny_model() / "config.json").read_text())
    # bare suffixes ("q_proj") match as PEFT matches them
    for r, targets in (
        (8, DEFAULT_LORA_TARGETS),
        (4, ["self_attn.q_proj", "audio_mlp.down_proj"]),
        (4, ["q_proj", "down_proj"]),
    ):
        trainable, _ = count_parameters(apply_lora(tiny_model_factory(), r, 2 * r, 0.0, targets))
        assert pf.estimate_lora_parameters(config, r, targets) == trainable


def test_output_dir_not_writable(data, tmp_path, no_loading, monkeypatch):
    # A folder the OS says the user cannot write to (asked, not chmod-ed: root writes anywhere, so CI as
    # root would learn nothing from a locked folder); train stops before creating anything under it.
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(pf.os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    with pytest.raises(ValueError, match="locked is not writable"):
        train(TrainConfig(train_data=str(data), output_dir=str(locked / "out"), **TINY))
    assert not (locked / "out").exists()


def test_output_dir_that_is_a_file(data, tmp_path, no_loading):
    target = tmp_path / "out"
    target.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        train(TrainConfig(train_data=str(data), output_dir=str(target), **TINY))


def test_output_dir_without_write_access_is_detected(tmp_path, monkeypatch):
    # Also runs as root (where chmod does not lock anything): the check asks the OS.
    monkeypatch.setattr(pf.os, "access", lambda path, mode: False)
    with pytest.raises(ValueError, match="not writable"):
        pf.check_output_writable(tmp_path / "a" / "b")
    assert not (tmp_path / "a").exists()


def test_not_enough_disk_space(data, tmp_path, monkeypatch, no_loading):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(pf.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 2**20, 2**20))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"GiB free on its disk, the run needs about .*--save_total_limit"):
        train(TrainConfig(train_data=str(data), output_dir=str(out), **TINY))
    assert not out.exists()


def test_disk_space_estimate_grows_with_rank_and_kept_checkpoints(tmp_path):
    small = pf.check_disk_space(tmp_path, 1_000_000, save_total_limit=1)
    assert pf.check_disk_space(tmp_path, 1_000_000, save_total_limit=3) > small
    # one checkpoint: 12 bytes per LoRA parameter (weights + two AdamW moments) plus fixed files
    assert pf.checkpoint_bytes(10**6) == 12 * 10**6 + pf.FIXED_CHECKPOINT_BYTES


def test_data_missing_or_unreadable(tmp_path, no_loading):
    with pytest.raises(FileNotFoundError, match="--train_data .*no such file"):
        train(TrainConfig(train_data=str(tmp_path / "nope.json"), output_dir=str(tmp_path / "out"), **TINY))
    folder = tmp_path / "a_folder.json"
    folder.mkdir()
    with pytest.raises(FileNotFoundError, match="is a folder, not a data file.*higgs-lora convert"):
        pf.check_data_readable(folder)


def test_model_folder_without_config(data, tmp_path, no_loading):
    empty = tmp_path / "model"
    empty.mkdir()
    with pytest.raises(ValueError, match="model.*no config.json"):
        train(TrainConfig(**{**TINY, "base_model": str(empty)}, train_data=str(data), output_dir=str(tmp_path / "o")))
    with pytest.raises(ValueError, match="missing: no such folder"):
        train(
            TrainConfig(
                **{**TINY, "base_model": str(tmp_path / "missing")},
                train_data=str(data),
                output_dir=str(tmp_path / "o"),
            )
        )


def test_unreachable_hub_id_says_which_and_how_to_fix(data, tmp_path, monkeypatch, no_loading):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise huggingface_hub.errors.LocalEntryNotFoundError("offline")

    from higgs_lora.model import resolve

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    resolve.fetch.cache_clear()
    with pytest.raises(ValueError) as info:
        train(
            TrainConfig(
                **{**TINY, "base_model": "someone/not-cached-model"},
                train_data=str(data),
                output_dir=str(tmp_path / "o"),
            )
        )
    resolve.fetch.cache_clear()
    message = str(info.value)
    assert "someone/not-cached-model" in message and "cannot fetch" in message
    assert "local folder" in message and "tiny" in message


def test_codec_folder_missing_files(data, tmp_path, no_loading):
    codec = tmp_path / "codec"
    codec.mkdir()
    (codec / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="codec.*model.pth"):
        train(
            TrainConfig(**{**TINY, "audio_tokenizer": str(codec)}, train_data=str(data), output_dir=str(tmp_path / "o"))
        )


def test_cli_reports_preflight_errors_in_one_line(data, tmp_path, capsys):
    from higgs_lora.cli import main

    rc = main(
        [
            "train",
            "--train_data",
            str(data),
            "--output_dir",
            str(tmp_path / "o"),
            "--base_model",
            str(tmp_path / "missing"),
            "--audio_tokenizer",
            "tiny",
            "--max_steps",
            "1",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1 and "no such folder" in err


# --- partly copied model and codec folders ---------------------------------------------------------


def _partial_copy(tmp_path, keep):
    import shutil

    from higgs_lora.model.tiny import ensure_tiny_model

    folder = tmp_path / "partial"
    folder.mkdir()
    for name in keep:
        shutil.copy(ensure_tiny_model() / name, folder / name)
    return folder


def test_model_folder_with_only_config_names_what_is_missing_train(data, tmp_path, capsys, no_loading):
    from higgs_lora.cli import main

    folder = _partial_copy(tmp_path, ["config.json"])
    rc = main(
        [
            "train",
            "--train_data",
            str(data),
            "--output_dir",
            str(tmp_path / "o"),
            "--base_model",
            str(folder),
            "--audio_tokenizer",
            "tiny",
            "--max_steps",
            "1",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "Traceback" not in err and "KeyError" not in err and len(err.splitlines()) == 1
    assert "incomplete model folder" in err and "tokenizer_config.json" in err and "model.safetensors" in err


def test_model_folder_with_only_config_names_what_is_missing_check_alignment(data, tmp_path, capsys):
    from higgs_lora.cli import main

    folder = _partial_copy(tmp_path, ["config.json"])
    rc = main(
        [
            "check-alignment",
            "--train_data",
            str(data),
            "--base_model",
            str(folder),
            "--audio_tokenizer",
            "tiny",
            "--skip_overfit",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "Traceback" not in err and "KeyError" not in err
    assert "incomplete model folder" in err and "tokenizer_config.json" in err
    assert "model.safetensors" not in err  # --skip_overfit loads no weights, so none are asked for


def test_missing_shards_listed_in_the_index_are_named(tmp_path):
    from higgs_lora.model.folder_checks import check_model_complete

    folder = _partial_copy(
        tmp_path, ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
    )
    index = {
        "metadata": {},
        "weight_map": {"a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00002-of-00002.safetensors"},
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    (folder / "model-00001-of-00002.safetensors").write_bytes(b"x")
    with pytest.raises(ValueError) as info:
        check_model_complete(str(folder))
    assert "model-00002-of-00002.safetensors" in str(info.value)
    assert "model-00001-of-00002.safetensors" not in str(info.value)
    (folder / "model-00002-of-00002.safetensors").write_bytes(b"x")
    check_model_complete(str(folder))  # complete now: no error


def test_codec_folder_with_a_partial_semantic_teacher_is_named(data, tmp_path, no_loading):
    codec = tmp_path / "codec"
    (codec / "semantic_teacher").mkdir(parents=True)
    (codec / "config.json").write_text("{}")
    (codec / "model.pth").write_bytes(b"x")
    (codec / "semantic_teacher" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="semantic_teacher/ lacks its weights"):
        train(
            TrainConfig(**{**TINY, "audio_tokenizer": str(codec)}, train_data=str(data), output_dir=str(tmp_path / "o"))
        )
