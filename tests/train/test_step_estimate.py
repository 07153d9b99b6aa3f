"""The step's FLOP count: the formula at the released shape, the labelled-rows head, checkpointing, the MFU."""

import pytest

from higgs_lora.train.calibration import DEFAULT_MFU
from higgs_lora.train.model_shape import ModelShape, active_params_per_token, released_config
from higgs_lora.train.step_estimate import TEXT_ROWS_PER_SAMPLE, estimate_step


def test_flops_formula():
    shape = ModelShape.from_config(released_config())
    n_active = active_params_per_token(shape)
    # attention + one FFN per layer, plus the text head at every position
    assert n_active == 28 * (2 * 3072 * 3072 + 2 * 3072 * 1024 + 3 * 3072 * 8192) + 3072 * 128256
    # upstream's step: the text head at every position
    step = estimate_step(shape, 4, 1000, lora_r=0, gpu="h200", mfu=0.5, full_logits=True)
    forward = 4000 * (2 * n_active + 4 * 1000 * 28 * 24 * 128)
    assert step.flops == 3 * forward
    assert step.seconds == pytest.approx(step.flops / (989e12 * 0.5))
    with_ckpt = estimate_step(shape, 4, 1000, lora_r=0, checkpointing=True, mfu=0.5, full_logits=True)
    assert 0.8 * forward < with_ckpt.flops - step.flops < forward  # recompute = layers' forward, not the head
    # the step that runs (train.heads): the head on 3 labelled rows per sample instead of 1000
    head = 3072 * 128256
    labelled = estimate_step(shape, 4, 1000, lora_r=0, mfu=0.5)
    assert step.flops - labelled.flops == 3 * 2 * head * (4000 - 4 * TEXT_ROWS_PER_SAMPLE)
    # its LoRA on text_lm_head moves with the head, not with the positions
    adapted = estimate_step(shape, 4, 1000, lora_r=64, targets=["text_lm_head"], mfu=0.5)
    assert adapted.flops - labelled.flops == 3 * 2 * 64 * (3072 + 128256) * 4 * TEXT_ROWS_PER_SAMPLE
    # the measured H200 step (batch 4, 0.55 s) sits near the default MFU
    measured = estimate_step(shape, 4, 1070, 64, mfu=1.0, full_logits=True).flops / 0.55 / 989e12
    assert 0.5 * DEFAULT_MFU < measured < 2 * DEFAULT_MFU
