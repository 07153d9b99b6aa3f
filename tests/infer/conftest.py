"""Fixtures for the infer-stage tests."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """Opt in with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`.

    The tiny model's ops are far too small to gain from threads; on a shared 2-core machine two
    intra-op threads contend with other processes and make a training step 10-50x slower (measured:
    ~10 s instead of ~60 ms). One thread keeps these tests fast and their timing predictable.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
