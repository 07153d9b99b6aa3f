"""Weights by name: pinned hub revisions, format detection, staging, provenance — all offline.

The hub is out of reach here, so `huggingface_hub.snapshot_download` is replaced by a recorder that
serves fake snapshots from disk: the released layout shrunk to tiny sizes (the tiny model folder,
whose nested config is the released one at small sizes), the 2026-04 transformers-native layout
(flattened `higgs_audio_v2` config), and codec folders with and without `model.pth`.
"""

import hashlib
import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

from higgs_lora.cli import main
from higgs_lora.defaults import (
    AUDIO_TOKENIZER,
    BASE_MODEL,
    MODEL_REPO,
    MODEL_REVISION,
    TOKENIZER_REPO,
    TOKENIZER_REVISION,
)
from higgs_lora.model import hub
from higgs_lora.model.hub import HubRef, WeightsError, parse_ref
from higgs_lora.model.load import load_model, load_tokenizer
from higgs_lora.model.tiny import ensure_tiny_model

TEACHER_REPO = hub.SEMANTIC_TEACHER_REPO


# --- fake snapshots ----------------------------------------------------------------------------------


def old_model_snapshot(root: Path) -> Path:
    """The format boson_multimodal reads: nested text_config, model_type higgs_audio (the tiny kit)."""
    folder = root / "old_model"
    shutil.copytree(ensure_tiny_model(), folder)
    (folder / "demo.wav").write_bytes(b"RIFF")  # the real repos hold media too
    return folder


def new_model_snapshot(root: Path) -> Path:
    """The 2026-04 rewrite: flattened config, model_type higgs_audio_v2, renamed weights."""
    folder = root / "new_model"
    folder.mkdir()
    config = json.loads((ensure_tiny_model() / "config.json").read_text())
    flat = {k: v for k, v in config.items() if k != "text_config"} | config["text_config"]
    flat["model_type"] = "higgs_audio_v2"
    (folder / "config.json").write_text(json.dumps(flat))
    shutil.copy(ensure_tiny_model() / "model.safetensors", folder / "model.safetensors")
    return folder


@pytest.fixture(scope="module")
def codec_state(tmp_path_factory):
    """A real-architecture tokenizer (random weights) saved as boson's old layout, plus a random HuBERT."""
    from higgs_lora.bench.random_codec import random_higgs_codec, random_semantic_teacher
    from higgs_lora.data.higgs_codec import RELEASED_TOKENIZER_CONFIG

    root = tmp_path_factory.mktemp("codec")
    codec = random_higgs_codec(device="cpu")
    old = root / "old_codec"
    old.mkdir()
    (old / "config.json").write_text(json.dumps(RELEASED_TOKENIZER_CONFIG))
    torch.save(codec.tokenizer.state_dict(), old / "model.pth")
    teacher = root / "teacher"
    random_semantic_teacher().save_pretrained(teacher)
    new = root / "new_codec"
    new.mkdir()
    (new / "config.json").write_text(json.dumps(RELEASED_TOKENIZER_CONFIG))
    (new / "model.safetensors").write_bytes(b"\0" * 16)
    return {"old": old, "new": new, "teacher": teacher, "state": codec.tokenizer.state_dict()}


class FakeHub:
    """Stands in for huggingface_hub.snapshot_download: records each call, serves folders by repo."""

    def __init__(self, folders: dict[str, Path]):
        self.folders = folders
        self.calls: list[dict] = []

    def __call__(self, repo_id, revision=None, allow_patterns=None, local_dir=None, **kwargs):
        self.calls.append(
            {"repo_id": repo_id, "revision": revision, "allow_patterns": allow_patterns, "local_dir": local_dir}
        )
        if repo_id not in self.folders:
            raise OSError(f"We couldn't connect to 'https://huggingface.co' to load {repo_id}")
        source = self.folders[repo_id]
        if local_dir is None:
            return str(source)
        target = Path(local_dir)
        target.mkdir(parents=True, exist_ok=True)
        for path in source.iterdir():
            if path.is_file() and any(Path(path.name).match(p) for p in allow_patterns or ["*"]):
                shutil.copy(path, target / path.name)
        return str(target)


@pytest.fixture
def fake_hub(monkeypatch):
    def install(folders):
        fake = FakeHub(folders)
        import huggingface_hub

        monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
        hub.fetch.cache_clear()
        return fake

    yield install
    hub.fetch.cache_clear()


# --- REPO@REVISION -----------------------------------------------------------------------------------


