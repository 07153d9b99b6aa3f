"""The training step's heads run only where a label is, and give today's full-logits loss."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from higgs_lora.data.collator import DictCollator, build_collator
from higgs_lora.model.load import apply_lora
from higgs_lora.train import heads
from higgs_lora.train.loss import compute_loss


def reference_loss(model, batch):
    """Today's loss, written out independently: upstream's full forward, shifted CE over B×T×V and every audio column."""
    out = model(**batch)
    logits, labels = out.logits[:, :-1].float(), out.expanded_labels[:, 1:]
    text = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
    audio_logits, audio_labels = out.audio_logits[:-1].float(), batch["label_audio_ids"][:, 1:]
    ce = F.cross_entropy(audio_logits.permute(1, 2, 0), audio_labels, ignore_index=-100, reduction="sum")
    return text + ce / (audio_labels != -100).sum()


def _lora_model(tiny_model_factory):
    model = apply_lora(tiny_model_factory(), 8, 16, 0.0)  # default targets: both heads adapted too
    torch.manual_seed(0)
    for name, p in model.named_parameters():
        if "lora_B" in name:  # a fresh adapter is the identity; make it matter
            torch.nn.init.normal_(p, std=0.05)
    return model


@pytest.fixture(scope="module")
def batch(tiny_dataset, tiny_config):
    return DictCollator(build_collator(tiny_config))([tiny_dataset[0], tiny_dataset[1]])


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_labelled_loss_and_gradients_equal_the_full_logits_reference(tiny_model_factory, batch):
    model = _lora_model(tiny_model_factory)
    model.train()
    ref = reference_loss(model, batch)
    ref.backward()
    ref_grads = _grads(model)
    model.zero_grad()
    heads.install(model)
    out = model(**heads.labelled_inputs(batch))
    assert isinstance(out, heads.LabelledLogits)
    assert out.text_logits.shape[0] == 6  # three text targets per sample, nothing else
    loss = compute_loss(out, batch["label_audio_ids"]).loss
    assert loss.item() == pytest.approx(ref.item(), abs=1e-4)
    loss.backward()
    for name, g in _grads(model).items():
        torch.testing.assert_close(g, ref_grads[name], atol=1e-5, rtol=1e-4, msg=name)
    assert any("text_lm_head" in n and g.abs().sum() > 0 for n, g in _grads(model).items())


def test_without_the_counts_the_forward_is_upstreams(tiny_model_factory, batch):
    model = _lora_model(tiny_model_factory)
    heads.install(model)
    with torch.no_grad():
        out = model(**batch)
    assert out.logits.shape[-1] == model.config.text_config.vocab_size and out.logits.dim() == 3


class _LargestFloat(TorchDispatchMode):
    """The largest floating tensor any op makes whose last dimension is `last` (a vocabulary)."""

    def __init__(self, last):
        super().__init__()
        self.last, self.largest = last, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dim() and t.shape[-1] == self.last:
                self.largest = max(self.largest, t.numel())
        return out


def test_no_tensor_of_batch_by_positions_by_vocabulary(tiny_model_factory, batch):
    model = _lora_model(tiny_model_factory)
    heads.install(model)
    inputs = heads.labelled_inputs(batch)
    vocab, codes = model.config.text_config.vocab_size, model.config.audio_codebook_size + 2
    with _LargestFloat(vocab) as text_full, _LargestFloat(codes) as audio_full:
        compute_loss(model(**batch), batch["label_audio_ids"]).loss.backward()
    with _LargestFloat(vocab) as text, _LargestFloat(codes) as audio:
        compute_loss(model(**inputs), batch["label_audio_ids"]).loss.backward()
    assert text_full.largest >= batch["input_ids"].numel() * vocab  # today: B×T×V (T expanded by the audio)
    # the six labelled rows' logits; the largest is the head's own (V, H) weight gradient
    assert text.largest == model.config.hidden_size * vocab < text_full.largest / 10
    columns = batch["label_audio_ids"].shape[1]
    assert audio_full.largest >= columns * 8 * codes
    assert audio.largest == len(inputs[heads.AUDIO_COLUMNS]) * 8 * codes < audio_full.largest


def test_labelled_inputs_come_from_the_host_batch(batch):
    inputs = heads.labelled_inputs(batch)
    assert int(inputs[heads.TEXT_COUNT]) == int((batch["label_ids"][:, 1:] != -100).sum()) == 6
    cols = inputs[heads.AUDIO_COLUMNS]
    assert bool((batch["label_audio_ids"][:, cols + 1] != -100).any(0).all())
    assert len(cols) == int((batch["label_audio_ids"][:, 1:] != -100).any(0).sum())


def test_consistency_loss_on_labelled_columns_equals_the_full_one(tiny_model_factory, batch):
    from higgs_lora.train.loss import consistency_loss

    model = _lora_model(tiny_model_factory)
    with torch.no_grad():
        full = model(**batch)
        with model.disable_adapter():
            base_full = model(**batch)
        heads.install(model)
        inputs = heads.labelled_inputs(batch)
        out = model(**inputs)
        with model.disable_adapter():
            base = model(**inputs)
    reference = consistency_loss(full.audio_logits, base_full.audio_logits, batch["label_audio_ids"])
    gathered = consistency_loss(out.audio_logits, base.audio_logits, out.audio_labels, shift=False)
    assert reference.item() > 1e-4  # the adapter moved the distribution
    assert gathered.item() == pytest.approx(reference.item(), abs=1e-5)
