"""The planner: exact parameter counts against real modules, memory against the H200 figures, FLOPs."""

import copy
import json

import pytest

from higgs_lora.train import plan as P


def _real_counts(model):
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def test_tiny_counts_match_the_real_model_module_by_module(tiny_model_factory):
    model = tiny_model_factory()
    shape = P.ModelShape.from_config(model.config.to_dict())
    real = {
        name: sum(p.numel() for p in m.parameters(recurse=False))
        for name, m in model.named_modules()
        if any(True for _ in m.parameters(recurse=False))
    }
    planned = {w.name: w.numel for w in P.model_weights(shape)}
    assert planned == real
    assert P.count_params(shape).total == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "r,targets", [(8, None), (4, ["self_attn.q_proj", "audio_mlp.down_proj", "audio_codebook_embeddings"])]
)
def test_tiny_lora_counts_match_peft(tiny_model_factory, r, targets):
    from higgs_lora.model.load import apply_lora

    model = apply_lora(tiny_model_factory(), r=r, alpha=2 * r, targets=targets)
    shape = P.ModelShape.from_config(model.config.to_dict())
    counts = P.count_params(shape, r, targets)
    assert (counts.trainable, counts.total) == _real_counts(model)


def test_released_counts_and_variants():
    config = P.released_config()
    shape = P.ModelShape.from_config(config)
    assert P.count_params(shape).total == 5_771_283_456  # the harness's count of the built model
    # r=64 on the design's targets: per layer 4 attention + 3 text FFN + 3 audio FFN adapters, plus both heads
    h, kv, inter = 3072, 1024, 8192
    layer = 64 * (2 * 2 * h + 2 * (h + kv) + 2 * 2 * (h + inter) + 2 * (inter + h))
    heads = 64 * (h + 128256) + 64 * (h + 8 * 1026)
    assert P.count_params(shape, 64).trainable == 28 * layer + heads == 166_937_600
    # audio FFN only on some layers: those layers lose it and its norms
    fewer = copy.deepcopy(config)
    fewer["audio_dual_ffn_layers"] = [0, 1]
    dropped = 26 * (3 * h * inter + 2 * h)
    assert P.count_params(P.ModelShape.from_config(fewer)).total == 5_771_283_456 - dropped


def test_a_config_with_an_audio_tower_is_refused():
    config = P.released_config()
    config["skip_audio_tower"] = False
    with pytest.raises(ValueError, match="audio tower"):
        P.ModelShape.from_config(config)


@pytest.mark.parametrize("what,batch,length,ckpt,measured,full_logits", P.CALIBRATION_POINTS)
def test_memory_estimate_within_25_percent_of_the_h200_measurements(what, batch, length, ckpt, measured, full_logits):
    shape = P.ModelShape.from_config(P.released_config())
    estimate = P.estimate_memory(shape, batch, length, lora_r=64, checkpointing=ckpt, full_logits=full_logits)
    assert abs(estimate.total / P.GIB / measured - 1) <= 0.25, (what, ckpt, estimate.total / P.GIB, measured)
    assert estimate.full_logits == full_logits and estimate.logits < estimate.activations


def test_seconds_to_columns_agrees_with_the_dataset(tiny_dataset, tiny_tokenizer):
    from higgs_lora.data.sample import tokenize_chatml

    assert P.seconds_to_columns(30, 8) == 759  # 750 frames + stream BOS/EOS + 7 delay columns
    for i, sample in enumerate(tiny_dataset.samples):
        text, _, paths = tokenize_chatml(tiny_dataset.chatml(sample), tiny_tokenizer)
        seconds = [tiny_dataset.codes(p).shape[1] / P.FRAMES_PER_SECOND for p in paths]
        # each clip replaces its one placeholder token
        assert tiny_dataset.lengths()[i] == len(text) + sum(P.seconds_to_columns(s, 8) - 1 for s in seconds)


