"""One audio file checked for training: it exists, decodes to the end, is long enough, not too long, not silent.

Light on purpose (numpy + soundfile, imported when a file is checked): validation runs this in worker
processes, which must not import torch or boson_multimodal, and the CLI reads its limits for `--help`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..constants import CLIP_SILENCE_DBFS

MIN_SECONDS = 0.3
MAX_SECONDS = 40.0
_BLOCK_FRAMES = 1 << 16  # decode in blocks: memory stays flat for a 2-hour file


@dataclass(frozen=True)
class AudioLimits:
    min_seconds: float = MIN_SECONDS
    max_seconds: float = MAX_SECONDS
    silence_dbfs: float = CLIP_SILENCE_DBFS


@dataclass(frozen=True)
class AudioInfo:
    """What a check found: `code` is None when the file is fine for training."""

    path: str
    code: str | None = None
    message: str = ""
    seconds: float | None = None
    dbfs: float | None = None


def is_remote(path: str) -> bool:
    return path.lower().startswith(("http://", "https://"))


def check_audio_file(path: str, limits: AudioLimits = AudioLimits()) -> AudioInfo:
    """Never raises: every failure becomes a code (audio_not_found, audio_unreadable, audio_too_short,
    audio_too_long, audio_silent)."""
    try:
        return _check(path, limits)
    except Exception as exc:  # a validator that crashes on a bad file is worse than one more code
        return AudioInfo(path, "audio_unreadable", f"{path}: cannot decode ({type(exc).__name__}: {exc})")


def _check(path: str, limits: AudioLimits) -> AudioInfo:
    import numpy as np
    import soundfile as sf

    if not Path(path).is_file():
        return AudioInfo(path, "audio_not_found", f"{path}: no such file")
    try:
        f = sf.SoundFile(path)
    except Exception as exc:
        return AudioInfo(path, "audio_unreadable", f"{path}: not a readable audio file ({exc})")
    with f:
        rate = f.samplerate
        # Decode every frame, not only the header: a file that fails half-way must fail here, not
        # hours into encoding.
        frames, energy, channels = 0, 0.0, max(f.channels, 1)
        try:
            while True:
                block = f.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
                if block.shape[0] == 0:
                    break
                if not np.isfinite(block).all():
                    return AudioInfo(path, "audio_unreadable", f"{path}: decodes to NaN/inf samples")
                frames += block.shape[0]
                energy += float(np.square(block, dtype=np.float64).sum())
        except Exception as exc:
            return AudioInfo(path, "audio_unreadable", f"{path}: decoding fails after {frames} frames ({exc})")
    seconds = frames / float(rate) if rate > 0 else 0.0
    rms = math.sqrt(energy / (frames * channels)) if frames else 0.0
    dbfs = 20 * math.log10(rms) if rms > 0 else -math.inf
    info = dict(seconds=round(seconds, 4), dbfs=round(dbfs, 2) if math.isfinite(dbfs) else None)
    if seconds < limits.min_seconds:
        return AudioInfo(
            path, "audio_too_short", f"{path}: {seconds:.3f} s, shorter than {limits.min_seconds:g} s", **info
        )
    if seconds > limits.max_seconds:
        return AudioInfo(
            path, "audio_too_long", f"{path}: {seconds:.1f} s, longer than {limits.max_seconds:g} s", **info
        )
    if dbfs < limits.silence_dbfs:
        level = "digital silence" if not math.isfinite(dbfs) else f"RMS {dbfs:.1f} dBFS"
        return AudioInfo(path, "audio_silent", f"{path}: {level}, below {limits.silence_dbfs:g} dBFS", **info)
    return AudioInfo(path, None, "", **info)


def check_many(paths: list[str], limits: AudioLimits) -> list[AudioInfo]:
    """A worker's chunk (module-level so process pools can pickle it)."""
    return [check_audio_file(p, limits) for p in paths]
