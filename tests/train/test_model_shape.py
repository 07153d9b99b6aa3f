"""Parameter counts from the config alone, exact: against the real modules, PEFT's LoRA and the released model."""

import copy
import json

import pytest

from higgs_lora.train.model_shape import ModelShape, count_params, load_config_dict, model_weights, released_config


def _real_counts(model):
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def test_tiny_counts_match_the_real_model_module_by_module(tiny_model_factory):
    model = tiny_model_factory()
    shape = ModelShape.from_config(model.config.to_dict())
    real = {
        name: sum(p.numel() for p in m.parameters(recurse=False))
        for name, m in model.named_modules()
        if any(True for _ in m.parameters(recurse=False))
    }
    planned = {w.name: w.numel for w in model_weights(shape)}
    assert planned == real
    assert count_params(shape).total == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "r,targets", [(8, None), (4, ["self_attn.q_proj", "audio_mlp.down_proj", "audio_codebook_embeddings"])]
)
def test_tiny_lora_counts_match_peft(tiny_model_factory, r, targets):
    from higgs_lora.model.load import apply_lora

    model = apply_lora(tiny_model_factory(), r=r, alpha=2 * r, targets=targets)
    shape = ModelShape.from_config(model.config.to_dict())
    counts = count_params(shape, r, targets)
    assert (counts.trainable, counts.total) == _real_counts(model)


def test_released_counts_and_variants():
    config = released_config()
    shape = ModelShape.from_config(config)
    assert count_params(shape).total == 5_771_283_456  # the harness's count of the built model
    # r=64 on the design's targets: per layer 4 attention + 3 text FFN + 3 audio FFN adapters, plus both heads
    h, kv, inter = 3072, 1024, 8192
    layer = 64 * (2 * 2 * h + 2 * (h + kv) + 2 * 2 * (h + inter) + 2 * (inter + h))
    heads = 64 * (h + 128256) + 64 * (h + 8 * 1026)
    assert count_params(shape, 64).trainable == 28 * layer + heads == 166_937_600
    # audio FFN only on some layers: those layers lose it and its norms
    fewer = copy.deepcopy(config)
    fewer["audio_dual_ffn_layers"] = [0, 1]
    dropped = 26 * (3 * h * inter + 2 * h)
    assert count_params(ModelShape.from_config(fewer)).total == 5_771_283_456 - dropped


def test_a_config_with_an_audio_tower_is_refused():
    config = released_config()
    config["skip_audio_tower"] = False
    with pytest.raises(ValueError, match="audio tower"):
        ModelShape.from_config(config)


def test_load_config_dict(tmp_path):
    from higgs_lora.defaults import BASE_MODEL

    assert load_config_dict(BASE_MODEL) == released_config()
    (tmp_path / "config.json").write_text(json.dumps({"x": 1}))
    assert load_config_dict(str(tmp_path)) == {"x": 1}
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_config_dict(str(tmp_path / ".."))
    with pytest.raises(FileNotFoundError):
        load_config_dict("nobody/not-a-model")
