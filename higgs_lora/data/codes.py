"""Audio codecs behind one interface, and the one codec call for a file (`encode_file`; the cache is `cache.py`).

Every codec here looks like boson_multimodal's HiggsAudioTokenizer to the rest of the code:
``encode(path_or_wave, sr=None) -> LongTensor (num_codebooks, T)`` and
``decode(LongTensor (B, num_codebooks, T)) -> float ndarray (B, 1, T * hop)`` at ``sampling_rate``,
with ``tps`` frames per second.

- ``TinyCodec``: a fast deterministic stand-in (band energies, 8 x 1024 codes at 25 frames/s) for
  tests and the offline demo. It is not a neural codec and does not sound like speech on decode.
- ``HiggsAudioCodec``: the real ``bosonai/higgs-audio-v2-tokenizer`` through boson_multimodal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ..constants import FRAMES_PER_SECOND
from .audio import mono_wave

TINY = "tiny"


class AudioCodec(Protocol):
    sampling_rate: int
    tps: int
    num_codebooks: int

    def encode(self, audio_path_or_wv, sr: int | None = None) -> torch.LongTensor: ...

    def decode(self, vq_code: torch.Tensor) -> np.ndarray: ...


class TinyCodec:
    """Deterministic toy codec with the real tokenizer's shapes and rates.

    Each 40 ms frame (960 samples at 24 kHz) is cut into ``num_codebooks`` log-spaced frequency
    bands; codebook c holds the quantised log energy of band c. Decoding plays one sine per band
    at that energy, so loud/quiet structure survives a round trip.
    """

    name = TINY
    sampling_rate = 24000
    tps = FRAMES_PER_SECOND
    num_codebooks = 8
    codebook_size = 1024
    hop = 960
    _db_floor, _db_ceil = -80.0, 60.0

    def __init__(self):
        edges = np.geomspace(60.0, 11000.0, self.num_codebooks + 1)
        freqs = np.fft.rfftfreq(self.hop, 1.0 / self.sampling_rate)
        self._bands = [(freqs >= lo) & (freqs < hi) for lo, hi in zip(edges[:-1], edges[1:])]
        self._centres = np.sqrt(edges[:-1] * edges[1:])
        self._window = np.hanning(self.hop).astype(np.float32)

    def encode(self, audio_path_or_wv, sr: int | None = None) -> torch.LongTensor:
        wav = mono_wave(audio_path_or_wv, sr, self.sampling_rate)
        n_frames = max(1, int(np.ceil(len(wav) / self.hop)))
        wav = np.pad(wav, (0, n_frames * self.hop - len(wav)))
        frames = wav.reshape(n_frames, self.hop) * self._window
        power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
        band_db = np.stack([10 * np.log10(power[:, m].mean(axis=1) + 1e-10) for m in self._bands])
        scaled = (band_db - self._db_floor) / (self._db_ceil - self._db_floor)
        codes = np.clip(np.round(scaled * (self.codebook_size - 1)), 0, self.codebook_size - 1)
        return torch.from_numpy(codes.astype(np.int64))

    def decode(self, vq_code: torch.Tensor) -> np.ndarray:
        codes = torch.as_tensor(vq_code).cpu().numpy()
        if codes.ndim == 2:
            codes = codes[None]
        batch, n_cb, n_frames = codes.shape
        db = self._db_floor + codes / (self.codebook_size - 1) * (self._db_ceil - self._db_floor)
        # per-frame band power -> sine amplitude (band power was a mean over ~hop/2 FFT bins)
        amp = np.sqrt(10 ** (db / 10)) * 2.0 / self.hop
        t = np.arange(n_frames * self.hop) / self.sampling_rate
        out = np.zeros((batch, 1, n_frames * self.hop), dtype=np.float32)
        for c in range(n_cb):
            env = np.repeat(amp[:, c, :], self.hop, axis=1)
            out[:, 0] += (env * np.sin(2 * np.pi * self._centres[c] * t)).astype(np.float32)
        return np.clip(out, -1.0, 1.0)


def load_codec(name_or_path: str, device: str | None = None) -> AudioCodec:
    """`tiny` gives the offline stand-in; anything else is a folder or hub id (`repo@revision`) of the real tokenizer."""
    if name_or_path == TINY:
        return TinyCodec()
    from .higgs_codec import HiggsAudioCodec

    return HiggsAudioCodec.load(name_or_path, device=device)


def encode_file(codec: AudioCodec, path: str | Path) -> np.ndarray:
    """The one codec call for a file, training and inference alike: int64 (C, T) codes."""
    return codec.encode(str(path)).cpu().numpy().astype(np.int64)
