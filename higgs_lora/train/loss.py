"""The shifted text + per-codebook audio loss.

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

IGNORE = -100


@dataclass
class LossParts:
    loss: torch.Tensor
    text_loss: torch.Tensor
    audio_loss: torch.Tensor
    codebook_losses: torch.Tensor  # (num_codebooks,)
    text_tokens: int
    audio_tokens: int


def _masked_ce(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    n = int((labels != IGNORE).sum())
    if n == 0:
        return logits.sum() * 0.0, 0  # keeps the graph (and DDP's gradient sync) intact
    return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE, reduction="sum") / n, n


def text_loss(logits: torch.Tensor, labels: torch.Tensor, shift: bool = True) -> tuple[torch.Tensor, int]:
    if shift:
        logits, labels = logits[:, :-1], labels[:, 1:]
    return _masked_ce(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1).to(logits.device))


def audio_losses(audio_logits: torch.Tensor, label_audio_ids: torch.Tensor, shift: bool = True):
    """Per-codebook mean CE and the pooled mean over all (codebook, column) targets."""
    num_codebooks = label_audio_ids.shape[0]
    if audio_logits is None or audio_logits.shape[0] == 0:
        zero = torch.zeros((), device=label_audio_ids.device)
        return zero, torch.zeros(num_codebooks), 0
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
        count += n_c
    pooled = total / count if count else total
    return pooled, torch.stack(per_codebook).float().cpu(), count


def compute_loss(outputs, label_audio_ids: torch.Tensor, text_weight: float = 1.0, audio_weight: float = 1.0,
                 shift: bool = True) -> LossParts:
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
