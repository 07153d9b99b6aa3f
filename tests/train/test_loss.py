"""The shifted text + per-codebook audio loss, against an independent computation and toy cases."""

from types import SimpleNamespace

import pytest
import torch

from higgs_lora.data.collator import batch_to_inputs, build_collator
from higgs_lora.train.loss import audio_losses, compute_loss, text_loss


@pytest.fixture(scope="module")
def forward(tiny_model_factory, tiny_dataset, tiny_config):
    """(model outputs, collated inputs) for a two-sample batch through the tiny model, with grad."""
    model = tiny_model_factory()
    model.train()
    inputs = batch_to_inputs(build_collator(tiny_config)([tiny_dataset[0], tiny_dataset[1]]))
    torch.manual_seed(0)
    return model(**inputs), inputs


def _manual(out, label_audio_ids):
    """Reference computation written out longhand: next-token CE, pooled over real targets."""
    logits, labels = out.logits.detach().float(), out.expanded_labels
    text_sum, text_n = 0.0, 0
    for b in range(logits.shape[0]):
        for t in range(logits.shape[1] - 1):
            target = int(labels[b, t + 1])
            if target != -100:
                text_sum += float(-torch.log_softmax(logits[b, t], -1)[target])
                text_n += 1
    audio = out.audio_logits.detach().float()
    per_cb, audio_sum, audio_n = [], 0.0, 0
    for c in range(label_audio_ids.shape[0]):
        s, n = 0.0, 0
        for k in range(audio.shape[0] - 1):
            target = int(label_audio_ids[c, k + 1])
            if target != -100:
                s += float(-torch.log_softmax(audio[k, c], -1)[target])
                n += 1
        per_cb.append(s / n)
        audio_sum, audio_n = audio_sum + s, audio_n + n
    return text_sum / text_n, text_n, audio_sum / audio_n, audio_n, per_cb


def test_shifted_loss_equals_a_manual_next_token_cross_entropy(forward):
    out, inputs = forward
    lab = inputs["label_audio_ids"]
    parts = compute_loss(out, lab)
    text, n_text, audio, n_audio, per_cb = _manual(out, lab)

    assert parts.text_loss.item() == pytest.approx(text, rel=1e-5)
    assert parts.audio_loss.item() == pytest.approx(audio, rel=1e-5)
    assert parts.loss.item() == pytest.approx(text + audio, rel=1e-5)
    assert parts.codebook_losses.shape == (8,)
    assert parts.codebook_losses.tolist() == pytest.approx(per_cb, rel=1e-5)
    assert (parts.text_tokens, parts.audio_tokens) == (n_text, n_audio)
    assert parts.loss.requires_grad and not parts.text_loss.requires_grad


def test_label_counts(forward, tiny_dataset, sample_samples):
    out, inputs = forward
    lab = inputs["label_audio_ids"]
    parts = compute_loss(out, lab)
    # three text targets per sample: <|audio_out_bos|>, <|audio_eos|>, <|eot_id|>
    assert parts.text_tokens == 3 * 2 == int((out.expanded_labels[:, 1:] != -100).sum())
    assert parts.audio_tokens == int((lab[:, 1:] != -100).sum())
    # the shift loses nothing: every target code plus one EOS per codebook of each target clip
    frames = sum(tiny_dataset.codes(s.target_audio).shape[1] for s in sample_samples[:2])
    assert parts.audio_tokens == int((lab != -100).sum()) == 8 * (frames + 2)


def test_unshifted_loss_is_a_different_number(forward):
    out, inputs = forward
    shifted = compute_loss(out, inputs["label_audio_ids"])
    unshifted = compute_loss(out, inputs["label_audio_ids"], shift=False)
    assert abs(unshifted.text_loss.item() - shifted.text_loss.item()) > 1e-3
    assert abs(unshifted.audio_loss.item() - shifted.audio_loss.item()) > 1e-3


def test_weights_scale_the_parts(forward):
    out, inputs = forward
    lab = inputs["label_audio_ids"]
    base = compute_loss(out, lab)
    weighted = compute_loss(out, lab, text_weight=2.0, audio_weight=0.25)
    assert weighted.text_loss.item() == pytest.approx(base.text_loss.item())
    assert weighted.audio_loss.item() == pytest.approx(base.audio_loss.item())
    assert weighted.loss.item() == pytest.approx(2.0 * base.text_loss.item() + 0.25 * base.audio_loss.item(), rel=1e-6)
    assert compute_loss(out, lab, text_weight=0.0).loss.item() == pytest.approx(base.audio_loss.item(), rel=1e-6)
    assert compute_loss(out, lab, audio_weight=0.0).loss.item() == pytest.approx(base.text_loss.item(), rel=1e-6)


def test_loss_backpropagates_into_both_heads(tiny_model_factory, tiny_dataset, tiny_config):
    model = tiny_model_factory()
    model.train()
    inputs = batch_to_inputs(build_collator(tiny_config)([tiny_dataset[0]]))
    compute_loss(model(**inputs), inputs["label_audio_ids"]).loss.backward()
    heads = model.audio_decoder_proj
    assert heads.text_lm_head.weight.grad.abs().sum() > 0
    assert heads.audio_lm_head.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------- toy cases

BIG = 50.0


