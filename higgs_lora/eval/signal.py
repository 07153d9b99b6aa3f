"""Signal checks that need no model: duration, leading/trailing silence, clipping."""

from __future__ import annotations

import numpy as np

from ..constants import FRAME_SILENCE_DBFS

FRAME_SECONDS = 0.01
CLIP_LEVEL = 0.999  # |sample| at or above this counts as clipped (PCM_16 full scale is 32767/32768)


def frame_rms_db(wav: np.ndarray, sr: int) -> np.ndarray:
    """RMS level in dBFS (1.0 = full scale) of each whole 10 ms frame from the first sample; a partial tail is dropped."""
    import librosa

    hop = max(1, int(round(sr * FRAME_SECONDS)))
    if len(wav) < hop:
        return np.zeros(0)
    rms = librosa.feature.rms(
        y=np.asarray(wav, dtype=np.float64), frame_length=hop, hop_length=hop, center=False, dtype=np.float64
    )[0]
    return librosa.amplitude_to_db(rms, ref=1.0, amin=1e-10, top_db=None)


def silence_edges(wav: np.ndarray, sr: int, threshold_dbfs: float = FRAME_SILENCE_DBFS) -> tuple[float, float]:
    """Seconds of silence before the first and after the last non-silent frame (whole length if all silent).

    Not `librosa.effects.trim(wav, top_db=-threshold_dbfs, ref=1.0)`: `ref=1.0` would make its threshold
    the same absolute dBFS, but trim always frames with `center=True` (frames centred on multiples of
    the hop, zero-padded at both ends), so its edges move by up to half a frame and a partial last frame
    counts, and it reports an all-silent clip as [0, 0] rather than silent end to end. The frames
    themselves are librosa's (`frame_rms_db`); only the edge arithmetic is here.
    """
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
