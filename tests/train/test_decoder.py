"""The training forward on the host-laid-out batch: upstream's loss and gradients, and no device→host sync."""

import pytest
import torch
from cuda_autocast import cuda_autocast_fp32_ops

from higgs_lora.bench.counters import OpCounters
from higgs_lora.data.collator import DictCollator, build_collator
from higgs_lora.data.dataset import VoiceCloningDataset
from higgs_lora.model.load import apply_lora, enable_activation_checkpointing
from higgs_lora.train import decoder, heads, layout
from higgs_lora.train.loss import compute_loss

SIZES = [2, 1, 3]  # right padding (mask dropped under SDPA), left padding (mask kept), uneven lengths


@pytest.fixture(scope="module")
def dataset(sample_samples, tiny_tokenizer, tiny_codec):
    return VoiceCloningDataset(sample_samples[:3], tiny_tokenizer, tiny_codec)


def _batch(dataset, config, n):
    return DictCollator(build_collator(config))([dataset[i] for i in range(n)])


def _lora_model(tiny_model_factory, checkpointing=False):
    torch.manual_seed(0)  # the same LoRA init for every model built here
    model = apply_lora(tiny_model_factory(), 8, 16, 0.0)
    for name, p in model.named_parameters():
        if "lora_B" in name:  # a fresh adapter is the identity; make it matter
            torch.nn.init.normal_(p, std=0.05)
    heads.install(model)  # installs the routed DualFFN forward too
    if checkpointing:
        enable_activation_checkpointing(model)
    return model.train()


def _step(model, inputs):
    model.zero_grad()
    out = model(**inputs)
    loss = compute_loss(out, inputs["label_audio_ids"]).loss
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("n", SIZES)
def test_loss_and_gradients_equal_upstreams_forward(tiny_model_factory, dataset, n):
    model = _lora_model(tiny_model_factory)
    batch = _batch(dataset, model.config, n)
    upstream = heads.labelled_inputs(batch)  # no config: boson's forward computes the hidden states
    ours = heads.labelled_inputs(batch, model.config)
    assert layout.KEY in ours and layout.KEY not in upstream
    ref_loss, ref_grads = _step(model, upstream)
    loss, grads = _step(model, ours)
    assert loss == pytest.approx(ref_loss, abs=1e-6)
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], atol=1e-6, rtol=1e-5, msg=name)
    assert any("audio_mlp" in n and g.abs().sum() > 0 for n, g in grads.items())  # the audio rows trained


def test_a_training_step_has_no_device_to_host_sync(tiny_model_factory, dataset):
    model = _lora_model(tiny_model_factory)
    batch = _batch(dataset, model.config, 2)
    counted = {}
    for name, inputs in (
        ("upstream", heads.labelled_inputs(batch)),
        ("ours", heads.labelled_inputs(batch, model.config)),
    ):
        with OpCounters(model.config.text_config.vocab_size) as counters:
            compute_loss(model(**inputs), inputs["label_audio_ids"]).loss.backward()
        counted[name] = counters.report()["syncs"]
    assert counted["upstream"].get("model", 0) > 2 * len(model.get_base_model().layers)  # the counter sees them
    assert counted["ours"] == {}


def test_sdpa_gets_no_mask_where_causal_attention_is_exact(tiny_model_factory, dataset):
    base = tiny_model_factory()
    assert base.config._attn_implementation == "sdpa"  # what load_model gives train
    decoder.install(base)

    def mask_for(n):
        lay = layout.merged_layout(_batch(dataset, base.config, n), base.config)
        hidden = torch.zeros(*lay["source"].shape, base.config.hidden_size)
        return decoder._causal_mask(base, lay, hidden, torch.arange(hidden.shape[1])), lay

    right, lay2 = mask_for(2)
    assert right is None and not lay2["mask_all_ones"]  # padded on the right: plain causal (flash-eligible)
    left, lay1 = mask_for(1)
    if not lay1["mask_all_ones"]:  # padded on the left: the pads before the text must stay masked
        assert left is not None and left.dim() == 4
    base.config._attn_implementation = "eager"  # eager attention applies no causal mask of its own
    try:
        eager, _ = mask_for(2)
    finally:
        base.config._attn_implementation = "sdpa"
    assert eager is not None and eager.dim() == 4


def test_checkpointing_recomputes_the_routed_forward(tiny_model_factory, dataset, monkeypatch):
    calls = []
    original = decoder.routed_forward

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(decoder, "routed_forward", counting)
    plain = _lora_model(tiny_model_factory)
    checkpointed = _lora_model(tiny_model_factory, checkpointing=True)
    inputs = heads.labelled_inputs(_batch(dataset, plain.config, 2), plain.config)
    layers = len(plain.get_base_model().layers)
    ref_loss, ref_grads = _step(plain, inputs)
    assert len(calls) == layers
    calls.clear()
    loss, grads = _step(checkpointed, inputs)
    assert len(calls) == 2 * layers  # forward, then the recomputation in backward: the same routed code
    assert loss == pytest.approx(ref_loss, abs=1e-6)
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], atol=1e-6, rtol=1e-5, msg=name)


def test_install_refuses_layers_already_checkpointed(tiny_model_factory):
    model = tiny_model_factory()
    enable_activation_checkpointing(model)
    with pytest.raises(RuntimeError, match="before activation checkpointing"):
        decoder.install(model)


def test_the_merged_stream_keeps_the_weights_dtype_under_cuda_autocast(dataset):
    """CUDA autocast sums the code embeddings in fp32: the gather must not promote the residual stream."""
    from boson_multimodal.model.higgs_audio import HiggsAudioModel

    from higgs_lora.model.tiny import ensure_tiny_model

    base = HiggsAudioModel.from_pretrained(str(ensure_tiny_model()), torch_dtype=torch.bfloat16)  # boson's, unpatched
    decoder.install(base)
    batch = _batch(dataset, base.config, 2)
    lay = layout.merged_layout(batch, base.config)
    with torch.no_grad(), cuda_autocast_fp32_ops(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert base._embed_audio_ids(batch["audio_out_ids"]).dtype == torch.float32  # what CUDA does
        merged = decoder.merged_embeddings(base, lay, batch["input_ids"], None, batch["audio_out_ids"])
        hidden = decoder.hidden_states(base, lay, **batch)
    assert merged.dtype == hidden.dtype == torch.bfloat16


class _Wrapper(torch.nn.Module):
    """What FSDP's auto-wrap leaves in the layer list: a module that forwards to the layer it wraps."""

    def __init__(self, layer):
        super().__init__()
        self._fsdp_wrapped_module = layer

    def forward(self, *args, **kwargs):
        return self._fsdp_wrapped_module(*args, **kwargs)


def test_wrapped_layers_keep_their_audio_path(tiny_model_factory, dataset):
    model = _lora_model(tiny_model_factory)
    inputs = heads.labelled_inputs(_batch(dataset, model.config, 2), model.config)
    ref_loss, ref_grads = _step(model, inputs)
    base = model.get_base_model()
    base.layers = torch.nn.ModuleList(_Wrapper(layer) for layer in base.layers)
    loss, grads = _step(model, inputs)
    assert loss == pytest.approx(ref_loss, abs=1e-6)
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name.replace("._fsdp_wrapped_module", "")], atol=1e-6, rtol=1e-5)
