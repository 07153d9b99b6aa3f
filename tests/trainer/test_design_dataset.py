"""The design's own dataset test (design.md, "Data Validation Tests"), run as written against trainer/dataset.py."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _design_module():
    spec = importlib.util.spec_from_file_location("design_dataset", ROOT / "trainer" / "dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def VoiceCloningDataset():
    return _design_module().VoiceCloningDataset


@pytest.fixture()
def data_path(sample_data_path):
    return sample_data_path


@pytest.fixture()
def tokenizer(tiny_tokenizer):
    return tiny_tokenizer


@pytest.fixture()
def audio_tokenizer(tiny_codec):
    return tiny_codec


def test_chatml_format(VoiceCloningDataset, data_path, tokenizer, audio_tokenizer):
    """Test ChatML format compliance."""
    dataset = VoiceCloningDataset(data_path, tokenizer, audio_tokenizer)
    sample = dataset[0]

    # Verify structure
    assert hasattr(sample, "input_ids")
    assert hasattr(sample, "audio_ids_concat")
    assert hasattr(sample, "audio_waveforms_concat")


def test_design_dataset_is_the_training_dataset(
    VoiceCloningDataset, data_path, tokenizer, audio_tokenizer, sample_samples, tiny_dataset
):
    """Same items as the package's dataset (what `higgs-lora train` feeds), from a path or a list, codec by name."""
    from_path = VoiceCloningDataset(data_path, tokenizer, audio_tokenizer)
    from_list = VoiceCloningDataset(sample_samples[:2], tokenizer, "tiny")
    records = json.loads(Path(data_path).read_text(encoding="utf-8"))[:2]
    for r in records:  # records in a list resolve their audio against the current folder: make them absolute
        for m in r["messages"]:
            if isinstance(m["content"], dict):
                m["content"]["audio_url"] = str(Path(data_path).parent / m["content"]["audio_url"])
    from_records = VoiceCloningDataset(records, tokenizer, audio_tokenizer)
    assert len(from_path) == len(sample_samples)
    for ds in (from_path, from_list, from_records):
        for i in range(2):
            item, want = ds[i], tiny_dataset[i]
            assert item.input_ids.tolist() == want.input_ids.tolist()
            assert item.label_ids.tolist() == want.label_ids.tolist()
            assert item.audio_ids_concat.equal(want.audio_ids_concat)
    with pytest.raises(ValueError, match="sample 0"):
        VoiceCloningDataset([{"messages": []}], tokenizer, audio_tokenizer)
