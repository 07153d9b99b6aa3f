"""Shared fixtures: the offline sample data, the tiny model kit and the tiny codec.

The tiny model is built once per machine into the user cache (``HIGGS_LORA_CACHE`` or
``~/.cache/higgs_lora``); tests that need a model they may modify ask ``tiny_model_factory``
for a fresh copy.
"""

import pytest
import torch

# The tiny model's ops are far too small to gain from threads; on a shared 2-core machine two
# intra-op threads contend with other processes and make a training step 10-50x slower (measured:
# ~10 s instead of ~60 ms). One thread for the whole suite keeps it fast and its timing predictable.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def sample_data_path(tmp_path_factory):
    """The shipped sample set (real speech clips), written once per session; do not modify it."""
    from higgs_lora.data.sample_data import create_sample_data

    return create_sample_data(tmp_path_factory.mktemp("sample_data") / "d.json")


@pytest.fixture(scope="session")
def sample_samples(sample_data_path):
    """The sample set as `CloneSample` components (default system prompt)."""
    from higgs_lora.data.validate import load_samples

    return load_samples(sample_data_path)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from higgs_lora.model.load import load_tokenizer

    return load_tokenizer("tiny")


@pytest.fixture(scope="session")
def tiny_model_factory():
    """Call it to get a fresh fp32 CPU tiny model (same weights every time)."""
    from higgs_lora.model.load import load_model

    def make():
        return load_model("tiny", device="cpu", dtype="fp32")

    return make


@pytest.fixture(scope="session")
def tiny_config(tiny_model_factory):
    """The tiny model's config; deepcopy it before changing anything."""
    return tiny_model_factory().config


@pytest.fixture(scope="session")
def tiny_codec():
    from higgs_lora.data.codes import TinyCodec

    return TinyCodec()


@pytest.fixture(scope="session")
def tiny_dataset(sample_samples, tiny_tokenizer, tiny_codec):
    """A two-sample VoiceCloningDataset (two speakers). Safe to share: every read builds fresh tensors."""
    from higgs_lora.data.dataset import VoiceCloningDataset

    return VoiceCloningDataset(sample_samples[:2], tiny_tokenizer, tiny_codec)
