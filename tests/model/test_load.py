"""Loading helpers: LoRA targets, PEFT without task_type, activation checkpointing, dtype choice."""

import logging

import pytest
import torch
import torch.utils.checkpoint

from higgs_lora.data.collator import batch_to_inputs, build_collator
from higgs_lora.model.load import (
    DEFAULT_LORA_TARGETS,
    apply_lora,
    count_parameters,
    decoder_layers,
    enable_activation_checkpointing,
    existing_targets,
    resolve_dtype,
)
from higgs_lora.train.loss import compute_loss

PER_LAYER = [
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    "mlp.gate_proj",
    "mlp.up_proj",
    "mlp.down_proj",
    "audio_mlp.gate_proj",
    "audio_mlp.up_proj",
    "audio_mlp.down_proj",
]
HEADS = ["audio_decoder_proj.text_lm_head", "audio_decoder_proj.audio_lm_head"]


@pytest.fixture(scope="module")
def inputs(tiny_dataset, tiny_config):
    return batch_to_inputs(build_collator(tiny_config)([tiny_dataset[0], tiny_dataset[1]]))


def _lora_modules(peft_model):
    prefix = "base_model.model."
    return {
        n[len(prefix) :] if n.startswith(prefix) else n for n, m in peft_model.named_modules() if hasattr(m, "lora_A")
    }


def test_default_targets_wrap_exactly_the_released_modules(tiny_model_factory):
    model = tiny_model_factory()
    n_layers = len(model.layers)
    peft_model = apply_lora(model, r=4, alpha=8, dropout=0.0)
    expected = {f"layers.{i}.{s}" for i in range(n_layers) for s in PER_LAYER} | set(HEADS)
    assert _lora_modules(peft_model) == expected
    config = peft_model.peft_config["default"]
    assert config.task_type is None
    assert (config.r, config.lora_alpha) == (4, 8)


def test_missing_targets_are_skipped_with_a_warning(tiny_model_factory, caplog):
    model = tiny_model_factory()
    with caplog.at_level(logging.WARNING, logger="higgs_lora.model.load"):
        peft_model = apply_lora(model, r=2, targets=["self_attn.q_proj", "audio_attn.q_proj", "audio_tower"])
    assert "audio_attn.q_proj" in caplog.text and "audio_tower" in caplog.text
    assert _lora_modules(peft_model) == {f"layers.{i}.self_attn.q_proj" for i in range(2)}


def test_no_existing_target_raises(tiny_model_factory):
    model = tiny_model_factory()
    with pytest.raises(ValueError, match="none of the LoRA targets"):
        apply_lora(model, targets=["audio_attn.q_proj", "nonexistent"])


def test_existing_targets_matches_whole_name_components(tiny_model_factory):
    model = tiny_model_factory()
    # "proj" is only a substring of module names, never a whole component
    with pytest.raises(ValueError):
        existing_targets(model, ["proj"])
    assert existing_targets(model, ["q_proj", "text_lm_head"]) == ["q_proj", "text_lm_head"]
    assert existing_targets(model, DEFAULT_LORA_TARGETS) == DEFAULT_LORA_TARGETS


def test_only_lora_weights_train(tiny_model_factory):
    model = tiny_model_factory()
    _, total_before = count_parameters(model)
    peft_model = apply_lora(model, r=4)
    trainable, total = count_parameters(peft_model)
    assert 0 < trainable < total
    lora_params = sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n)
    assert trainable == lora_params
    assert total == total_before + lora_params


def test_peft_forward_and_backward_on_a_collated_batch(tiny_model_factory, inputs):
    peft_model = apply_lora(tiny_model_factory(), r=4, dropout=0.0)
    peft_model.train()
    out = peft_model(**inputs)  # would fail with task_type=CAUSAL_LM (labels= kwarg)
    assert out.logits.shape[0] == 2
    assert out.audio_logits.shape == (inputs["label_audio_ids"].shape[1], 8, 1026)
    compute_loss(out, inputs["label_audio_ids"]).loss.backward()
    grads = {n: p.grad for n, p in peft_model.named_parameters() if p.requires_grad}
    # lora_B starts at zero, so lora_B receives the first non-zero gradients
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if "lora_B" in n)
    frozen = [p.grad for n, p in peft_model.named_parameters() if not p.requires_grad]
    assert all(g is None for g in frozen)


