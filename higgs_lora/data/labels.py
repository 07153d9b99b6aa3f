"""Labels kept compactly: one bit a token where they equal the input ids (trained) or -100 (masked)."""

from __future__ import annotations

import numpy as np

from ..constants import IGNORE_INDEX as IGNORE


def pack_labels(input_ids, label_ids):
    """Labels are the input ids where trained and -100 elsewhere: keep one bit a token (a full copy otherwise)."""
    ids, labels = np.asarray(input_ids), np.asarray(label_ids)
    mask = labels != IGNORE
    if labels.shape == ids.shape and np.array_equal(labels[mask], ids[mask]):
        return np.packbits(mask)
    return labels.astype(np.int32)


def unpack_labels(input_ids, packed) -> np.ndarray:
    """The labels `pack_labels` kept, as an array the length of `input_ids`."""
    if packed.dtype != np.uint8:
        return packed
    mask = np.unpackbits(packed, count=len(input_ids)).astype(bool)
    return np.where(mask, input_ids, IGNORE)
