"""gpu-check's FLOP model on the shipped released configuration: exact parameter groups, and the active
parameters a text or an audio position multiplies with."""

from higgs_lora.bench.flops import active_params_per_token, parameter_groups
from higgs_lora.bench.random_model import build_config, build_meta_model
from higgs_lora.model import tiny


def test_shipped_config_builds_the_released_architecture():
    config = build_config("released")
    model = build_meta_model(config)  # no memory: shapes only
    groups = parameter_groups(model)
    assert groups["total"] == 5_771_283_456  # the released model's parameter count
    assert config.audio_num_codebooks == 8 and config.use_delay_pattern and config.skip_audio_tower
    assert config.text_config.num_hidden_layers == 28 and len(config.audio_dual_ffn_layers) == 28
    # the special ids point into the tiny tokenizer, so its prompts drive the full-size model
    assert config.audio_out_token_idx == tiny.special_id("<|AUDIO_OUT|>")
    assert config.pad_token_id == tiny.special_id("<|end_of_text|>")
    # text tokens take the text MLP, audio tokens the audio MLP: the active count moves between them
    text_only, audio_only = active_params_per_token(groups, 0.0), active_params_per_token(groups, 1.0)
    assert 2.5e9 < text_only < 4e9 and audio_only - text_only == (
        groups["audio_mlp"] + groups["audio_head"] - groups["text_mlp"]
    )
    # the text head is its own matrix (not tied, whatever the config says) and counted exactly once
    head = model.audio_decoder_proj.text_lm_head.weight
    assert head is not model.embed_tokens.weight and "tied_text_head" not in groups
    attention = sum(p.numel() for n, p in model.named_parameters() if ".self_attn." in n)
    norms = sum(p.numel() for n, p in model.named_parameters() if "norm" in n)
    assert active_params_per_token(groups, 0.0) == attention + norms + head.numel() + groups["text_mlp"]
    # the step that runs applies the text head on the labelled rows only: their share scales the head alone
    assert groups["text_head"] == head.numel()
    assert active_params_per_token(groups, 0.0, 0.01) == attention + norms + 0.01 * head.numel() + groups["text_mlp"]
