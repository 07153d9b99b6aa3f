"""The compatibility layer that lets boson's audio tokenizer import without torchaudio/dac/audiotools."""

import importlib
import importlib.abc
import sys
import types

import numpy as np
import pytest
import soxr
import torch

from higgs_lora.model import compat

PACKAGES = ("torchaudio", "omegaconf", "dac", "audiotools")


def _top(name: str) -> str:
    return name.split(".")[0]


class _Block(importlib.abc.MetaPathFinder):
    """Makes the packages look uninstalled, whatever this environment has."""

    def find_spec(self, fullname, path=None, target=None):
        if _top(fullname) in PACKAGES:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


@pytest.fixture
def clean_slate():
    """Removes the four packages (real or shimmed) for one test, then puts everything back."""
    saved_modules = {k: v for k, v in sys.modules.items() if _top(k) in PACKAGES}
    saved_shims = set(compat.INSTALLED_SHIMS)
    for k in saved_modules:
        del sys.modules[k]
    compat.INSTALLED_SHIMS.clear()
    blocker = _Block()
    sys.meta_path.insert(0, blocker)
    try:
        yield
    finally:
        sys.meta_path.remove(blocker)
        for k in [k for k in sys.modules if _top(k) in PACKAGES]:
            del sys.modules[k]
        sys.modules.update(saved_modules)
        compat.INSTALLED_SHIMS.clear()
        compat.INSTALLED_SHIMS.update(saved_shims)


def test_all_shims_installed_when_packages_missing(clean_slate):
    assert compat.ensure_audio_tokenizer_importable() == set(PACKAGES)
    first = {k: v for k, v in sys.modules.items() if _top(k) in PACKAGES}
    # idempotent: a second call changes nothing
    assert compat.ensure_audio_tokenizer_importable() == set(PACKAGES)
    assert {k: v for k, v in sys.modules.items() if _top(k) in PACKAGES} == first
    # `dac` is boson's vendored copy, the same module objects (not a second import)
    for sub in ("", ".nn", ".nn.layers", ".nn.quantize"):
        assert sys.modules["dac" + sub] is importlib.import_module(compat.VENDORED_DAC + sub)
    from dac.nn.layers import Snake1d

    assert Snake1d.__module__ == compat.VENDORED_DAC + ".nn.layers"


def _fake(name: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__path__ = []
    return mod


@pytest.mark.parametrize("present", PACKAGES)
def test_importable_real_package_is_left_alone(clean_slate, present):
    names = {
        "dac": ["dac", "dac.nn", "dac.nn.layers", "dac.nn.quantize"],
        "audiotools": ["audiotools", "audiotools.ml"],
    }
    fakes = {n: _fake(n) for n in names.get(present, [present])}
    sys.modules.update(fakes)
    installed = compat.ensure_audio_tokenizer_importable()
    assert installed == set(PACKAGES) - {present}
    for n, mod in fakes.items():
        assert sys.modules[n] is mod


def test_boson_audio_tokenizer_imports():
    compat.ensure_audio_tokenizer_importable()
    module = importlib.import_module("boson_multimodal.audio_processing.higgs_audio_tokenizer")
    assert hasattr(module, "HiggsAudioTokenizer") and hasattr(module, "load_higgs_audio_tokenizer")


@pytest.mark.parametrize("length", [24000, 24001, 24002, 12345])
def test_resample_shim_matches_soxr_with_torchaudio_length(length):
    rng = np.random.default_rng(0)
    wave = rng.standard_normal((2, 3, length)).astype(np.float32) * 0.1
    out = compat._resample(torch.from_numpy(wave), 24000, 16000)
    n_torchaudio = int(np.ceil(length * 16000 / 24000))
    assert out.shape == (2, 3, n_torchaudio) and out.dtype == torch.float32
    ref = soxr.resample(wave[1, 2], 24000, 16000)
    n = min(len(ref), n_torchaudio)
    np.testing.assert_allclose(out[1, 2, :n].numpy(), ref[:n], atol=1e-5)
    assert np.all(out[..., n:].numpy() == 0)  # at most the one sample soxr's rounding leaves out


def test_resample_shim_keeps_dtype_and_same_rate_is_identity():
    wave = torch.randn(1, 4800, dtype=torch.float64)
    assert compat._resample(wave, 24000, 16000).dtype == torch.float64
    assert compat._resample(wave.to(torch.bfloat16), 24000, 16000).dtype == torch.bfloat16
    assert compat._resample(wave, 16000, 16000) is wave
    assert compat._resample(torch.randn(960), 24000, 16000).shape == (640,)


def test_shim_modules_fail_loudly_when_used(clean_slate):
    compat.ensure_audio_tokenizer_importable()
    import audiotools
    import omegaconf
    import torchaudio
    from audiotools.ml import BaseModel

    with pytest.raises(compat.MissingDependencyError, match="audiotools"):
        audiotools.AudioSignal(torch.zeros(1, 1, 10), 24000)

    class Sub(BaseModel):  # boson's vendored DAC subclasses it at import time
        pass

    with pytest.raises(compat.MissingDependencyError, match="audiotools"):
        Sub()
    with pytest.raises(AttributeError, match="audiotools"):
        audiotools.AudioSignal.load_from_file_with_ffmpeg("x.wav")
    with pytest.raises(AttributeError, match="omegaconf"):
        omegaconf.OmegaConf.to_container({})
    with pytest.raises(AttributeError, match="only provides functional.resample"):
        torchaudio.load("x.wav")
    assert torchaudio.functional.resample is compat._resample
