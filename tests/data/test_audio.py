"""Audio file I/O: mono downmix, resampling, errors that name the file, WAV round trip."""

import numpy as np
import pytest
import soundfile as sf

from higgs_lora.data.audio import AudioError, audio_duration, load_audio, resample, write_wav


def _sine(freq, sr, seconds=1.0, amp=0.5):
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(wav, sr):
    spectrum = np.abs(np.fft.rfft(wav * np.hanning(len(wav))))
    return np.fft.rfftfreq(len(wav), 1.0 / sr)[np.argmax(spectrum)]


def test_stereo_is_downmixed_to_the_channel_mean(tmp_path):
    sr = 24000
    left = _sine(300, sr, amp=0.6)
    right = np.full_like(left, 0.2)
    path = tmp_path / "stereo.wav"
    sf.write(str(path), np.stack([left, right], axis=1), sr, subtype="FLOAT")

    wav = load_audio(path, sr)

    assert wav.ndim == 1 and wav.dtype == np.float32
    assert len(wav) == len(left)
    np.testing.assert_allclose(wav, (left + right) / 2, atol=1e-6)


def test_mono_file_at_target_rate_is_returned_unchanged(tmp_path):
    sr = 16000
    x = _sine(440, sr, seconds=0.3)
    path = tmp_path / "mono.wav"
    sf.write(str(path), x, sr, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path, sr), x)


@pytest.mark.parametrize("orig_sr,target_sr", [(16000, 24000), (44100, 24000), (24000, 16000)])
def test_resampling_keeps_duration_and_frequency(tmp_path, orig_sr, target_sr):
    freq = 440.0
    x = _sine(freq, orig_sr, seconds=1.0)
    path = tmp_path / f"sine_{orig_sr}.wav"
    sf.write(str(path), x, orig_sr, subtype="FLOAT")

    wav = load_audio(path, target_sr)

    assert wav.dtype == np.float32
    assert abs(len(wav) - len(x) * target_sr / orig_sr) <= 1
    # 1 s of audio -> 1 Hz FFT bins; a wrong rate would move the peak by hundreds of Hz.
    assert abs(_peak_hz(wav, target_sr) - freq) <= 2.0
    # amplitude is preserved away from the edges
    mid = wav[len(wav) // 4 : 3 * len(wav) // 4]
    assert np.max(np.abs(mid)) == pytest.approx(0.5, abs=0.02)


def test_resample_function_is_identity_at_same_rate_and_changes_length_otherwise():
    x = _sine(1000, 48000, seconds=0.5)
    np.testing.assert_array_equal(resample(x, 48000, 48000), x)
    y = resample(x, 48000, 24000)
    assert y.dtype == np.float32 and abs(len(y) - len(x) / 2) <= 1


def test_missing_file_error_names_the_file(tmp_path):
    path = tmp_path / "nope" / "missing_clip.wav"
    with pytest.raises(AudioError, match="missing_clip.wav") as err:
        load_audio(path, 24000)
    assert "not found" in str(err.value)


def test_zero_byte_file_error_names_the_file(tmp_path):
    path = tmp_path / "zero_bytes.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match="zero_bytes.wav"):
        load_audio(path, 24000)


def test_wav_without_frames_is_reported_empty(tmp_path):
    path = tmp_path / "no_frames.wav"
    sf.write(str(path), np.zeros((0,), dtype=np.float32), 24000)
    with pytest.raises(AudioError, match="no_frames.wav") as err:
        load_audio(path, 24000)
    assert "empty" in str(err.value)


def test_garbage_file_error_names_the_file(tmp_path):
    path = tmp_path / "garbage.wav"
    path.write_bytes(b"this is not audio at all \x00\x01\x02" * 50)
    with pytest.raises(AudioError, match="garbage.wav") as err:
        load_audio(path, 24000)
    assert "cannot read" in str(err.value)
    assert isinstance(err.value, ValueError)  # callers may catch ValueError


def test_write_wav_round_trip_creates_parents_and_keeps_the_signal(tmp_path):
    sr = 24000
    x = _sine(523.25, sr, seconds=0.5, amp=0.8)
    path = tmp_path / "deep" / "er" / "out.wav"

    write_wav(path, x.astype(np.float64), sr)

    info = sf.info(str(path))
    assert info.samplerate == sr and info.channels == 1 and info.subtype == "PCM_16"
    back = load_audio(path, sr)
    assert len(back) == len(x)
    np.testing.assert_allclose(back, x, atol=1.5 / 32768)  # PCM-16 quantisation only
    assert audio_duration(path) == pytest.approx(0.5)


def test_audio_duration_of_unreadable_file_names_it(tmp_path):
    path = tmp_path / "text.wav"
    path.write_text("hello")
    with pytest.raises(AudioError, match="text.wav"):
        audio_duration(path)
