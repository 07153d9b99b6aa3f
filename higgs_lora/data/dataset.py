"""Tokens + codes -> ChatMLDatasetSample, and the one collator factory (settings read from the model config).

`VoiceCloningDataset` tokenizes each sample's training ChatML with boson's `prepare_chatml_sample`
and takes its audio codes from the on-disk code cache (`data.cache`): each distinct clip is encoded
once, stored as int16 and read lazily, so host memory does not grow with the data set. Without a
cache folder a private temporary one is used. Every `__getitem__` returns brand-new tensors: the
upstream collator writes -100 into `label_ids` in place, so handing it the same tensors twice
(second epoch, cached sample) would silently mask all audio labels.

Bad data never ends a long run silently or late: clips that fail to encode are listed (file, reason,
affected samples) before training, and dropped only with `skip_invalid`; a sample whose cache entry
is damaged or gone at read time is replaced by another sample and counted, up to `max_bad_samples`.
"""

from __future__ import annotations

import logging
import sys
from typing import Sequence

import numpy as np
import torch
from boson_multimodal.data_collator.higgs_audio_collator import HiggsAudioSampleCollator
from boson_multimodal.dataset.chatml_dataset import ChatMLDatasetSample
from torch.utils.data import Dataset

from ..constants import IGNORE_INDEX as IGNORE
from .audio import load_audio
from .cache import CacheMissingError, CodeCache, failed_message, missing_message
from .codes import AudioCodec
from .sample import CloneSample, tokenize_chatml, training_chatml

log = logging.getLogger(__name__)

WHISPER_SAMPLE_RATE = 16000

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


def encodes_whisper(config) -> bool:
    """The model conditions on Whisper features: its config asks for them and it has a tower to take them."""
    return bool(getattr(config, "encode_whisper_embed", False)) and not getattr(config, "skip_audio_tower", True)


class WhisperFeatures:
    """What the collator reads of a WhisperProcessor (`.feature_extractor`), without its tokenizer files."""

    def __init__(self, feature_extractor):
        self.feature_extractor = feature_extractor


