"""The plan `higgs-lora plan` prints: a warning with the right advice when it does not fit, the printed counts."""

from higgs_lora.train.model_shape import active_params_per_token, released_config, text_head_params
from higgs_lora.train.plan import format_plan, make_plan


def test_plan_warns_when_it_does_not_fit():
    config = released_config()
    ok = make_plan(config, 4, 1000, 64, gpus=8, gpu="h200", checkpointing=True)
    assert not ok.warnings
    too_big = make_plan(config, 4, 2600, 64, gpu="h100")
    assert too_big.warnings and "checkpointing" in too_big.warnings[0]
    hopeless = make_plan(config, 64, 4000, 64, gpu="h100", checkpointing=True)
    assert hopeless.warnings and "--batch_size" in hopeless.warnings[0]
    text = format_plan(ok)
    assert "5,938,221,056" in text and "166,937,600" in text
    # per position: the decoder's active parameters; the text head runs on the labelled rows only
    active = (active_params_per_token(ok.shape, 64) - text_head_params(ok.shape, 64)) / 1e9
    assert f"{active:.2f} G active params/token + the text head on 3 labelled rows per sample" in text
    # the printed active parameters follow --lora_targets, as the step time does
    heads_only = make_plan(config, 4, 1000, 64, targets=["text_lm_head"])
    layers_only = active_params_per_token(ok.shape, 0) - text_head_params(ok.shape, 0)
    assert f"{layers_only / 1e9:.2f} G active" in format_plan(heads_only)  # its LoRA sits on the head
