"""The shifted text + per-codebook audio loss, and the optional consistency loss (KL to the base model).

HiggsAudioModel.forward computes no loss and hands back labels *unshifted*:
- text: `logits[:, t]` predicts `expanded_labels[:, t + 1]`;
- audio: `audio_logits[k]` (one row per audio-out column, all segments of the batch in order)
  predicts column k + 1 of `label_audio_ids`. Shifting globally across concatenated segments is
  safe because the first label column of every segment is -100 (the stream-BOS column).
Without the shift the model learns to copy its input: near-zero loss and silent output.
The stream EOS column stays a target, so the model learns to stop; the reference clip's
columns are -100 (masked by the collator because its turn lies before `start_index`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..constants import IGNORE_INDEX

IGNORE = IGNORE_INDEX  # the name checks/parity.py imports


@dataclass
class LossParts:
    loss: torch.Tensor
    text_loss: torch.Tensor
    audio_loss: torch.Tensor
    codebook_losses: torch.Tensor  # (num_codebooks,), detached, on the logits' device
    text_tokens: torch.Tensor  # 0-d counts, on the device: reading them is the caller's sync
    audio_tokens: torch.Tensor


# Everything below stays on the device: no int()/float()/.cpu() per micro-step, so a GPU never waits
# for the host between logs. Empty targets give 0 through a still-connected graph (sum-CE of nothing
# is 0, and `logits.sum() * 0` is added), which keeps DDP's gradient sync intact. On the training path
# the logits are the gathered labelled rows (`heads`), so that sum is over K×V, never B×T×V.
def _masked_ce(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n = (labels != IGNORE).sum()
    total = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE, reduction="sum") + logits.sum() * 0.0
    return total / n.clamp(min=1), n


def text_loss(logits: torch.Tensor, labels: torch.Tensor, shift: bool = True) -> tuple[torch.Tensor, int]:
    if shift:
        logits, labels = logits[:, :-1], labels[:, 1:]
    return _masked_ce(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1).to(logits.device))


def audio_losses(audio_logits: torch.Tensor, label_audio_ids: torch.Tensor, shift: bool = True):
    """Per-codebook mean CE and the pooled mean over all (codebook, column) targets."""
    if audio_logits is None or audio_logits.shape[0] == 0:
        # A text-only batch: no audio rows, but the audio head still ran (on nothing); `sum() * 0` keeps
        # its parameters in the graph, or DDP would wait forever for their gradients on this rank.
        num_codebooks = audio_logits.shape[1] if audio_logits is not None else label_audio_ids.shape[0]
        zero = audio_logits.sum() * 0.0 if audio_logits is not None else torch.zeros((), device=label_audio_ids.device)
        return (
            zero,
            torch.zeros(num_codebooks, device=zero.device),
            torch.zeros((), dtype=torch.long, device=zero.device),
        )
    num_codebooks = label_audio_ids.shape[0]
    if audio_logits.shape[0] != label_audio_ids.shape[1]:
        raise ValueError(f"{audio_logits.shape[0]} audio logits rows for {label_audio_ids.shape[1]} label columns")
    labels = label_audio_ids.to(audio_logits.device)
    if shift:
        audio_logits, labels = audio_logits[:-1], labels[:, 1:]
    per_codebook, total, count = [], audio_logits.sum() * 0.0, 0
    for c in range(num_codebooks):
        loss_c, n_c = _masked_ce(audio_logits[:, c], labels[c])
        per_codebook.append(loss_c.detach())
        total = total + loss_c * n_c
        count = count + n_c
    pooled = total / count.clamp(min=1)
    return pooled, torch.stack(per_codebook).float(), count


def compute_loss(
    outputs, label_audio_ids: torch.Tensor, text_weight: float = 1.0, audio_weight: float = 1.0, shift: bool = True
) -> LossParts:
    """The loss from either output: `heads.LabelledLogits` (training: rows already aligned with their
    targets) or upstream's full logits (B×T×V text, every audio-out column; the reference path)."""
    from .heads import LabelledLogits

    if isinstance(outputs, LabelledLogits):
        if not shift:
            raise ValueError("labelled logits are already aligned with their targets; shift=False needs full logits")
        t_loss, n_text = _masked_ce(outputs.text_logits, outputs.text_labels)
        a_loss, per_cb, n_audio = audio_losses(outputs.audio_logits, outputs.audio_labels, shift=False)
    else:
        t_loss, n_text = text_loss(outputs.logits, outputs.expanded_labels, shift)
        a_loss, per_cb, n_audio = audio_losses(outputs.audio_logits, label_audio_ids, shift)
    return LossParts(
        loss=text_weight * t_loss + audio_weight * a_loss,
        text_loss=t_loss.detach(),
        audio_loss=a_loss.detach(),
        codebook_losses=per_cb,
        text_tokens=n_text,
        audio_tokens=n_audio,
    )


def consistency_loss(
    audio_logits: torch.Tensor | None,
    base_audio_logits: torch.Tensor | None,
    label_audio_ids: torch.Tensor,
    shift: bool = True,
) -> torch.Tensor:
    """KL(base || adapted) of the audio distributions, averaged over the target (codebook, frame) positions.

    The design's "voice similarity preservation": it pulls the fine-tune back towards what the base
    model predicts at the same positions (its zero-shot cloning). `base_audio_logits` come from the
    same batch with the adapter disabled and no grad. Costs one extra forward (no backward) per
    micro-batch. Exactly 0 while the adapter is the identity (fresh LoRA: B = 0).
    """
    if audio_logits is None or audio_logits.shape[0] == 0:
        return torch.zeros((), device=label_audio_ids.device)
    if base_audio_logits is None or base_audio_logits.shape != audio_logits.shape:
        raise ValueError("the base model's audio logits must have the adapted model's shape")
    labels = label_audio_ids.to(audio_logits.device)
    if shift:
        audio_logits, base_audio_logits, labels = audio_logits[:-1], base_audio_logits[:-1], labels[:, 1:]
    log_p = F.log_softmax(audio_logits.float(), dim=-1)  # (N, C, V), adapted
    log_q = F.log_softmax(base_audio_logits.detach().float(), dim=-1)  # base, the reference distribution
    kl = (log_q.exp() * (log_q - log_p)).sum(-1)  # (N, C)
    mask = (labels != IGNORE).T.to(kl.dtype)  # (N, C)
    return (kl * mask).sum() / mask.sum().clamp(min=1) + audio_logits.sum() * 0.0
