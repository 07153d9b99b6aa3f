"""The merged sequence of a training batch, laid out on the host by boson's own merge.

`HiggsAudioModel.forward` expands each audio placeholder into its code columns with
`merge_input_ids_with_audio_features`, which reads sizes back from the device ~20 times per forward
(`nonzero`, boolean-mask indexing, `.item()`), and every DualFFN layer then splits text from audio
rows with boolean masks (6 syncs forward, 8 backward, per layer). All of it depends only on the
collated batch, which the collator holds on the host.

So the collator runs that same merge function on the CPU, over index carriers instead of embeddings:
each text position carries its flat index into the batch's token embeddings, each audio column its
index into the audio-in or audio-out code embeddings (offset past the text, 0 for padding). What
comes back is boson's own layout of the batch: for each merged position the row to gather
(`source`), and the merged attention mask, labels, position ids and audio masks, exactly as the
model would compute them on the device. `train.decoder` gathers the embeddings by `source` and routes
the DualFFN rows by the index lists made here: no sync is left in the merge or the layers.
"""

from __future__ import annotations

import torch
from boson_multimodal.model.higgs_audio.utils import merge_input_ids_with_audio_features

KEY = "merged_layout"
# What boson's forward passes in training (use_cache off): pad to a multiple of 8, on the right unless
# the batch has one sample.
ROUND_TO = 8


def supported(config) -> bool:
    """Configs whose merge the layout reproduces: discrete audio-in codes, no Whisper tower (the released model)."""
    return bool(getattr(config, "skip_audio_tower", False)) and bool(getattr(config, "encode_audio_in_tokens", False))


def _carrier(start: int, count: int) -> torch.Tensor:
    # float64 holds every index exactly (merge copies values; it never computes with them).
    return torch.arange(start, start + count, dtype=torch.float64).view(count, 1)


def merged_layout(batch: dict, config) -> dict:
    """Boson's merge of `batch` (collated, on the host), as tensors the device can use without syncing.

    source (B, T): row of cat([zero row, token embeddings (B*S), audio-in codes, audio-out codes]);
    attention_mask, labels, position_ids, audio_out_mask, codes_mask (audio-in codes | audio-out): (B, T),
    as boson's forward computes them; ffn_audio_rows / ffn_text_rows: flat indices of codes_mask's True
    / False positions, in order (the DualFFN split); mask_all_ones, right_padded: host facts for the
    attention mask.
    """
    input_ids = batch["input_ids"]
    B, S = input_ids.shape
    left_padding = B == 1
    audio_in = batch.get("audio_in_ids")
    audio_out = batch.get("audio_out_ids")
    n_in = 0 if audio_in is None else int(audio_in.shape[-1])
    n_out = 0 if audio_out is None else int(audio_out.shape[-1])
    tokens = _carrier(1, B * S).view(B, S, 1)
    in_carrier = _carrier(1 + B * S, n_in)
    out_carrier = _carrier(1 + B * S + n_in, n_out)
    start_in = batch.get("audio_in_ids_start")
    start_out = batch.get("audio_out_ids_start")
    (source, attention_mask, labels, position_ids, _ids, _in_mask, in_codes_mask, out_mask) = (
        merge_input_ids_with_audio_features(
            None,
            None,
            in_carrier,
            start_in.cpu() if start_in is not None else None,
            out_carrier,
            start_out.cpu() if start_out is not None else None,
            config.audio_in_token_idx,
            config.audio_out_token_idx,
            tokens,
            input_ids.cpu(),
            batch["attention_mask"].cpu(),
            batch["label_ids"].cpu() if batch.get("label_ids") is not None else None,
            pad_token_id=config.pad_token_id,
            round_to=ROUND_TO,
            left_padding=left_padding,
        )
    )
    codes_mask = in_codes_mask | out_mask
    flat = codes_mask.flatten()
    return {
        "source": source.squeeze(-1).long(),
        "attention_mask": attention_mask,
        "labels": labels,
        "position_ids": position_ids,
        "audio_out_mask": out_mask,
        "codes_mask": codes_mask,
        "ffn_audio_rows": torch.nonzero(flat).flatten(),
        "ffn_text_rows": torch.nonzero(~flat).flatten(),
        # Python values stay on the host (Trainer moves only tensors): read without a sync.
        "mask_all_ones": bool(attention_mask.bool().all()),
        "right_padded": not left_padding,
    }
