"""Text and audio heads applied only where a label is: the training step's logits are K×V, not B×T×V.

Upstream's `HiggsAudioModel.forward` applies the text head to every position (B×T×128,256: 0.4 % of
them carry a text label, three per sample) and the audio head to every audio-out column. Training
runs the model for its final hidden states instead, and applies the heads (their LoRA adapters
included: they are the same modules) to the gathered labelled rows:
- text: the rows t whose next label `expanded_labels[:, t + 1]` is a target (the shifted loss);
- audio: the audio-out columns k whose next column `label_audio_ids[:, k + 1]` has a target.

No device→host sync: the collator (on the host) counts the text targets and lists the labelled
audio columns (`labelled_inputs`); the device picks the K target rows with a stable sort of the
target mask, whose length is then known without reading anything back. Given the model config,
`labelled_inputs` also lays out the merged sequence (`train.layout`), and the hidden states then come
from `train.decoder` (no sync in the merge or the DualFFN layers) instead of upstream's forward.
Boson's files are untouched: the heads are skipped on the model instance (as `model.precision` casts
the audio embeddings), only while a batch carries these counts; every other caller gets upstream's
forward.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput

from ..constants import IGNORE_INDEX
from ..model.peft_base import base_model
from . import decoder, layout

IGNORE = IGNORE_INDEX
TEXT_COUNT = "text_label_count"
AUDIO_COLUMNS = "audio_label_columns"
KEYS = (TEXT_COUNT, AUDIO_COLUMNS)


@dataclass
class LabelledLogits(ModelOutput):
    """The heads' outputs at labelled rows only, already aligned with their targets (no shift left to do).

    text_logits (K, V) predict text_labels (K,); audio_logits (N, C, V) predict audio_labels (C, N).
    """

    text_logits: torch.Tensor | None = None
    text_labels: torch.Tensor | None = None
    audio_logits: torch.Tensor | None = None
    audio_labels: torch.Tensor | None = None


def labelled_inputs(inputs: dict, config=None) -> dict:
    """Add the host-side label facts the device needs to gather without syncing (the collator calls it).

    With the model `config` (and a config `train.layout` supports), also the merged layout.
    """
    labels = inputs.get("label_ids")
    audio = inputs.get("label_audio_ids")
    # Every target of the expanded sequence is a text label of label_ids (audio placeholders expand to
    # -100), and position 0 is never a target of the shifted loss.
    count = int((labels[:, 1:] != IGNORE).sum()) if labels is not None else 0
    if audio is not None and audio.shape[-1] > 1:
        columns = torch.nonzero((audio[:, 1:] != IGNORE).any(0)).flatten()
    else:
        columns = torch.zeros(0, dtype=torch.long)
    # The count stays a Python int: Trainer moves tensors to the GPU, and reading one back would be a sync.
    out = inputs | {TEXT_COUNT: count, AUDIO_COLUMNS: columns}
    if config is not None and layout.supported(config):
        out[layout.KEY] = layout.merged_layout(inputs, config)
    return out


class LabelledCollator:
    """The training collator: the shared one (as inference builds it) plus `labelled_inputs`."""

    def __init__(self, collator, config=None):
        self.collator = collator
        self.config = config

    def __call__(self, samples):
        return labelled_inputs(self.collator(samples), self.config)


def _first_true(mask: torch.Tensor, count: int) -> torch.Tensor:
    """Flat indices of the first `count` True entries of `mask`, in order, without a host sync."""
    return torch.argsort(mask.flatten().to(torch.uint8), descending=True, stable=True)[:count]


def supported(config) -> bool:
    """A projector with its own layers needs upstream's path (the released model has none)."""
    return not config.audio_decoder_proj_num_layers


def install(model) -> None:
    """Let the model's forward take `text_label_count`/`audio_label_columns` and return `LabelledLogits` (idempotent)."""
    base = base_model(model)
    if getattr(base, "_higgs_lora_labelled_heads", False):
        return
    if not supported(base.config):
        return
    proj = base.audio_decoder_proj
    original_forward, original_proj = base.forward, proj.forward

    def hidden_only(hidden_states, audio_out_mask, *args, **kwargs):
        # The heads are applied by the caller at the labelled rows; `logits` carries the normed hidden states.
        return hidden_states, None, None, None, None, None

    @functools.wraps(original_forward)  # `merged_layout` is the batch key `layout.KEY`
    def forward(*args, text_label_count=None, audio_label_columns=None, merged_layout=None, **kwargs):
        if text_label_count is None:
            return original_forward(*args, **kwargs)
        label_audio_ids = kwargs.get("label_audio_ids")
        if merged_layout is not None and not args:
            hidden = decoder.hidden_states(base, merged_layout, **kwargs)
            labels, audio_out_mask = merged_layout["labels"], merged_layout["audio_out_mask"]
        else:
            proj.forward = hidden_only
            try:
                out = original_forward(*args, **kwargs)
            finally:
                proj.forward = original_proj
            hidden, labels, audio_out_mask = out.logits, out.expanded_labels, out.audio_out_mask
        return apply_heads(
            proj,
            hidden,
            labels,
            audio_out_mask,
            label_audio_ids,
            int(text_label_count),
            audio_label_columns,
            base.audio_num_codebooks,
            base.audio_codebook_size,
        )

    base.forward = forward
    base._higgs_lora_labelled_heads = True
    decoder.install(base)


def apply_heads(
    proj,
    hidden,
    labels,
    audio_out_mask,
    label_audio_ids,
    text_count: int,
    audio_columns,
    num_codebooks: int,
    codebook_size: int,
) -> LabelledLogits:
    """The text head on the K text-target rows, the audio head on the labelled audio-out columns."""
    B, T, H = hidden.shape
    target = labels[:, 1:] != IGNORE  # row t predicts label t + 1
    flat = _first_true(target, text_count)
    rows, cols = flat // (T - 1), flat % (T - 1)
    text_logits = proj.text_lm_head(hidden[rows, cols])
    text_labels = labels[rows, cols + 1]
    if label_audio_ids is None or label_audio_ids.shape[-1] == 0:
        audio_hidden = hidden.new_zeros((0, H))
        audio_labels = torch.zeros((num_codebooks, 0), dtype=torch.long, device=hidden.device)
    else:
        label_audio_ids = label_audio_ids.to(hidden.device)
        audio_rows = _first_true(audio_out_mask, label_audio_ids.shape[1])  # the order of hidden[audio_out_mask]
        columns = audio_columns.to(hidden.device)
        audio_hidden = hidden.reshape(B * T, H)[audio_rows[columns]]
        audio_labels = label_audio_ids[:, columns + 1]
    audio_logits = proj.audio_lm_head(audio_hidden).view(-1, num_codebooks, codebook_size)
    return LabelledLogits(
        text_logits=text_logits, text_labels=text_labels, audio_logits=audio_logits, audio_labels=audio_labels
    )
