"""Tokens + codes -> ChatMLDatasetSample, and the one collator factory (settings read from the model config).

`VoiceCloningDataset` tokenizes each sample's training ChatML with boson's `prepare_chatml_sample`
and encodes its audio once (an in-memory code cache). Every `__getitem__` returns brand-new
tensors: the upstream collator writes -100 into `label_ids` in place, so handing it the same
tensors twice (second epoch, cached sample) would silently mask all audio labels.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from boson_multimodal.data_collator.higgs_audio_collator import HiggsAudioSampleCollator
from boson_multimodal.dataset.chatml_dataset import ChatMLDatasetSample
from torch.utils.data import Dataset

from .codes import AudioCodec, encode_files
from .sample import CloneSample, tokenize_chatml, training_chatml

# Model inputs the collated batch feeds to HiggsAudioModel.forward (reward and group locs are unused).
MODEL_INPUT_KEYS = (
    "input_ids", "attention_mask", "audio_features", "audio_feature_attention_mask",
    "audio_out_ids", "audio_out_ids_start", "audio_in_ids", "audio_in_ids_start",
    "label_ids", "label_audio_ids",
)


def build_collator(config, whisper_processor=None) -> HiggsAudioSampleCollator:
    """The collator exactly as the serve engine builds it, for training and inference alike.

    Whisper features only when the model has a tower for them (the released model has none and
    conditions on discrete codes); codebook count, delay pattern and token ids from the config.
    """
    encode_whisper = bool(config.encode_whisper_embed) and not config.skip_audio_tower
    if encode_whisper and whisper_processor is None:
        raise ValueError("this model encodes Whisper features: pass the WhisperProcessor its config expects")
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


def make_chatml_sample(input_ids, label_ids, codes: Sequence[np.ndarray]) -> ChatMLDatasetSample:
    """A ChatMLDatasetSample of fresh tensors; `codes` are the (C, T) arrays of the audio, in prompt order."""
    lengths = [c.shape[1] for c in codes]
    starts = np.cumsum([0] + lengths[:-1]) if codes else np.zeros(0, dtype=np.int64)
    return ChatMLDatasetSample(
        input_ids=torch.tensor(input_ids, dtype=torch.long),
        label_ids=None if label_ids is None else torch.tensor(label_ids, dtype=torch.long),
        audio_ids_concat=torch.from_numpy(np.concatenate(codes, axis=1)).long() if codes else torch.zeros((0, 0), dtype=torch.long),
        audio_ids_start=torch.tensor(starts, dtype=torch.long),
        audio_waveforms_concat=torch.zeros(0),
        audio_waveforms_start=torch.zeros(0, dtype=torch.long),
        audio_sample_rate=torch.zeros(0),
        audio_speaker_indices=torch.zeros(0, dtype=torch.long),
    )


class VoiceCloningDataset(Dataset):
    """Training samples: the five-message ChatML, labels on the target turn only, codes from `codec`."""

    def __init__(self, samples: Sequence[CloneSample], tokenizer, codec: AudioCodec, num_codebooks: int | None = None):
        self.samples = list(samples)
        self.num_codebooks = num_codebooks or codec.num_codebooks
        self._tokens = []
        for index, sample in enumerate(self.samples):
            input_ids, label_ids, audio_paths = tokenize_chatml(self.chatml(sample), tokenizer)
            if all(t == -100 for t in label_ids):
                raise ValueError(f"sample {index}: nothing to learn (no label outside the masked prompt)")
            self._tokens.append((np.array(input_ids), np.array(label_ids), audio_paths))
        self._codes = encode_files(codec, [p for _, _, paths in self._tokens for p in paths])
        for index, (_, _, paths) in enumerate(self._tokens):
            for path in paths:
                if self._codes[path].shape[0] < self.num_codebooks:
                    raise ValueError(f"sample {index}: {path} has {self._codes[path].shape[0]} codebooks, "
                                     f"the model needs {self.num_codebooks}")

    def chatml(self, sample: CloneSample):
        return training_chatml(sample)

    def __len__(self) -> int:
        return len(self.samples)

    def codes(self, path: str) -> np.ndarray:
        return self._codes[path]

    def lengths(self) -> list[int]:
        """Per sample, the sequence length the model sees: text tokens plus, for every clip, its audio
        columns (frames, stream BOS and EOS, and the delay pattern's extra codebooks - 1 columns), each
        replacing one placeholder token. What memory estimates and length bucketing measure."""
        extra = 2 + self.num_codebooks - 1
        return [len(input_ids) + sum(self._codes[p].shape[1] + extra - 1 for p in paths)
                for input_ids, _, paths in self._tokens]

    def __getitem__(self, index: int) -> ChatMLDatasetSample:
        input_ids, label_ids, paths = self._tokens[index]
        return make_chatml_sample(input_ids, label_ids, [self._codes[p] for p in paths])


class DictCollator:
    """Trainer wants dict batches: the upstream collator, then its fields as forward kwargs."""

    def __init__(self, collator: HiggsAudioSampleCollator):
        self.collator = collator

    def __call__(self, samples):
        return batch_to_inputs(self.collator(samples))


