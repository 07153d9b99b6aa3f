"""The memory estimate against the H200 figures, and how it grows with length, batch, checkpointing and precision."""

import pytest

from higgs_lora.train.calibration import CALIBRATION_POINTS
from higgs_lora.train.memory_estimate import GIB, estimate_memory
from higgs_lora.train.model_shape import ModelShape, released_config


@pytest.mark.parametrize("what,batch,length,ckpt,measured,full_logits", CALIBRATION_POINTS)
def test_memory_estimate_within_25_percent_of_the_h200_measurements(what, batch, length, ckpt, measured, full_logits):
    shape = ModelShape.from_config(released_config())
    estimate = estimate_memory(shape, batch, length, lora_r=64, checkpointing=ckpt, full_logits=full_logits)
    assert abs(estimate.total / GIB / measured - 1) <= 0.25, (what, ckpt, estimate.total / GIB, measured)
    assert estimate.full_logits == full_logits and estimate.logits < estimate.activations


def test_memory_grows_as_expected():
    shape = ModelShape.from_config(released_config())
    base = estimate_memory(shape, 4, 1000, 64)
    ckpt = estimate_memory(shape, 4, 1000, 64, checkpointing=True)
    assert ckpt.activations < base.activations / 4
    assert ckpt.weights == base.weights == 5_771_283_456 * 2
    assert base.optimizer == 8 * 166_937_600 and base.lora_params == base.lora_grads == 4 * 166_937_600
    # the quadratic attention term: doubling L more than doubles activations
    assert estimate_memory(shape, 4, 2000, 64).activations > 2 * base.activations
    assert estimate_memory(shape, 8, 1000, 64).activations == pytest.approx(2 * base.activations, rel=1e-6)
    fp32 = estimate_memory(shape, 4, 1000, 64, weight_bytes=4)
    assert fp32.weights == 2 * base.weights and fp32.activations > base.activations
