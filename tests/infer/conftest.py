"""Fixtures of the infer tests (the shared ones, tiny model kit and sample data, are in tests/conftest.py)."""

import pytest


@pytest.fixture(scope="module")
def sample(sample_samples):
    return sample_samples[0]