def _toy():
    """Logits that predict the NEXT label perfectly: row t peaks at labels[t + 1]."""
    vocab, labels = 10, torch.tensor([[-100, -100, 3, 7, 7, 1, -100]])
    logits = torch.zeros(1, labels.shape[1], vocab)
    for t in range(labels.shape[1] - 1):
        if labels[0, t + 1] != -100:
            logits[0, t, labels[0, t + 1]] = BIG
    n_cb, codes = (
        3,
        torch.tensor([[-100, 5, 9, 1025, -100, -100], [-100, -100, 4, 4, 1025, -100], [-100, -100, -100, 0, 8, 1025]]),
    )
    audio_logits = torch.zeros(codes.shape[1], n_cb, 1026)
    for k in range(codes.shape[1] - 1):
        for c in range(n_cb):
            if codes[c, k + 1] != -100:
                audio_logits[k, c, codes[c, k + 1]] = BIG
    out = SimpleNamespace(
        logits=logits.requires_grad_(), expanded_labels=labels, audio_logits=audio_logits.requires_grad_()
    )
    return out, codes


def test_toy_perfect_next_token_logits_give_zero_shifted_loss():
    out, codes = _toy()
    parts = compute_loss(out, codes)
    assert parts.text_loss.item() < 1e-6
    assert parts.audio_loss.item() < 1e-6
    assert parts.codebook_losses.tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)
    assert (parts.text_tokens, parts.audio_tokens) == (4, 9)


def test_toy_unshifted_loss_punishes_the_same_logits():
    out, codes = _toy()
    parts = compute_loss(out, codes, shift=False)
    assert parts.text_loss.item() > 10
    assert parts.audio_loss.item() > 10


def test_no_targets_gives_a_zero_loss_that_still_backpropagates():
    out, codes = _toy()
    loss, n = text_loss(out.logits, torch.full_like(out.expanded_labels, -100))
    assert n == 0 and loss.item() == 0.0
    pooled, per_cb, count = audio_losses(out.audio_logits, torch.full_like(codes, -100))
    assert count == 0 and pooled.item() == 0.0 and per_cb.tolist() == [0.0, 0.0, 0.0]
    (loss + pooled).backward()  # graph intact (DDP needs every parameter in it)
    assert out.logits.grad is not None and out.audio_logits.grad is not None


def test_audio_losses_without_audio_and_with_mismatched_rows():
    labels = torch.full((8, 0), -100)
    pooled, per_cb, count = audio_losses(None, labels)
    assert count == 0 and pooled.item() == 0.0 and per_cb.shape == (8,)
    with pytest.raises(ValueError, match="audio logits rows"):
        audio_losses(torch.zeros(5, 8, 1026), torch.zeros(8, 6, dtype=torch.long))


def test_audio_loss_pools_over_targets_not_codebooks():
    """Codebooks with more targets weigh more: the pooled loss is a mean over (codebook, column) targets."""
    logits = torch.zeros(4, 2, 1026)
    logits[:, 0, 7] = BIG  # codebook 0 always right, codebook 1 always wrong
    logits[:, 1, 7] = BIG
    labels = torch.tensor([[-100, 7, 7, 7], [-100, 3, -100, -100]])
    pooled, per_cb, count = audio_losses(logits, labels)
    assert count == 4
    assert per_cb[0].item() == pytest.approx(0.0, abs=1e-6)
    assert per_cb[1].item() == pytest.approx(BIG, rel=1e-3)
    assert pooled.item() == pytest.approx(per_cb[1].item() / 4, rel=1e-5)


# --- consistency loss ------------------------------------------------------------------------


def test_consistency_loss_is_the_kl_from_the_base_on_target_frames_only(forward):
    from higgs_lora.train.loss import consistency_loss

    out, inputs = forward
    lab = inputs["label_audio_ids"]
    adapted = out.audio_logits.detach()
    torch.manual_seed(1)
    base = adapted + torch.randn_like(adapted)
    got = consistency_loss(adapted, base, lab)
    # longhand: KL(base || adapted) per (row k, codebook c) whose next column is a target
    total, n = 0.0, 0
    for k in range(adapted.shape[0] - 1):
        for c in range(lab.shape[0]):
            if int(lab[c, k + 1]) != -100:
                q, p = torch.log_softmax(base[k, c], -1), torch.log_softmax(adapted[k, c], -1)
                total += float((q.exp() * (q - p)).sum())
                n += 1
    assert n > 0 and float(got) == pytest.approx(total / n, rel=1e-4)
    assert float(consistency_loss(adapted, adapted, lab)) == pytest.approx(0.0, abs=1e-6)
    # non-target rows (the reference clip) do not count: changing them changes nothing
    masked_rows = [k for k in range(adapted.shape[0] - 1) if (lab[:, k + 1] == -100).all()]
    assert masked_rows
    moved = base.clone()
    moved[masked_rows] += 5.0 * torch.randn_like(moved[masked_rows])
    assert float(consistency_loss(adapted, moved, lab)) == pytest.approx(float(got), rel=1e-6)


def test_text_only_batch_keeps_the_audio_head_in_the_graph(tiny_model_factory, tiny_tokenizer, tiny_config):
    """A rank whose batch has no audio must still give every LoRA parameter a gradient, or DDP hangs."""
    from higgs_lora.data.collator import make_chatml_sample
    from higgs_lora.model.load import apply_lora

    model = apply_lora(tiny_model_factory(), 4, 8, 0.0)
    ids = tiny_tokenizer.encode("text only, no audio at all", add_special_tokens=False)
    inputs = batch_to_inputs(build_collator(tiny_config)([make_chatml_sample(ids, [-100] * 3 + ids[3:], [])] * 2))
    out = model(**inputs)
    assert out.audio_logits.shape[0] == 0
    parts = compute_loss(out, inputs["label_audio_ids"])
    assert float(parts.audio_loss) == 0.0 and int(parts.audio_tokens) == 0 and float(parts.text_loss) > 0
    parts.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
