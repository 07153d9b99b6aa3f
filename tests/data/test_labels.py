"""Labels kept one bit a token come back exactly; labels that differ from their ids are kept in full."""

import numpy as np

from higgs_lora.data.labels import pack_labels, unpack_labels


def test_labels_kept_compactly_come_back_exactly():
    ids = np.arange(10)
    odd = np.array([-100] * 5 + [7, 6, 7, 8, 9])  # a label that differs from its input id: kept in full
    np.testing.assert_array_equal(unpack_labels(ids, pack_labels(ids, odd)), odd)
    plain = np.array([-100] * 5 + [5, 6, 7, 8, 9])
    assert pack_labels(ids, plain).nbytes == 2
    np.testing.assert_array_equal(unpack_labels(ids, pack_labels(ids, plain)), plain)
