"""Provenance: the revision and weight hashes a name resolved to, and the warning for other base weights."""

import hashlib
import logging
import shutil

from hub_fakes import old_model_snapshot

from higgs_lora.defaults import BASE_MODEL, MODEL_REPO, MODEL_REVISION
from higgs_lora.model import provenance


def test_provenance_records_revision_and_weight_hashes(tmp_path, fake_hub):
    snapshot = old_model_snapshot(tmp_path)
    fake_hub({MODEL_REPO: snapshot})
    record = provenance.provenance(BASE_MODEL)
    assert (record["repo"], record["revision"]) == (MODEL_REPO, MODEL_REVISION)
    expected = hashlib.sha256((snapshot / "model.safetensors").read_bytes()).hexdigest()
    assert record["weights_sha256"] == {"model.safetensors": expected}


def test_serving_an_adapter_on_other_base_weights_warns(tmp_path, caplog):
    base = old_model_snapshot(tmp_path)
    run_config = {"provenance": {"base_model": provenance.provenance(str(base))}}
    with caplog.at_level(logging.WARNING):
        assert provenance.warn_if_other_base(run_config, str(base), "infer") is False
    assert not caplog.records
    other = tmp_path / "other"
    shutil.copytree(base, other)
    from safetensors.torch import load_file, save_file

    weights = load_file(other / "model.safetensors")
    name = next(iter(weights))
    weights[name] = weights[name] + 1
    save_file(weights, other / "model.safetensors", metadata={"format": "pt"})
    with caplog.at_level(logging.WARNING):
        assert provenance.warn_if_other_base(run_config, str(other), "infer") is True
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
    assert provenance.weight_hashes(cached) == {"model.safetensors": recorded}

    staged = tmp_path / "staged"
    meta = staged / ".cache" / "huggingface" / "download"
    meta.mkdir(parents=True)
    weights = staged / "model.safetensors"
    weights.write_bytes(b"weights")
    (meta / "model.safetensors.metadata").write_text(f"{'0' * 40}\n{'cd' * 32}\n{time.time() + 5}\n")
    assert provenance.weight_hashes(staged) == {"model.safetensors": "cd" * 32}
    later = time.time() + 100  # edited (or copied without times) after the download: the record no longer holds
    os.utime(weights, (later, later))
    assert provenance.weight_hashes(staged) == {"model.safetensors": hashlib.sha256(b"weights").hexdigest()}
    (meta / "model.safetensors.metadata").write_text("garbage")
    assert provenance.weight_hashes(staged) == {"model.safetensors": hashlib.sha256(b"weights").hexdigest()}
