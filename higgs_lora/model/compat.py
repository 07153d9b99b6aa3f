"""Lets ``boson_multimodal.audio_processing.higgs_audio_tokenizer`` import without its heavy extras.

boson-multimodal is installed with ``--no-deps``: its wheel pins torchaudio, descript-audio-codec
and descript-audiotools, and no torchaudio wheel matches our torch. Yet importing the audio
tokenizer touches four packages we do not install:

- ``torchaudio``: only ``torchaudio.functional.resample`` is called (24 kHz -> 16 kHz for HuBERT).
  The stand-in does the same with soxr, which we already depend on.
- ``dac``: boson vendors DAC under ``descriptaudiocodec/dac`` but that code imports itself as the
  top-level ``dac``; we point ``dac`` at the vendored copy.
- ``audiotools``: imported by the vendored DAC for ``AudioSignal`` and ``audiotools.ml.BaseModel``,
  used only by the ``DAC`` class, which the Higgs tokenizer never builds (it uses DAC's
  ``Encoder``/``Decoder``). Placeholders that fail loudly if used.
- ``omegaconf``: ``quantization/ddp_utils.py`` imports ``OmegaConf`` for a logging helper that is
  never called. Placeholder as well. (``quantization/core_vq.py``, which imports ``xcodec``, is not
  on the import path: ``vq.py`` uses ``core_vq_lsx_version.py``.)

Every piece is left alone when the real package imports, so installing the real extras wins.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types

# Names of the shims this process installed (for tests and for diagnostics).
INSTALLED_SHIMS: set[str] = set()

VENDORED_DAC = "boson_multimodal.audio_processing.descriptaudiocodec.dac"


class MissingDependencyError(ImportError):
    """Raised when code reaches a placeholder for a package that is not installed."""


def ensure_audio_tokenizer_importable() -> set[str]:
    """Install whichever shims are needed; safe to call any number of times. Returns INSTALLED_SHIMS."""
    if not _importable("torchaudio"):
        _install_torchaudio()
    if not _importable("omegaconf"):
        _install_placeholders("omegaconf", {"omegaconf": ["OmegaConf"]})
    # dac before audiotools: a real dac imports audiotools, and must not meet our placeholder.
    if not (_importable("dac.nn.layers") and _importable("dac.nn.quantize")):
        _alias_vendored_dac()
    if not (_importable("audiotools") and _importable("audiotools.ml")):
        _install_placeholders("audiotools", {"audiotools": ["AudioSignal"], "audiotools.ml": ["BaseModel"]})
    return INSTALLED_SHIMS


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
        return True
    # A package that is installed but cannot import (e.g. a torchaudio built against another
    # torch fails with OSError/RuntimeError) is as unusable as a missing one.
    except Exception:
        return False


def _new_module(name: str, doc: str, provides: str) -> types.ModuleType:
    mod = types.ModuleType(name, doc)
    # A spec keeps importlib.util.find_spec() (used by transformers' availability checks) from
    # raising on the stand-in; without package metadata those checks still report it absent.
    mod.__spec__ = importlib.machinery.ModuleSpec(name, loader=None, is_package=True)
    mod.__path__ = []

    def __getattr__(attr: str):
        if attr.startswith("_"):
            raise AttributeError(attr)
        raise AttributeError(
            f"{name}.{attr} is unavailable: {name} is not installed, and higgs_lora's stand-in only provides {provides}"
        )

    mod.__getattr__ = __getattr__
    sys.modules[name] = mod
    return mod


def _resample(waveform, orig_freq: int, new_freq: int):
    """``torchaudio.functional.resample`` with soxr: resamples the last axis, keeps dtype and device."""
    import numpy as np
    import soxr
    import torch

    orig_freq, new_freq = int(orig_freq), int(new_freq)
    if orig_freq == new_freq:
        return waveform
    *batch, length = waveform.shape
    work = torch.float64 if waveform.dtype == torch.float64 else torch.float32  # soxr's float types
    # soxr takes (frames, channels): every leading dim becomes one channel.
    frames = waveform.detach().reshape(-1, length).to("cpu", work).numpy().T
    out = torch.from_numpy(np.ascontiguousarray(soxr.resample(np.ascontiguousarray(frames), orig_freq, new_freq).T))
    # torchaudio returns ceil(length * new / orig) samples, soxr rounds: match torchaudio so frame
    # counts downstream (HuBERT vs the acoustic encoder) are what upstream was written for.
    n_out = -(-length * new_freq // orig_freq)
    out = torch.nn.functional.pad(out[:, :n_out], (0, max(0, n_out - out.shape[1])))
    return out.reshape(*batch, n_out).to(device=waveform.device, dtype=waveform.dtype)


def _install_torchaudio() -> None:
    doc = "higgs_lora stand-in for torchaudio: only functional.resample (soxr)."
    torchaudio = _new_module("torchaudio", doc, "functional.resample")
    functional = _new_module("torchaudio.functional", doc, "resample")
    functional.resample = _resample
    torchaudio.functional = functional
    INSTALLED_SHIMS.add("torchaudio")


def _alias_vendored_dac() -> None:
    # One module object per file: aliasing (rather than a second import under the name `dac`)
    # keeps `dac.nn.layers.Snake1d` and boson's own class identical. Order matters because
    # quantize.py itself does `from dac.nn.layers import WNConv1d`.
    for sub in ("", ".nn", ".nn.layers", ".nn.quantize"):
        sys.modules["dac" + sub] = importlib.import_module(VENDORED_DAC + sub)
    INSTALLED_SHIMS.add("dac")


class _PlaceholderMeta(type):
    """Classes that can be named, subclassed and used in annotations, but not instantiated."""

    def __call__(cls, *args, **kwargs):
        raise MissingDependencyError(cls._placeholder_message())

    def __getattr__(cls, attr: str):
        if attr.startswith("_"):
            raise AttributeError(attr)
        raise AttributeError(f"{cls.__name__}.{attr}: {cls._placeholder_message()}")

    def _placeholder_message(cls) -> str:
        return (
            f"{cls.__name__} needs the real `{cls._placeholder_package}` package, which is not installed. "
            f"higgs_lora only provides a placeholder so that boson_multimodal's audio tokenizer can import; "
            f"install `{cls._placeholder_package}` to use this code path."
        )


def _install_placeholders(package: str, names: dict[str, list[str]]) -> None:
    for module_name, class_names in names.items():
        mod = _new_module(module_name, f"higgs_lora placeholder for {package} (not installed).", "placeholders")
        for class_name in class_names:
            cls = _PlaceholderMeta(class_name, (), {"_placeholder_package": package, "__module__": module_name})
            setattr(mod, class_name, cls)
        parent, _, child = module_name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, mod)
    INSTALLED_SHIMS.add(package)
