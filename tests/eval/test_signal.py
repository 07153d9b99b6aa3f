import numpy as np

from higgs_lora.eval.signal import clipped_fraction, signal_metrics, silence_edges

SR = 16000


def _tone(seconds, amp=0.5):
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def test_leading_and_trailing_silence_are_measured_to_the_frame():
    wav = np.concatenate([np.zeros(int(0.3 * SR)), _tone(1.0), np.zeros(int(0.5 * SR))])
    leading, trailing = silence_edges(wav, SR)
    assert abs(leading - 0.3) <= 0.011
    assert abs(trailing - 0.5) <= 0.011


def test_all_silent_clip_is_silent_end_to_end():
    assert silence_edges(np.zeros(SR), SR) == (1.0, 1.0)


def test_the_threshold_is_absolute_dbfs_not_relative_to_the_peak():
    """A clip that is quiet throughout (-46 dBFS RMS) is all pause; a peak-relative threshold would find it loud."""
    quiet = _tone(1.0, amp=0.007)
    assert silence_edges(quiet, SR) == (1.0, 1.0)
    assert silence_edges(np.concatenate([quiet, _tone(0.5)]), SR) == (1.0, 0.0)


def test_frames_start_at_the_first_sample():
    """Sound from 0.305 s lies in the frame 0.30-0.31 s: 0.30 s of pause. A grid of frames centred on
    multiples of 10 ms (librosa.effects.trim's) puts 0.300-0.305 s in a frame of its own and says 0.31 s."""
    wav = np.concatenate([np.zeros(int(0.305 * SR)), _tone(1.0)])
    assert silence_edges(wav, SR)[0] == 0.3


def test_clipping_counts_full_scale_samples():
    wav = _tone(1.0, amp=0.5)
    assert clipped_fraction(wav) == 0.0
    loud = np.clip(_tone(1.0, amp=2.0), -1, 1)
    assert 0.5 < clipped_fraction(loud) < 0.8  # a sine at 2x full scale sits on the rails ~2/3 of the time
    m = signal_metrics(loud, SR)
    assert m["duration_s"] == 1.0 and m["peak"] == 1.0
