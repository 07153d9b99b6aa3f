"""Training samples: tokens + codes -> ChatMLDatasetSample (`VoiceCloningDataset`).

`VoiceCloningDataset` tokenizes each sample's training ChatML with boson's `prepare_chatml_sample`
and takes its audio codes from the on-disk code cache (`data.cache`): each distinct clip is encoded
once, stored as int16 and read lazily, so host memory does not grow with the data set. Without a
cache folder a private temporary one is used. Every `__getitem__` returns brand-new tensors: the
upstream collator writes -100 into `label_ids` in place, so handing it the same tensors twice
(second epoch, cached sample) would silently mask all audio labels.

Bad data never ends a long run silently or late: clips that fail to encode are listed (file, reason,
affected samples) before training, and dropped only with `skip_invalid`; a sample whose cache entry
is damaged or gone at read time is replaced by another sample and counted, up to `max_bad_samples`.
The collator is built in `data.collator`; the dropped samples are written by `data.skipped`.
"""

from __future__ import annotations

import logging
import sys
from typing import Sequence

import numpy as np
from boson_multimodal.dataset.chatml_dataset import ChatMLDatasetSample
from torch.utils.data import Dataset

from ..constants import IGNORE_INDEX as IGNORE
from .audio import load_audio
from .cache import CacheMissingError, CodeCache, failed_message, missing_message
from .codes import AudioCodec
from .collator import make_chatml_sample
from .labels import pack_labels, unpack_labels
from .sample import CloneSample, tokenize_chatml, training_chatml
from .whisper import WHISPER_SAMPLE_RATE

log = logging.getLogger(__name__)


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
                    pack_labels(input_ids, label_ids),
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
        return make_chatml_sample(input_ids, unpack_labels(input_ids, labels), codes, waveforms)

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
