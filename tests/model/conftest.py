"""Fixtures of the weights tests: a real-architecture codec saved in boson's layout, and the fake hub."""

import json

import pytest
import torch
from hub_fakes import FakeHub

from higgs_lora.model import resolve


@pytest.fixture(scope="session")
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


@pytest.fixture
def fake_hub(monkeypatch):
    def install(folders):
        fake = FakeHub(folders)
        import huggingface_hub

        monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
        resolve.fetch.cache_clear()
        return fake

    yield install
    resolve.fetch.cache_clear()
