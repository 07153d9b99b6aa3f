"""The shared facts and formulas (higgs_lora/constants.py)."""

import pytest

from higgs_lora.constants import (
    FRAMES_PER_SECOND,
    GPU_PEAK_FLOPS,
    TEXT_CAP_FRAMES_PER_CHAR,
    TEXT_CAP_SLACK_FRAMES,
    peak_flops_for,
    target_token_cap,
    text_token_cap,
    training_flops,
)


def test_text_token_cap_formula():
    assert text_token_cap("abcd") == TEXT_CAP_FRAMES_PER_CHAR * 4 + TEXT_CAP_SLACK_FRAMES
    assert text_token_cap("  abcd  ") == text_token_cap("abcd")
    assert text_token_cap("abcd", max_new_tokens=10) == 10
    assert text_token_cap("a" * 1000, max_new_tokens=2048) == 2048
    # the cap leaves room for slow speech: 5 characters per second
    assert text_token_cap("a" * 100) / FRAMES_PER_SECOND >= 100 / 5


def test_target_token_cap_follows_the_target_length():
    assert target_token_cap(2048, 3.0, 2.0, 25, 8) == 150 + 10
    assert target_token_cap(100, 3.0, 2.0, 25, 8) == 100
    assert target_token_cap(2048, 0, 2.0, 25, 8) == 2048


@pytest.mark.parametrize(
    "name, key",
    [
        ("NVIDIA L40S", "L40S"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA A10", "A10"),
        ("NVIDIA A100-SXM4-80GB", "A100"),
        ("NVIDIA H200", "H200"),
        ("NVIDIA GeForce RTX 4090", "RTX 4090"),
    ],
)
def test_peak_flops_takes_the_longest_matching_card(name, key):
    """Bug caught: a first-match lookup in a reordered table gives an L40S the L4's peak (3 x too low)."""
    assert peak_flops_for(name) == GPU_PEAK_FLOPS[key]


def test_unknown_card_has_no_peak():
    assert peak_flops_for("cpu") is None


def test_training_flops_match_the_planner():
    """Bug caught: gpu-check (which counts with training_flops) and the planner counting a step's FLOPs
    differently, as they did (4N against 6N), so the two MFU figures could not be compared."""
    from higgs_lora.train.model_shape import ModelShape, active_params_per_token, released_config
    from higgs_lora.train.step_estimate import estimate_step

    shape = ModelShape.from_config(released_config())
    batch, seq = 2, 100
    est = estimate_step(shape, batch_size=batch, seq_len=seq, lora_r=0, mfu=1.0, full_logits=True)
    attention = 4 * seq * shape.layers * shape.heads * shape.head_dim
    forward = batch * seq * (2 * active_params_per_token(shape, 0) + attention)
    assert est.flops == pytest.approx(training_flops(forward), rel=1e-12)