def test_memory_grows_as_expected():
    shape = P.ModelShape.from_config(P.released_config())
    base = P.estimate_memory(shape, 4, 1000, 64)
    ckpt = P.estimate_memory(shape, 4, 1000, 64, checkpointing=True)
    assert ckpt.activations < base.activations / 4
    assert ckpt.weights == base.weights == 5_771_283_456 * 2
    assert base.optimizer == 8 * 166_937_600 and base.lora_params == base.lora_grads == 4 * 166_937_600
    # the quadratic attention term: doubling L more than doubles activations
    assert P.estimate_memory(shape, 4, 2000, 64).activations > 2 * base.activations
    assert P.estimate_memory(shape, 8, 1000, 64).activations == pytest.approx(2 * base.activations, rel=1e-6)
    fp32 = P.estimate_memory(shape, 4, 1000, 64, weight_bytes=4)
    assert fp32.weights == 2 * base.weights and fp32.activations > base.activations


def test_flops_formula():
    shape = P.ModelShape.from_config(P.released_config())
    n_active = P.active_params_per_token(shape)
    # attention + one FFN per layer, plus the text head at every position
    assert n_active == 28 * (2 * 3072 * 3072 + 2 * 3072 * 1024 + 3 * 3072 * 8192) + 3072 * 128256
    # upstream's step: the text head at every position
    step = P.estimate_step(shape, 4, 1000, lora_r=0, gpu="h200", mfu=0.5, full_logits=True)
    forward = 4000 * (2 * n_active + 4 * 1000 * 28 * 24 * 128)
    assert step.flops == 3 * forward
    assert step.seconds == pytest.approx(step.flops / (989e12 * 0.5))
    with_ckpt = P.estimate_step(shape, 4, 1000, lora_r=0, checkpointing=True, mfu=0.5, full_logits=True)
    assert 0.8 * forward < with_ckpt.flops - step.flops < forward  # recompute = layers' forward, not the head
    # the step that runs (train.heads): the head on 3 labelled rows per sample instead of 1000
    head = 3072 * 128256
    labelled = P.estimate_step(shape, 4, 1000, lora_r=0, mfu=0.5)
    assert step.flops - labelled.flops == 3 * 2 * head * (4000 - 4 * P.TEXT_ROWS_PER_SAMPLE)
    # its LoRA on text_lm_head moves with the head, not with the positions
    adapted = P.estimate_step(shape, 4, 1000, lora_r=64, targets=["text_lm_head"], mfu=0.5)
    assert adapted.flops - labelled.flops == 3 * 2 * 64 * (3072 + 128256) * 4 * P.TEXT_ROWS_PER_SAMPLE
    # the measured H200 step (batch 4, 0.55 s) sits near the default MFU
    measured = P.estimate_step(shape, 4, 1070, 64, mfu=1.0, full_logits=True).flops / 0.55 / 989e12
    assert 0.5 * P.DEFAULT_MFU < measured < 2 * P.DEFAULT_MFU


def test_plan_warns_when_it_does_not_fit():
    config = P.released_config()
    ok = P.make_plan(config, 4, 1000, 64, gpus=8, gpu="h200", checkpointing=True)
    assert not ok.warnings
    too_big = P.make_plan(config, 4, 2600, 64, gpu="h100")
    assert too_big.warnings and "checkpointing" in too_big.warnings[0]
    hopeless = P.make_plan(config, 64, 4000, 64, gpu="h100", checkpointing=True)
    assert hopeless.warnings and "--batch_size" in hopeless.warnings[0]
    text = P.format_plan(ok)
    assert "5,938,221,056" in text and "166,937,600" in text
    active = P.active_params_per_token(ok.shape, 64) / 1e9
    assert f"{active:.2f} G active params/token" in text
    # the printed active parameters follow --lora_targets, as the step time does
    heads_only = P.make_plan(config, 4, 1000, 64, targets=["text_lm_head"])
    assert f"{P.active_params_per_token(ok.shape, 64, ['text_lm_head']) / 1e9:.2f} G active" in P.format_plan(
        heads_only
    )


def test_load_config_dict(tmp_path):
    from higgs_lora.defaults import BASE_MODEL

    assert P.load_config_dict(BASE_MODEL) == P.released_config()
    (tmp_path / "config.json").write_text(json.dumps({"x": 1}))
    assert P.load_config_dict(str(tmp_path)) == {"x": 1}
    with pytest.raises(FileNotFoundError, match="no config.json"):
        P.load_config_dict(str(tmp_path / ".."))
    with pytest.raises(FileNotFoundError):
        P.load_config_dict("nobody/not-a-model")
