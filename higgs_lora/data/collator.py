"""THE collator factory (settings read from the model config), the sample it takes, the batch it gives.

Training and inference build their collator here, exactly as boson's serve engine does: `build_collator`
is the project's one place for collator settings. `make_chatml_sample` makes the ChatMLDatasetSample the
collator takes (fresh tensors each call: the upstream collator writes -100 into `label_ids` in place);
`batch_to_inputs` and `DictCollator` turn its batch into forward kwargs.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from boson_multimodal.data_collator.higgs_audio_collator import HiggsAudioSampleCollator
from boson_multimodal.dataset.chatml_dataset import ChatMLDatasetSample

from .whisper import WHISPER_SAMPLE_RATE, default_whisper_processor, encodes_whisper

# Model inputs the collated batch feeds to HiggsAudioModel.forward (reward and group locs are unused).
MODEL_INPUT_KEYS = (
    "input_ids",
    "attention_mask",
    "audio_features",
    "audio_feature_attention_mask",
    "audio_out_ids",
    "audio_out_ids_start",
    "audio_in_ids",
    "audio_in_ids_start",
    "label_ids",
    "label_audio_ids",
)


def build_collator(
    config, whisper_processor=None, encode_whisper_embed: bool | None = None
) -> HiggsAudioSampleCollator:
    """The collator exactly as the serve engine builds it, for training and inference alike.

    Whisper features only when the model has a tower for them (the released model has none and
    conditions on discrete codes); codebook count, delay pattern and token ids from the config.
    `encode_whisper_embed` may only confirm what the config says: forcing Whisper onto a model
    without a tower (what the design's collator snippet does) is refused, as is turning it off for
    one that has it.
    """
    encode_whisper = encodes_whisper(config)
    if encode_whisper_embed is not None and bool(encode_whisper_embed) != encode_whisper:
        if encode_whisper_embed:
            why = (
                "it has no audio tower (skip_audio_tower=True), as in the released Higgs Audio v2, which conditions "
                "on the reference's discrete codes"
                if getattr(config, "skip_audio_tower", True)
                else "its config has encode_whisper_embed=False"
            )
            raise ValueError(
                f"cannot encode Whisper embeddings for this model: {why}; Whisper features would "
                "feed nothing it was trained to read, and inference would not match training"
            )
        raise ValueError(
            "this model encodes Whisper features (it has an audio tower and encode_whisper_embed=True); "
            "training without them would not match inference"
        )
    if encode_whisper and whisper_processor is None:
        whisper_processor = default_whisper_processor(config)
    return HiggsAudioSampleCollator(
        whisper_processor=whisper_processor if encode_whisper else None,
        encode_whisper_embed=encode_whisper,
        audio_in_token_id=config.audio_in_token_idx,
        audio_out_token_id=config.audio_out_token_idx,
        audio_stream_bos_id=config.audio_stream_bos_id,
        audio_stream_eos_id=config.audio_stream_eos_id,
        pad_token_id=config.pad_token_id,
        return_audio_in_tokens=False,
        use_delay_pattern=config.use_delay_pattern,
        audio_num_codebooks=config.audio_num_codebooks,
        round_to=1,
    )


def batch_to_inputs(batch) -> dict:
    """Collator output (a dataclass) -> forward kwargs, field by field (dataclasses.asdict deep-copies)."""
    return {k: getattr(batch, k) for k in MODEL_INPUT_KEYS if getattr(batch, k) is not None}


def make_chatml_sample(
    input_ids,
    label_ids,
    codes: Sequence[np.ndarray],
    waveforms: Sequence[np.ndarray] | None = None,
    waveform_sample_rate: int = WHISPER_SAMPLE_RATE,
) -> ChatMLDatasetSample:
    """A ChatMLDatasetSample of fresh tensors; `codes` are the (C, T) arrays of the audio, in prompt order,
    `waveforms` (for models that encode Whisper features) one mono wave per clip in the same order."""
    lengths = [c.shape[1] for c in codes]
    starts = np.cumsum([0] + lengths[:-1]) if codes else np.zeros(0, dtype=np.int64)
    if waveforms:
        wav_starts = np.cumsum([0] + [len(w) for w in waveforms[:-1]])
        wav = torch.from_numpy(np.concatenate([np.asarray(w, dtype=np.float32) for w in waveforms]))
        wav_start = torch.tensor(wav_starts, dtype=torch.long)
        rates = torch.full((len(waveforms),), waveform_sample_rate, dtype=torch.long)
    else:
        wav, wav_start, rates = torch.zeros(0), torch.zeros(0, dtype=torch.long), torch.zeros(0)
    return ChatMLDatasetSample(
        input_ids=torch.tensor(input_ids, dtype=torch.long),
        label_ids=None if label_ids is None else torch.tensor(label_ids, dtype=torch.long),
        audio_ids_concat=(
            torch.from_numpy(np.concatenate([np.asarray(c, dtype=np.int64) for c in codes], axis=1))
            if codes
            else torch.zeros((0, 0), dtype=torch.long)
        ),
        audio_ids_start=torch.tensor(starts, dtype=torch.long),
        audio_waveforms_concat=wav,
        audio_waveforms_start=wav_start,
        audio_sample_rate=rates,
        audio_speaker_indices=torch.zeros(0, dtype=torch.long),
    )


class DictCollator:
    """Trainer wants dict batches: the upstream collator, then its fields as forward kwargs."""

    def __init__(self, collator: HiggsAudioSampleCollator):
        self.collator = collator

    def __call__(self, samples):
        return batch_to_inputs(self.collator(samples))
