"""Signal checks that need no model: duration, leading/trailing silence, clipping."""

from __future__ import annotations

import numpy as np

from ..constants import FRAME_SILENCE_DBFS

FRAME_SECONDS = 0.01
CLIP_LEVEL = 0.999  # |sample| at or above this counts as clipped (PCM_16 full scale is 32767/32768)


def frame_rms_db(wav: np.ndarray, sr: int) -> np.ndarray:
    hop = max(1, int(round(sr * FRAME_SECONDS)))
    n = len(wav) // hop
    if n == 0:
        return np.zeros(0)
    frames = np.asarray(wav[: n * hop], dtype=np.float64).reshape(n, hop)
    rms = np.sqrt((frames**2).mean(axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-10))


def silence_edges(wav: np.ndarray, sr: int, threshold_dbfs: float = FRAME_SILENCE_DBFS) -> tuple[float, float]:
    """Seconds of silence before the first and after the last non-silent frame (whole length if all silent)."""
    db = frame_rms_db(wav, sr)
    loud = np.flatnonzero(db > threshold_dbfs)
    duration = len(wav) / sr
    if loud.size == 0:
        return duration, duration
    leading = loud[0] * FRAME_SECONDS
    trailing = max(0.0, duration - (loud[-1] + 1) * FRAME_SECONDS)
    return round(leading, 3), round(trailing, 3)


def clipped_fraction(wav: np.ndarray) -> float:
    wav = np.asarray(wav)
    if wav.size == 0:
        return 0.0
    return float((np.abs(wav) >= CLIP_LEVEL).mean())


def signal_metrics(wav: np.ndarray, sr: int) -> dict:
    leading, trailing = silence_edges(wav, sr)
    wav = np.asarray(wav)
    return {
        "duration_s": round(len(wav) / sr, 3),
        "leading_silence_s": leading,
        "trailing_silence_s": trailing,
        "clipped_fraction": clipped_fraction(wav),
        "peak": round(float(np.abs(wav).max()), 4) if wav.size else 0.0,
    }
