"""Fixtures of the check-alignment tests: two samples, the real pipeline's report, a small data file.

Session-scoped: the real report (a 150-step fit) is read by several test files.
"""

import pytest
from alignment_kit import run_tiny


@pytest.fixture(scope="session")
def samples(sample_samples):
    return sample_samples[:2]  # two speakers


@pytest.fixture(scope="session")
def real_report(samples, tiny_model_factory, tiny_tokenizer, tiny_codec):
    return run_tiny(samples, tiny_model_factory, tiny_tokenizer, tiny_codec, max_steps=150, check_every=25)


@pytest.fixture(scope="session")
def cli_data(tmp_path_factory):
    from higgs_lora.data.sample_data import create_sample_data

    return create_sample_data(tmp_path_factory.mktemp("check_cli") / "d.json", n_samples=3)
