"""Inference's codec behind the code cache: `encode(path)` returns exactly the codes training read."""

from __future__ import annotations

import os
from typing import Iterable

import numpy as np

from .cache import CacheMissingError, CodeCache, missing_message


class CachedCodec:
    """A codec whose `encode(path)` reads the code cache first (and stores what it had to encode).

    Inference wraps its codec with this for `--cache_dir`, so `codes.encode_file` stays the one codec
    call and returns exactly the codes training read. Waveform input and `decode` pass straight through.
    """

    def __init__(self, codec, cache: CodeCache, require: bool = False):
        self.codec = codec
        self.cache = cache
        self.require = require

    def __getattr__(self, name):
        return getattr(self.codec, name)

    def encode(self, audio_path_or_wv, sr: int | None = None):
        import torch

        if isinstance(audio_path_or_wv, (str, os.PathLike)):
            codes = self.cache.get_or_encode(self.codec, str(audio_path_or_wv), require=self.require)
            return torch.from_numpy(np.array(codes, dtype=np.int64))
        return self.codec.encode(audio_path_or_wv, sr)

    def decode(self, vq_code):
        return self.codec.decode(vq_code)


def cached_codec(
    codec,
    cache_dir,
    require: bool,
    paths: Iterable[str],
    data_path: str | None = None,
    audio_tokenizer: str | None = None,
) -> CachedCodec:
    """`codec` behind the cache at `cache_dir`; with `require`, a clear error now if any of `paths` is missing."""
    cache = CodeCache.for_codec(cache_dir, codec)
    if require:
        unique = list(dict.fromkeys(str(p) for p in paths))
        missing = [p for p in unique if cache.encoded_entry(p) is None]
        if missing:
            raise CacheMissingError(
                missing_message(
                    len(missing), len(unique), cache_dir, data_path, audio_tokenizer or getattr(codec, "name", None)
                )
            )
    return CachedCodec(codec, cache, require)