def test_parse_ref(tmp_path, caplog):
    assert parse_ref("owner/repo@abc123") == HubRef("owner/repo", "abc123")
    assert parse_ref("owner/repo@v1.0") == HubRef("owner/repo", "v1.0")
    assert str(parse_ref("a/b@c")) == "a/b@c"
    assert parse_ref("owner/repo@refs/pr/1") == HubRef("owner/repo", "refs/pr/1")  # slashes in a revision
    assert parse_ref("tiny") is None
    assert parse_ref(str(tmp_path)) is None  # an existing folder is a folder, whatever its name
    with caplog.at_level(logging.WARNING):
        assert parse_ref("someone/model") == HubRef("someone/model", "main")
    assert not caplog.records  # plain repos of others mean main, quietly
    with caplog.at_level(logging.WARNING):
        assert parse_ref(MODEL_REPO) == HubRef(MODEL_REPO, "main")
    assert MODEL_REVISION in caplog.text and "main" in caplog.text  # Boson's rewritten repos warn
    for bad in ("no-slash", "a/b@", "a b/c"):
        with pytest.raises(WeightsError, match="hub id"):
            parse_ref(bad)
    for missing_folder in ("a/b/c", "/abs/path/that/does/not/exist", "./model", str(tmp_path / "gone")):
        with pytest.raises(WeightsError, match="no such folder"):
            parse_ref(missing_folder)


def test_defaults_are_pinned():
    assert parse_ref(BASE_MODEL) == HubRef(MODEL_REPO, "10840182ca4ad5d9d9113b60b9bb3c1ef1ba3f84")
    assert parse_ref(AUDIO_TOKENIZER) == HubRef(TOKENIZER_REPO, "9d4988fbd4ad07b4cac3a5fa462741a41810dbec")


# --- format detection --------------------------------------------------------------------------------


def test_old_layout_loads_and_a_native_folder_that_cannot_be_converted_is_refused_with_the_fix(tmp_path):
    """A complete native folder is converted (tests/native/test_convert.py); this fake has no tokenizer and
    boson-named weights, so it cannot be, and says so in one line with the pinned revision."""
    old = old_model_snapshot(tmp_path)
    assert hub.model_folder(str(old)) == old
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
        hub.model_folder(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(WeightsError, match="llama"):
        hub.model_folder(str(tmp_path))


def test_codec_folder_with_and_without_model_pth(codec_state):
    assert hub.codec_folder(str(codec_state["old"])) == codec_state["old"]
    with pytest.raises(WeightsError) as info:
        hub.codec_folder(str(codec_state["new"]))
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


# --- every hub access names the pinned revision ------------------------------------------------------


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


# --- higgs-lora download -----------------------------------------------------------------------------


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


# --- provenance --------------------------------------------------------------------------------------


def test_provenance_records_revision_and_weight_hashes(tmp_path, fake_hub):
    snapshot = old_model_snapshot(tmp_path)
    fake_hub({MODEL_REPO: snapshot})
    record = hub.provenance(BASE_MODEL)
    assert (record["repo"], record["revision"]) == (MODEL_REPO, MODEL_REVISION)
    expected = hashlib.sha256((snapshot / "model.safetensors").read_bytes()).hexdigest()
    assert record["weights_sha256"] == {"model.safetensors": expected}


def test_serving_an_adapter_on_other_base_weights_warns(tmp_path, caplog):
    base = old_model_snapshot(tmp_path)
    run_config = {"provenance": {"base_model": hub.provenance(str(base))}}
    with caplog.at_level(logging.WARNING):
        assert hub.warn_if_other_base(run_config, str(base), "infer") is False
    assert not caplog.records
    other = tmp_path / "other"
    shutil.copytree(base, other)
    from safetensors.torch import load_file, save_file

    weights = load_file(other / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] + 1
    save_file(weights, other / "model.safetensors", metadata={"format": "pt"})
    with caplog.at_level(logging.WARNING):
        assert hub.warn_if_other_base(run_config, str(other), "infer") is True
    assert "trained on" in caplog.text and str(other) in caplog.text


def test_weight_hashes_come_from_the_hub_records_without_reading_the_file(tmp_path):
    """Hub cache links name their blob by sha256; a `download` folder keeps huggingface_hub's metadata.
    Recorded hashes that differ from the content prove they were read, not computed; an edited file is hashed."""
    import os
    import time

    blobs = tmp_path / "blobs"
    blobs.mkdir()
    recorded = "ab" * 32
    (blobs / recorded).write_bytes(b"weights")
    cached = tmp_path / "snapshot"
    cached.mkdir()
    (cached / "model.safetensors").symlink_to(blobs / recorded)
    assert hub.weight_hashes(cached) == {"model.safetensors": recorded}

    staged = tmp_path / "staged"
    meta = staged / ".cache" / "huggingface" / "download"
    meta.mkdir(parents=True)
    weights = staged / "model.safetensors"
    weights.write_bytes(b"weights")
    (meta / "model.safetensors.metadata").write_text(f"{'0' * 40}\n{'cd' * 32}\n{time.time() + 5}\n")
    assert hub.weight_hashes(staged) == {"model.safetensors": "cd" * 32}
    later = time.time() + 100  # edited (or copied without times) after the download: the record no longer holds
    os.utime(weights, (later, later))
    assert hub.weight_hashes(staged) == {"model.safetensors": hashlib.sha256(b"weights").hexdigest()}
    (meta / "model.safetensors.metadata").write_text("garbage")
    assert hub.weight_hashes(staged) == {"model.safetensors": hashlib.sha256(b"weights").hexdigest()}