def default_whisper_processor(config) -> WhisperFeatures:
    """Whisper's log-mel feature extractor, built offline with its default settings (16 kHz, 30 s
    windows) and as many mel bins as the model's audio tower takes (128 for whisper-large-v3)."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatures(WhisperFeatureExtractor(feature_size=int(config.audio_encoder_config.num_mel_bins)))


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


def _pack_labels(input_ids, label_ids):
    """Labels are the input ids where trained and -100 elsewhere: keep one bit a token (a full copy otherwise)."""
    ids, labels = np.asarray(input_ids), np.asarray(label_ids)
    mask = labels != IGNORE
    if labels.shape == ids.shape and np.array_equal(labels[mask], ids[mask]):
        return np.packbits(mask)
    return labels.astype(np.int32)


def _unpack_labels(input_ids, packed) -> np.ndarray:
    if packed.dtype != np.uint8:
        return packed
    mask = np.unpackbits(packed, count=len(input_ids)).astype(bool)
    return np.where(mask, input_ids, IGNORE)


class BadSamplesError(RuntimeError):
    """More samples failed at read time than `max_bad_samples` allows."""


class VoiceCloningDataset(Dataset):
    """Training samples: the five-message ChatML, labels on the target turn only, codes from `codec`
    through the code cache.

    cache_dir: the on-disk code cache (None: a private temporary folder); built here when incomplete,
        sharded across ranks when torch.distributed is initialised.
    require_cache: encode nothing; a clear error (how many files, the tokenize command) when codes are missing.
    skip_invalid: drop samples whose audio failed to encode (listed in `skipped`) instead of refusing to start.
    max_bad_samples: samples that fail at read time (cache entry damaged or deleted mid-run) are replaced
        by the next good sample and counted; one more than this aborts with their list. Counted per
        data-loading process.
    with_waveforms: also supply 16 kHz waveforms (models that encode Whisper features).
    """

    def __init__(
        self,
        samples: Sequence[CloneSample],
        tokenizer,
        codec: AudioCodec,
        num_codebooks: int | None = None,
        *,
        cache_dir=None,
        require_cache: bool = False,
        skip_invalid: bool = False,
        max_bad_samples: int = 10,
        with_waveforms: bool = False,
        data_path: str | None = None,
        audio_tokenizer: str | None = None,
    ):
        samples = list(samples)
        self.num_codebooks = num_codebooks or codec.num_codebooks
        self.max_bad_samples = max_bad_samples
        self.with_waveforms = with_waveforms
        tokens = []
        shared_paths: dict[str, str] = {}  # one string per distinct path, however many samples use it
        for index, sample in enumerate(samples):
            try:
                input_ids, label_ids, audio_paths = tokenize_chatml(self.chatml(sample), tokenizer)
            except ValueError as err:
                raise ValueError(f"sample {index}: {err}") from None
            if all(t == IGNORE for t in label_ids):
                raise ValueError(f"sample {index}: nothing to learn (no label outside the masked prompt)")
            tokens.append(
                (
                    np.array(input_ids, dtype=np.int32),
                    _pack_labels(input_ids, label_ids),
                    [shared_paths.setdefault(p, p) for p in audio_paths],
                )
            )

        self.cache = CodeCache.for_codec(cache_dir, codec)
        all_paths = [p for _, _, paths in tokens for p in paths]
        report = self.cache.build(codec, all_paths, require=require_cache)
        if report.missing and require_cache:
            raise CacheMissingError(
                missing_message(
                    len(report.missing),
                    len(set(all_paths)),
                    cache_dir,
                    data_path,
                    audio_tokenizer or getattr(codec, "name", None),
                )
            )
        failed = dict(report.failed)
        failed.update(
            {
                p: (
                    "no cache record after every rank encoded its share: is the cache folder on a file system "
                    "all nodes share?"
                )
                for p in report.missing
            }
        )
        self.failed_files = failed
        bad = [i for i, (_, _, paths) in enumerate(tokens) if any(p in failed for p in paths)]
        if bad and not skip_invalid:
            raise ValueError(failed_message(failed, bad))
        self.skipped = [{"index": i, "files": {p: failed[p] for p in tokens[i][2] if p in failed}} for i in bad]
        if bad:
            print(
                f"warning: skipping {len(bad)} of {len(samples)} samples whose audio could not be encoded "
                f"(--skip_invalid): {bad[:20]}{' ...' if len(bad) > 20 else ''}",
                file=sys.stderr,
            )
        dropped = set(bad)
        keep = [i for i in range(len(samples)) if i not in dropped]
        if not keep:
            raise ValueError("no sample left to train on: every sample has audio that could not be encoded")
        self.samples = [samples[i] for i in keep]
        self.source_indices = keep  # position in the caller's list, per kept sample
        self._tokens = [tokens[i] for i in keep]
        self._entries = {p: report.entries[p] for _, _, paths in self._tokens for p in paths}
        for index, (_, _, paths) in zip(keep, self._tokens):
            for path in paths:
                if self._entries[path].codebooks < self.num_codebooks:
                    raise ValueError(
                        f"sample {index}: {path} has {self._entries[path].codebooks} codebooks, "
                        f"the model needs {self.num_codebooks}"
                    )
        self.bad_samples: dict[int, str] = {}

    def chatml(self, sample: CloneSample):
        return training_chatml(sample)

    def __len__(self) -> int:
        return len(self.samples)

    def _load_codes(self, path: str) -> np.ndarray:
        entry = self._entries[path]
        return self.cache.load(entry.key, (entry.codebooks, entry.frames))

    def codes(self, path: str) -> np.ndarray:
        """The cached codes of `path` as int64 (C, T), read from disk."""
        return np.array(self._load_codes(path), dtype=np.int64)

    def frames(self, path: str) -> int:
        """How many audio frames `path` has, from its cache record (no codes are read)."""
        return self._entries[path].frames

    def lengths(self) -> list[int]:
        """Per sample, the sequence length the model sees: text tokens plus, for every clip, its audio
        columns (frames, stream BOS and EOS, and the delay pattern's extra codebooks - 1 columns), each
        replacing one placeholder token. What memory estimates and length bucketing measure; read
        from the cache records, no codes are loaded."""
        extra = 2 + self.num_codebooks - 1
        return [
            len(input_ids) + sum(self._entries[p].frames + extra - 1 for p in paths)
            for input_ids, _, paths in self._tokens
        ]

    def _build(self, index: int) -> ChatMLDatasetSample:
        input_ids, labels, paths = self._tokens[index]
        codes = [self._load_codes(p) for p in paths]
        waveforms = [load_audio(p, WHISPER_SAMPLE_RATE) for p in paths] if self.with_waveforms else None
        return make_chatml_sample(input_ids, _unpack_labels(input_ids, labels), codes, waveforms)

    def __getitem__(self, index: int) -> ChatMLDatasetSample:
        n = len(self)
        for step in range(n):  # a sample that fails to load is replaced by the next good one
            i = (index + step) % n
            if i in self.bad_samples:
                continue
            try:
                return self._build(i)
            except Exception as exc:  # damaged/deleted cache entry or audio: count it, move on
                self._bad(i, exc)
        raise BadSamplesError("every sample failed to load: " + "; ".join(self.bad_samples.values())[:1000])

    def _bad(self, index: int, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
        if index not in self.bad_samples:
            self.bad_samples[index] = reason
            log.warning("sample %d (source %d) skipped at read time: %s", index, self.source_indices[index], reason)
            print(
                f"warning: sample {self.source_indices[index]} skipped at read time "
                f"({len(self.bad_samples)}/{self.max_bad_samples} allowed): {reason}",
                file=sys.stderr,
            )
        if len(self.bad_samples) > self.max_bad_samples:
            listed = "; ".join(f"sample {self.source_indices[i]}: {r}" for i, r in list(self.bad_samples.items())[:20])
            raise BadSamplesError(
                f"{len(self.bad_samples)} samples failed at read time, more than --max_bad_samples "
                f"{self.max_bad_samples}; rebuild the code cache (higgs-lora tokenize) or fix the "
                f"files. {listed}"
            )


SKIPPED_ENCODING = "skipped_encoding.json"


def write_skipped(dataset: VoiceCloningDataset, folder) -> None:
    """OUTPUT_DIR/skipped_encoding.json (main process) when samples were dropped because a clip failed to
    encode: nothing lost silently. (Samples dropped by validation are in skipped_samples.json.)"""
    import json
    import os
    from pathlib import Path

    if not dataset.skipped or int(os.environ.get("RANK", "0")) != 0:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / SKIPPED_ENCODING).write_text(
        json.dumps(dataset.skipped, indent=2, ensure_ascii=False), encoding="utf-8"
    )


class DictCollator:
    """Trainer wants dict batches: the upstream collator, then its fields as forward kwargs."""

    def __init__(self, collator: HiggsAudioSampleCollator):
        self.collator = collator

    def __call__(self, samples):
        return batch_to_inputs(self.collator(samples))
