"""Fixtures the training tests share."""

import pytest


@pytest.fixture(scope="module")
def data4(tmp_path_factory):
    """Four shipped samples (real speech): with batch 2, two optimizer steps per epoch."""
    from higgs_lora.data.sample_data import create_sample_data

    return create_sample_data(tmp_path_factory.mktemp("data4") / "d.json", n_samples=4)