def _grads(model, inputs):
    model.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)
    out = model(**inputs)
    parts = compute_loss(out, inputs["label_audio_ids"])
    parts.loss.backward()
    return parts.loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_activation_checkpointing_gives_identical_gradients(tiny_model_factory, inputs, monkeypatch):
    plain = tiny_model_factory()
    ckpt = tiny_model_factory()
    keys_before = list(ckpt.state_dict())
    classes_before = [type(layer) for layer in ckpt.layers]

    assert enable_activation_checkpointing(ckpt) == len(ckpt.layers)

    calls = []
    real = torch.utils.checkpoint.checkpoint

    def counting(*args, **kwargs):
        calls.append(kwargs.get("use_reentrant"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", counting)

    loss_plain, g_plain = _grads(plain, inputs)
    assert calls == []  # the plain model never checkpoints
    loss_ckpt, g_ckpt = _grads(ckpt, inputs)
    assert calls == [False] * len(ckpt.layers)  # one non-reentrant checkpoint per layer

    torch.testing.assert_close(loss_ckpt, loss_plain)
    assert g_ckpt.keys() == g_plain.keys() and len(g_plain) > 0
    for name in g_plain:
        torch.testing.assert_close(g_ckpt[name], g_plain[name], rtol=1e-5, atol=1e-7, msg=name)

    # patched in place: same classes (DualFFN path kept), same state-dict keys
    assert [type(layer) for layer in ckpt.layers] == classes_before
    assert all(type(layer).__name__ == "HiggsAudioDualFFNDecoderLayer" for layer in ckpt.layers)
    assert list(ckpt.state_dict()) == keys_before

    # not in eval / no-grad
    calls.clear()
    ckpt.eval()
    with torch.no_grad():
        ckpt(**inputs)
    assert calls == []

    # idempotent: a second call does not nest checkpoints
    enable_activation_checkpointing(ckpt)
    calls.clear()
    _grads(ckpt, inputs)
    assert calls == [False] * len(ckpt.layers)


def test_checkpointing_the_first_k_of_n_layers_gives_identical_gradients(tiny_model_factory, inputs, monkeypatch):
    """The memory guard checkpoints only as many layers as the batch needs: the first k, the rest plain."""
    plain = apply_lora(tiny_model_factory(), r=4, dropout=0.0)
    partial = apply_lora(tiny_model_factory(), r=4, dropout=0.0)
    partial.load_state_dict(plain.state_dict())  # the same LoRA weights (a fresh B is zero: give both the same)
    torch.manual_seed(3)
    for (name, p), (_, q) in zip(plain.named_parameters(), partial.named_parameters()):
        if "lora_B" in name:
            with torch.no_grad():
                p.normal_(std=0.05)
                q.copy_(p)
    n = len(decoder_layers(partial))
    assert n >= 2
    k = n - 1
    assert enable_activation_checkpointing(partial, k) == k
    assert [getattr(layer, "_higgs_lora_checkpointed", False) for layer in decoder_layers(partial)] == [True] * k + [
        False
    ]

    calls = []
    real = torch.utils.checkpoint.checkpoint
    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    loss_plain, g_plain = _grads(plain, inputs)
    assert calls == []
    loss_partial, g_partial = _grads(partial, inputs)
    assert calls == [1] * k  # one checkpoint per checkpointed layer, none for the others

    torch.testing.assert_close(loss_partial, loss_plain)
    lora = [name for name in g_plain if "lora_" in name]
    assert lora and g_partial.keys() == g_plain.keys()
    assert any(g_plain[name].abs().sum() > 0 for name in lora if "layers.0." in name)  # the checkpointed layer learns
    for name in g_plain:
        torch.testing.assert_close(g_partial[name], g_plain[name], rtol=1e-5, atol=1e-7, msg=name)
    assert enable_activation_checkpointing(tiny_model_factory(), 0) == 0
    with pytest.raises(ValueError, match=f"cannot checkpoint {n + 1} of {n} decoder layers"):
        enable_activation_checkpointing(tiny_model_factory(), n + 1)


def test_activation_checkpointing_reaches_through_peft(tiny_model_factory, inputs, monkeypatch):
    peft_model = apply_lora(tiny_model_factory(), r=4, dropout=0.0)
    assert decoder_layers(peft_model) is peft_model.get_base_model().layers
    keys_before = list(peft_model.state_dict())
    assert enable_activation_checkpointing(peft_model) == 2
    assert list(peft_model.state_dict()) == keys_before

    calls = []
    real = torch.utils.checkpoint.checkpoint
    monkeypatch.setattr(torch.utils.checkpoint, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k))
    _, grads = _grads(peft_model, inputs)
    assert len(calls) == 2
    assert any("lora_B" in n and g.abs().sum() > 0 for n, g in grads.items())


@pytest.mark.parametrize(
    "dtype,device,expected",
    [
        ("auto", "cuda", torch.bfloat16),
        ("auto", "cuda:1", torch.bfloat16),
        ("auto", "cpu", torch.float32),
        ("bf16", "cpu", torch.bfloat16),
        ("fp16", "cuda", torch.float16),
        ("fp32", "cuda", torch.float32),
        ("float32", "cpu", torch.float32),
        (torch.float16, "cpu", torch.float16),
    ],
)
def test_resolve_dtype(dtype, device, expected):
    assert resolve_dtype(dtype, device) is expected


def test_auto_keeps_fp32_weights_and_uses_fp16_without_native_bf16(monkeypatch):
    # a merge saved in fp32 (so the adapter's update is not rounded) is served in fp32 on a GPU too
    assert resolve_dtype("auto", "cuda", stored="float32") is torch.float32
    assert resolve_dtype("auto", "cuda", stored="bfloat16") is torch.bfloat16
    assert resolve_dtype("auto", "cpu", stored="bfloat16") is torch.float32
    from higgs_lora.model import precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(precision, "_native_bf16", lambda: False)  # a V100 / T4
    assert resolve_dtype("auto", "cuda", stored="bfloat16") is torch.float16


def test_resolve_dtype_rejects_unknown_names():
    with pytest.raises(ValueError, match="int8"):
        resolve_dtype("int8", "cpu")


def test_load_model_puts_weights_in_the_requested_dtype():
    from higgs_lora.model.load import load_model

    model = load_model("tiny", device="cpu", dtype="bf16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert next(model.parameters()).device.type == "cpu"


# --- attention kernel ------------------------------------------------------------------------


def test_attention_choice_is_checked_before_anything_loads(monkeypatch):
    from transformers import utils as hf_utils

    from higgs_lora.model.load import check_attention

    assert check_attention("sdpa", "cpu") == "sdpa" and check_attention("eager", "cuda:0") == "eager"
    with pytest.raises(ValueError, match="use one of sdpa, flash_attention_2, eager"):
        check_attention("flash", "cuda")
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        check_attention("flash_attention_2", "cpu")
    monkeypatch.setattr(hf_utils, "is_flash_attn_2_available", lambda: False)
    with pytest.raises(ValueError, match="flash-attn package is not installed"):
        check_attention("flash_attention_2", "cuda:1")
    monkeypatch.setattr(hf_utils, "is_flash_attn_2_available", lambda: True)
    assert check_attention("flash_attention_2", "cuda:1") == "flash_attention_2"


@pytest.mark.parametrize("choice, layer", [(None, "LlamaSdpaAttention"), ("eager", "LlamaAttention")])
def test_load_model_builds_the_chosen_attention(choice, layer):
    from higgs_lora.model.load import load_model

    model = load_model("tiny", device="cpu", dtype="fp32", attn_implementation=choice)
    assert {type(x.self_attn).__name__ for x in model.layers} == {layer}
