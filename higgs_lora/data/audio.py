"""Audio file I/O: load, downmix to mono, resample (soundfile + soxr)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file and the reason."""


def load_audio(path: str | Path, sampling_rate: int) -> np.ndarray:
    """Read `path` as mono float32 at `sampling_rate` Hz."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found")
    try:
        wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for unreadable files
        raise AudioError(f"{path}: cannot read audio ({exc})") from exc
    wav = wav.mean(axis=1)
    if wav.size == 0:
        raise AudioError(f"{path}: audio file is empty")
    return resample(wav, sr, sampling_rate)


def mono_wave(audio_path_or_wv, sr: int | None, sampling_rate: int) -> np.ndarray:
    """A codec's input as mono float32 at `sampling_rate`: a file path, or a 1-D wave (array/tensor) with its `sr`."""
    if isinstance(audio_path_or_wv, (str, os.PathLike)):
        return load_audio(audio_path_or_wv, sampling_rate)
    if sr is None:
        raise ValueError("encode() of a waveform needs its sampling rate `sr`")
    wav = audio_path_or_wv
    if hasattr(wav, "detach"):  # torch tensor
        wav = wav.detach().cpu().numpy()
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1 and sum(d > 1 for d in wav.shape) <= 1:  # (1, T), (T, 1), (1, 1, T) ...
        wav = wav.reshape(-1)
    if wav.ndim != 1:
        raise ValueError(f"encode() expects a mono waveform, got shape {np.shape(audio_path_or_wv)}")
    if wav.size == 0:
        raise ValueError("encode() got an empty waveform")
    return resample(wav, int(sr), sampling_rate)


def resample(wav: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    wav = np.asarray(wav, dtype=np.float32)
    if orig_sr == target_sr:
        return wav
    return soxr.resample(wav, orig_sr, target_sr).astype(np.float32, copy=False)


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the file header, without decoding it."""
    try:
        info = sf.info(str(path))
    except Exception as exc:
        raise AudioError(f"{path}: cannot read audio ({exc})") from exc
    return info.frames / float(info.samplerate)


def write_wav(path: str | Path, wav: np.ndarray, sampling_rate: int) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(wav, dtype=np.float32), sampling_rate, subtype="PCM_16")
