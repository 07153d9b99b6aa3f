"""TinyCodec (shapes, range, determinism, resampling, loudness) and the encode-once file cache."""

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from higgs_lora.data.audio import resample
from higgs_lora.data.codes import TinyCodec, load_codec


def _sine(freq, sr, seconds=1.0, amp=0.5):
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _speechlike(sr, seconds):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(int(sr * seconds)).astype(np.float32) * 0.1
    return x * (0.5 + 0.5 * np.sin(np.linspace(0, 20, len(x)))).astype(np.float32)


@pytest.mark.parametrize("n_samples", [1, 959, 960, 961, 24000, 25231])
def test_waveform_shape_is_codebooks_by_ceil_frames(tiny_codec, n_samples):
    codes = tiny_codec.encode(_speechlike(24000, 2)[:n_samples], sr=24000)
    assert isinstance(codes, torch.Tensor) and codes.dtype == torch.long
    assert tuple(codes.shape) == (8, math.ceil(n_samples / 960))


def test_path_input_has_the_same_shape_and_codes_as_the_waveform(tiny_codec, tmp_path):
    x = _speechlike(24000, 1.37)
    path = tmp_path / "clip.wav"
    sf.write(str(path), x, 24000, subtype="FLOAT")
    from_path = tiny_codec.encode(path)
    from_str = tiny_codec.encode(str(path))
    assert tuple(from_path.shape) == (8, math.ceil(len(x) / 960))
    assert torch.equal(from_path, from_str)
    assert torch.equal(from_path, tiny_codec.encode(x, sr=24000))


def test_codes_are_in_codebook_range_and_use_it(tiny_codec, sample_samples):
    codes = tiny_codec.encode(sample_samples[0].target_audio)
    assert codes.min() >= 0 and codes.max() < 1024
    assert len(torch.unique(codes)) > 20  # real speech spreads over the codebook
    loud = tiny_codec.encode(np.ones(2400, dtype=np.float32) * 10, sr=24000)
    assert loud.max() <= 1023


def test_encoding_is_deterministic_across_calls_and_instances(tiny_codec, sample_samples):
    path = sample_samples[0].ref_audio
    assert torch.equal(tiny_codec.encode(path), tiny_codec.encode(path))
    assert torch.equal(tiny_codec.encode(path), TinyCodec().encode(path))
    assert torch.equal(load_codec("tiny").encode(path), tiny_codec.encode(path))


def test_waveform_without_sampling_rate_is_refused(tiny_codec):
    with pytest.raises(ValueError, match="sampling rate"):
        tiny_codec.encode(np.zeros(960, dtype=np.float32))
    with pytest.raises(ValueError):
        tiny_codec.encode(torch.zeros(960))


def test_16k_file_is_resampled_like_a_16k_waveform(tiny_codec, tmp_path):
    x = _speechlike(16000, 1.0) + _sine(700, 16000, amp=0.2)
    path = tmp_path / "at16k.wav"
    sf.write(str(path), x, 16000, subtype="FLOAT")

    from_path = tiny_codec.encode(path)
    from_wave = tiny_codec.encode(x, sr=16000)
    from_resampled = tiny_codec.encode(resample(x, 16000, 24000), sr=24000)

    # 1 s at 16 kHz -> 24000 samples at 24 kHz -> 25 frames (not 16000/960 -> 17)
    assert from_path.shape == (8, 25)
    assert torch.equal(from_path, from_wave)
    assert torch.equal(from_path, from_resampled)


def test_decode_shape_and_range(tiny_codec):
    codes = torch.randint(0, 1024, (3, 8, 7))
    wav = tiny_codec.decode(codes)
    assert wav.shape == (3, 1, 7 * 960)
    assert np.all(np.abs(wav) <= 1.0)
    single = tiny_codec.decode(codes[0])  # (C, T) -> batch of one
    assert single.shape == (1, 1, 7 * 960)
    np.testing.assert_allclose(single[0], wav[0], atol=1e-6)


def test_decode_then_encode_keeps_loudness_structure(tiny_codec):
    codes = torch.zeros(1, 8, 10, dtype=torch.long)
    codes[0, 4, 5:] = 800  # one band becomes loud halfway through
    wav = tiny_codec.decode(codes)[0, 0]
    assert np.abs(wav[: 4 * 960]).max() < 1e-3
    back = tiny_codec.encode(wav, sr=24000)
    assert back[4, 6:9].min() > back[4, :4].max() + 300


def test_louder_sine_raises_the_code_of_its_band_by_a_constant_log_step(tiny_codec):
    loudest_band, steps = [], []
    for freq in (200.0, 1000.0, 4000.0):
        quiet = tiny_codec.encode(_sine(freq, 24000, amp=0.05), sr=24000)
        loud = tiny_codec.encode(_sine(freq, 24000, amp=0.5), sr=24000)
        frame = 10  # away from the zero padding of the last frame
        band = int(torch.argmax(loud[:, frame]))
        assert band == int(torch.argmax(quiet[:, frame]))
        loudest_band.append(band)
        steps.append(int(loud[band, frame] - quiet[band, frame]))
    # bands rise with frequency
    assert loudest_band == sorted(loudest_band) and len(set(loudest_band)) == 3
    # +20 dB is the same positive step in every band: codes are log energies
    assert all(s > 50 for s in steps)
    assert max(steps) - min(steps) <= 2
