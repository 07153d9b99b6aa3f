"""Integration: boson's real HiggsAudioTokenizer class (random weights, offline) behind HiggsAudioCodec."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from higgs_lora.bench.random_codec import random_higgs_codec, random_semantic_teacher
from higgs_lora.data.codes import load_codec
from higgs_lora.data.higgs_codec import RELEASED_TOKENIZER_CONFIG, HiggsAudioCodec

# Building the tokenizer takes seconds and the first encode runs k-means on its codebooks.
pytestmark = pytest.mark.timeout(180)

SR = 16000  # not the codec's rate, so both paths resample
SECONDS = 0.8


@pytest.fixture(scope="module")
def wave():
    t = np.arange(int(SECONDS * SR)) / SR
    rng = np.random.default_rng(0)
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def clip(wave, tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "clip.wav"
    sf.write(str(path), wave, SR, subtype="FLOAT")  # lossless, so file and waveform give the same codes
    return path


@pytest.fixture(scope="module")
def encoded(clip):
    codec = random_higgs_codec(device="cpu")
    return codec, codec.encode(clip)


def test_random_tokenizer_encode_decode(encoded, clip, wave):
    codec, codes = encoded
    assert (codec.sampling_rate, codec.tps, codec.num_codebooks, codec.codebook_size) == (24000, 25, 8, 1024)

    assert codes.dtype == torch.long and codes.device.type == "cpu"
    assert codes.shape[0] == 8 and abs(codes.shape[1] - SECONDS * 25) <= 1
    assert 0 <= int(codes.min()) and int(codes.max()) < 1024

    # A waveform (float64 and torch included) gives the file's codes.
    assert torch.equal(codec.encode(wave, sr=SR), codes)
    assert torch.equal(codec.encode(wave.astype(np.float64), sr=SR), codes)
    assert torch.equal(codec.encode(torch.from_numpy(wave)[None], sr=SR), codes)
    with pytest.raises(ValueError, match="sampling rate"):
        codec.encode(wave)

    audio = codec.decode(codes[None])
    assert audio.shape == (1, 1, codes.shape[1] * 960) and audio.dtype == np.float32
    assert np.isfinite(audio).all()
    with pytest.raises(ValueError, match="codes must lie"):
        codec.decode(torch.full((1, 8, 3), 1024))


def test_load_from_local_folder(encoded, clip, tmp_path):
    codec, codes = encoded  # encoded already: its codebooks are k-means initialised, like a release
    (tmp_path / "config.json").write_text(json.dumps(RELEASED_TOKENIZER_CONFIG))
    torch.save(codec.tokenizer.state_dict(), tmp_path / "model.pth")

    # A staged folder (as `higgs-lora download` writes it) carries the HuBERT the constructor loads by
    # name; the project entry point then goes through boson's own loader with no network at all.
    random_semantic_teacher().save_pretrained(tmp_path / "semantic_teacher")
    loaded = load_codec(str(tmp_path), device="cpu")
    assert isinstance(loaded, HiggsAudioCodec) and loaded.name == str(tmp_path)

    saved = codec.tokenizer.state_dict()
    for key, value in loaded.tokenizer.state_dict().items():
        assert torch.equal(value, saved[key]), key
    assert torch.equal(loaded.encode(clip), codes)
